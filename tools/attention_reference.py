"""Per-sample contextual attention with the original's op structure.

The original DeepFill v1 layer splits the batch and, for every sample,
builds convolution filters from the background patches, correlates with
``conv2d``, fuses scores with two ``conv2d`` passes over the flattened score
matrix and pastes with ``conv2d_transpose``. This module rebuilds that
structure with TF2 ops, one sample at a time and one mask per sample. It is
the baseline of ``tools/benchmark.py`` (how fast the original's structure
runs) and an independent check of the batched ``ContextualAttention`` in
the tests (the library does not use it).
"""

from __future__ import annotations

import tensorflow as tf

from inpaint_tf import ops


def _patches_as_filters(x: tf.Tensor, size: int, stride: int) -> tf.Tensor:
  """[1,H,W,C] -> [size,size,C,L] filters from SAME patches."""
  channels = x.shape[-1]
  patches = tf.image.extract_patches(x, [1, size, size, 1],
                                     [1, stride, stride, 1], [1, 1, 1, 1],
                                     'SAME')
  patches = tf.reshape(patches, [-1, size, size, channels])
  return tf.transpose(patches, [1, 2, 3, 0])


def _identity_fuse(scores: tf.Tensor, fuse_k: int) -> tf.Tensor:
  """conv2d of a [N,L] score matrix with an identity kernel (SAME)."""
  kernel = tf.reshape(tf.eye(fuse_k), [fuse_k, fuse_k, 1, 1])
  return tf.nn.conv2d(scores[None, :, :, None], kernel, 1, 'SAME')[0, :, :, 0]


def contextual_attention_per_sample(f: tf.Tensor, b: tf.Tensor,
                                    mask: tf.Tensor, ksize: int = 3,
                                    rate: int = 1, fuse_k: int = 3,
                                    softmax_scale: float = 10.0,
                                    fuse: bool = True) -> tf.Tensor:
  """Contextual attention, looping over a static batch.

  Args:
    f: [B,H,W,C] float32 foreground, static B.
    b: [B,H,W,C] float32 background.
    mask: [B,H,W,1] float32, 1 = hole.
    ksize, rate, fuse_k, softmax_scale, fuse: as ``ContextualAttention``.

  Returns:
    [B,H,W,C] float32.
  """
  _, height, width, _ = f.shape
  h, w = height // rate, width // rate
  outputs = []
  for i in range(f.shape[0]):
    fi, bi, mi = f[i:i + 1], b[i:i + 1], mask[i:i + 1]
    raw = _patches_as_filters(bi, 2 * rate, rate)
    if rate > 1:
      fi = ops.resize_nearest(fi, [h, w])
      bi = ops.resize_nearest(bi, [h, w])
      mi = ops.resize_nearest(mi, [h, w])
    filters = _patches_as_filters(bi, ksize, 1)
    norms = tf.sqrt(tf.reduce_sum(tf.square(filters), axis=[0, 1, 2]))
    scores = tf.nn.conv2d(fi, filters / tf.maximum(norms, 1e-4), 1, 'SAME')
    if fuse:
      s = _identity_fuse(tf.reshape(scores, [h * w, h * w]), fuse_k)
      s = tf.transpose(tf.reshape(s, [h, w, h, w]), [1, 0, 3, 2])
      s = _identity_fuse(tf.reshape(s, [h * w, h * w]), fuse_k)
      s = tf.transpose(tf.reshape(s, [w, h, w, h]), [1, 0, 3, 2])
      scores = tf.reshape(s, [1, h, w, h * w])
    hole = tf.reduce_sum(_patches_as_filters(mi, ksize, 1), axis=[0, 1, 2])
    usable = tf.cast(tf.equal(hole, 0.), tf.float32)
    scores = tf.nn.softmax(scores * usable * softmax_scale, axis=-1) * usable
    outputs.append(tf.nn.conv2d_transpose(
        scores, raw, [1, height, width, f.shape[-1]], rate) / 4.)
  return tf.concat(outputs, axis=0)
