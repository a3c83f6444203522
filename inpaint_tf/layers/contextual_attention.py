"""Contextual attention: GEPE-Net's perception operation ``p``.

Reproduces DeepFill v1's ``contextual_attention`` (Yu et al., "Generative
Image Inpainting with Contextual Attention", CVPR 2018) to float32 rounding,
batched over samples with a per-sample mask. The computation is the
original's, reorganised around two batched matrix products (its steps are
listed in ``attention_ops``).

All index manipulations are pads, slices and reshapes, so the layer works
with a dynamic batch, under ``tf.function(jit_compile=True)``, and is
differentiable with respect to ``f`` and ``b``.
"""

from __future__ import annotations

import math
from typing import Sequence, Tuple

import numpy as np
import tensorflow as tf

from inpaint_tf import ops
from inpaint_tf.keras_api import keras
from inpaint_tf.layers import attention_ops
from inpaint_tf.layers import query_attention


# Output blocks per chunk of the query path; see tools/benchmark.py
# --sections=attention and BUILD.md for the measurement behind it.
DEFAULT_CHUNK_SIZE = 256
# Maps of at most this many attention positions ((H/rate)*(W/rate), known
# when the layer is traced) are computed whole even with a query_mask: a
# training step (forward and backward, per-sample holes) through the query
# path's chunk loop was slower there (BUILD.md, "The hole-only attention
# layer").
DEFAULT_WHOLE_MAP_POSITIONS = 1024


def _flow_colors() -> np.ndarray:
  """The Middlebury colour wheel (55 colours, RGB in [0,1])."""
  segments = ((15, (1, 0, 0), (0, 1, 0)), (6, (1, 1, 0), (-1, 0, 0)),
              (4, (0, 1, 0), (0, 0, 1)), (11, (0, 1, 1), (0, -1, 0)),
              (13, (0, 0, 1), (1, 0, 0)), (6, (1, 0, 1), (0, 0, -1)))
  colors = []
  for count, start, step in segments:
    ramp = np.floor(255 * np.arange(count) / count) / 255
    for value in ramp:
      colors.append(np.array(start) + np.array(step) * value)
  return np.array(colors, np.float32)


def offsets_to_flow_image(offsets: tf.Tensor) -> tf.Tensor:
  """Colours attention offsets with the Middlebury flow colour wheel.

  Each sample is normalised by its own largest offset (DeepFill normalises
  by the running maximum over the batch; per-sample keeps images
  independent of their batch).

  Args:
    offsets: [B,H,W,2] (dy, dx) displacement in pixels, any numeric dtype.

  Returns:
    [B,H,W,3] float32 in [-1,1].
  """
  offsets = tf.cast(offsets, tf.float32)
  u, v = offsets[..., 0], offsets[..., 1]
  radius = tf.sqrt(u * u + v * v)
  max_radius = tf.reduce_max(radius, axis=[1, 2], keepdims=True)
  u = u / (max_radius + 1e-12)
  v = v / (max_radius + 1e-12)
  radius = tf.sqrt(u * u + v * v)
  wheel = tf.constant(_flow_colors())
  ncols = wheel.shape[0]
  angle = tf.atan2(-v, -u) / math.pi
  position = (angle + 1.) / 2. * (ncols - 1)
  k0 = tf.cast(tf.floor(position), tf.int32)
  k1 = tf.math.floormod(k0 + 1, ncols)
  frac = (position - tf.floor(position))[..., None]
  color = (1 - frac) * tf.gather(wheel, k0) + frac * tf.gather(wheel, k1)
  inside = (radius <= 1.)[..., None]
  color = tf.where(inside, 1 - radius[..., None] * (1 - color), color * 0.75)
  return tf.floor(255. * color) / 127.5 - 1.


@keras.utils.register_keras_serializable('inpaint_tf')
class ContextualAttention(keras.layers.Layer):
  """DeepFill v1 contextual attention, batched with per-sample masks.

  Called as ``layer(f, b, mask=None, query_mask=None)``:

  * ``f``: [B,H,W,C] float foreground features (the map to fill).
  * ``b``: [B,H,W,C] float background features (where patches come from).
  * ``mask``: [B,H,W,1] or [1,H,W,1], 1 = hole; background patches
    overlapping the hole are not used. ``None`` means no hole.
  * ``query_mask``: [B,H,W,1] or [1,H,W,1] of any dtype, non-zero = compute
    the output here. Only the score rows these positions need are computed,
    ``chunk_size`` output blocks at a time (``query_attention``), so time
    and memory follow the queried area, not the square of the map. Values
    at queried positions equal the full layer's to float32 rounding; other
    positions are zero. ``None`` computes every position (the full layer,
    which also compiles with XLA; the query path does not).

  Returns ``y`` [B,H,W,C] (float32 math, cast back to ``f``'s dtype), or
  ``(y, flow)`` with ``return_flow=True`` (without ``query_mask``) where
  ``flow`` [B,H,W,3] in [-1,1] colours each position's best-matching
  offset.

  Arguments match the original ``contextual_attention``. The original
  reshapes its score map assuming one background patch per pixel, so it only
  runs with ``stride=1``; other strides are rejected. ``H`` and ``W`` must
  be divisible by ``rate`` (the original's transposed convolution fails
  otherwise), and ``f`` and ``b`` must have the same spatial size (as the
  original's offset computation requires). ``chunk_size`` is the number of
  output blocks (``rate x rate`` pixels) per chunk of the query path; a
  chunk holds a few [chunk_size, (H/rate)*(W/rate)] float32 matrices. A
  map whose static size gives at most ``whole_map_positions`` attention
  positions is computed whole and then masked by ``query_mask`` (the same
  values; faster to train at such sizes).
  """

  def __init__(self, ksize: int = 3, stride: int = 1, rate: int = 1,
               fuse_k: int = 3, softmax_scale: float = 10.0, fuse: bool = True,
               return_flow: bool = False,
               chunk_size: int = DEFAULT_CHUNK_SIZE,
               whole_map_positions: int = DEFAULT_WHOLE_MAP_POSITIONS,
               **kwargs):
    super().__init__(**kwargs)
    for name, value in (('ksize', ksize), ('rate', rate), ('fuse_k', fuse_k),
                        ('chunk_size', chunk_size)):
      if not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f'{name}: expected a positive int, got {value!r}')
    if stride != 1:
      raise ValueError(
          f'stride: expected 1 (the original contextual attention reshapes '
          f'its scores to one patch per background pixel and fails for any '
          f'other stride), got {stride!r}')
    self.ksize = int(ksize)
    self.stride = int(stride)
    self.rate = int(rate)
    self.fuse_k = int(fuse_k)
    self.softmax_scale = float(softmax_scale)
    self.fuse = bool(fuse)
    self.return_flow = bool(return_flow)
    self.chunk_size = int(chunk_size)
    if (not isinstance(whole_map_positions, (int, np.integer))
        or whole_map_positions < 0):
      raise ValueError(f'whole_map_positions: expected an int >= 0, got '
                       f'{whole_map_positions!r}')
    self.whole_map_positions = int(whole_map_positions)

  def get_config(self):
    config = super().get_config()
    config.update(ksize=self.ksize, stride=self.stride, rate=self.rate,
                  fuse_k=self.fuse_k, softmax_scale=self.softmax_scale,
                  fuse=self.fuse, return_flow=self.return_flow,
                  chunk_size=self.chunk_size,
                  whole_map_positions=self.whole_map_positions)
    return config

  def compute_mask(self, inputs, mask=None):
    # ``mask`` here is the hole mask, not a Keras padding mask.
    return None

  def _check(self, f, b, mask, query_mask) -> None:
    ops.check_tensor('f', f, 4, '[B,H,W,C] float')
    ops.check_tensor('b', b, 4, f'[B,H,W,{f.shape[-1]}] float',
                     channels=f.shape[-1])
    if None not in f.shape[1:3] + b.shape[1:3] and f.shape[1:3] != b.shape[1:3]:
      raise ValueError(
          f'b: expected the spatial size of f {list(f.shape[1:3])}, got shape '
          f'{list(b.shape)}')
    if None not in (f.shape[0], b.shape[0]) and f.shape[0] != b.shape[0]:
      raise ValueError(
          f'b: expected the batch size of f ({f.shape[0]}), got shape '
          f'{list(b.shape)}')
    r = self.rate
    for size in f.shape[1:3]:
      if size is not None and size % r:
        raise ValueError(
            f'f: expected height and width divisible by rate={r}, got shape '
            f'{list(f.shape)}')
    for name, m in (('mask', mask), ('query_mask', query_mask)):
      if m is None:
        continue
      expected = (f'[B,{f.shape[1]},{f.shape[2]},1] or '
                  f'[1,{f.shape[1]},{f.shape[2]},1]')
      ops.check_tensor(name, m, 4, expected, channels=1, float_only=False)
      static_ok = all(
          a is None or x is None or a == x
          for a, x in zip(m.shape[1:3], f.shape[1:3]))
      batch_ok = (m.shape[0] in (None, 1) or f.shape[0] is None
                  or m.shape[0] == f.shape[0])
      if not (static_ok and batch_ok):
        raise ValueError(f'{name}: expected {expected}, got shape '
                         f'{list(m.shape)}')
    if query_mask is not None and self.return_flow:
      raise ValueError('query_mask: expected None with return_flow=True (the '
                       'flow covers every position), got a mask')

  def call(self, f, b, mask=None, query_mask=None):
    f = tf.convert_to_tensor(f)
    b = tf.convert_to_tensor(b)
    if mask is not None:
      mask = tf.convert_to_tensor(mask)
    if query_mask is not None:
      query_mask = tf.convert_to_tensor(query_mask)
    self._check(f, b, mask, query_mask)
    out_dtype = f.dtype
    f, b, mask, query_mask = self._float32_inputs(f, b, mask, query_mask)
    r = self.rate
    channels = f.shape[-1]
    f_shape = tf.shape(f)
    batch = f_shape[0]
    # The encoder's p(x, x, m): one set of patches serves both roles. (Kept
    # inline: moved into a method, the rate-2 gradient came out rounded
    # differently, which changed training runs.)
    same = b is f
    if r > 1:
      f_small = ops.resize_nearest(f, [f_shape[1] // r, f_shape[2] // r])
      b_small = f_small if same else ops.resize_nearest(
          b, [f_shape[1] // r, f_shape[2] // r])
    else:
      f_small, b_small = f, b
    h, w = f_shape[1] // r, f_shape[2] // r
    fg_patches = attention_ops.patch_matrix(f_small, self.ksize)
    bg_patches = (fg_patches if same
                  else attention_ops.patch_matrix(b_small, self.ksize))
    norms = tf.sqrt(tf.reduce_sum(tf.square(bg_patches), axis=2, keepdims=True))
    bg_patches = bg_patches / tf.maximum(norms, 1e-4)
    # After fusion the scores are in column-major position order.
    transposed = self.fuse
    usable = self._usable(mask, (h, w), transposed)  # [Bm, h*w]
    blocks = attention_ops.background_blocks(b, r, transposed)
    query = None
    if query_mask is not None:
      query = tf.broadcast_to(
          tf.not_equal(query_mask, tf.zeros([], query_mask.dtype)),
          tf.concat([f_shape[:3], [1]], axis=0))
    if query is not None and not self._whole_map(f):
      y = query_attention.query_attention(
          fg_patches, bg_patches, usable, blocks, query, r,
          self.fuse_k if self.fuse else None, self.softmax_scale,
          self.chunk_size)
      return tf.cast(y, out_dtype)

    grid = [w, h] if transposed else [h, w]
    attention = self._attention(fg_patches, bg_patches, usable, (h, w), grid)
    y = attention_ops.paste(tf.reshape(attention, [batch] + grid + grid),
                            blocks, (f_shape[1], f_shape[2]), r, channels,
                            transposed)
    if query is not None:
      y *= tf.cast(query, y.dtype)
    y = tf.cast(y, out_dtype)
    if not self.return_flow:
      return y
    return y, self._flow(attention, (h, w), (f_shape[1], f_shape[2]),
                         transposed)

  def _float32_inputs(self, f, b, mask, query_mask):
    """``f`` and ``b`` in float32, after the batch checks of the masks.

    Args:
      f: [B,H,W,C] foreground.
      b: [B,H,W,C] background; ``b is f`` (the encoder's ``p(x, x, m)``)
        stays true of the results, so one set of patches serves both roles.
      mask: [B,H,W,1], [1,H,W,1] or None.
      query_mask: [B,H,W,1], [1,H,W,1] or None.

    Returns:
      (f, b, mask, query_mask): f and b float32; every tensor waits for the
      batch-size assertions that the static shapes could not decide.
    """
    same = b is f
    f = tf.cast(f, tf.float32)
    b = f if same else tf.cast(b, tf.float32)
    checks = self._dynamic_checks(f, mask, query_mask)
    if checks:
      # Every op that could fail on a bad batch first waits for the checks.
      with tf.control_dependencies(checks):
        f, mask, query_mask = (None if t is None else tf.identity(t)
                               for t in (f, mask, query_mask))
      b = f if same else b
    return f, b, mask, query_mask

  def _attention(self, fg_patches: tf.Tensor, bg_patches: tf.Tensor,
                 usable: tf.Tensor, hw: Tuple[tf.Tensor, tf.Tensor],
                 grid: Sequence[tf.Tensor]) -> tf.Tensor:
    """Attention of every position over the usable background patches.

    Args:
      fg_patches: [B, h*w, k*k*C] foreground patch rows
        (``attention_ops.patch_matrix``, row-major position order).
      bg_patches: [B, h*w, k*k*C] the background's, L2-normalised.
      usable: [Bm, h*w] float 0/1 from ``_usable``, in grid order.
      hw: (h, w), the attention resolution.
      grid: [w, h] when the scores are fused (which leaves them in
        column-major position order), else [h, w].

    Returns:
      [B, grid[0], grid[1], h*w] float32: scores times ``usable``,
      soft-maxed at ``softmax_scale`` over the last axis, times ``usable``
      again (zero for unusable patches).
    """
    batch = tf.shape(fg_patches)[0]
    h, w = hw
    scores = tf.matmul(fg_patches, bg_patches, transpose_b=True)
    if self.fuse:
      scores = attention_ops.fuse_scores(scores, hw, hw, self.fuse_k)
    scores = tf.reshape(scores, [batch] + list(grid) + [h * w])
    usable = usable[:, None, None, :]
    attention = tf.nn.softmax(scores * (usable * self.softmax_scale), axis=-1)
    return attention * usable

  def _flow(self, attention: tf.Tensor, hw: Tuple[tf.Tensor, tf.Tensor],
            out_hw: Tuple[tf.Tensor, tf.Tensor],
            transposed: bool) -> tf.Tensor:
    """The flow image of each position's best-matching background patch.

    Args:
      attention: [B, w, h, h*w] from ``_attention`` when ``transposed``,
        else [B, h, w, h*w].
      hw: (h, w), the attention resolution.
      out_hw: (H, W) = (h*rate, w*rate), the layer's output size.
      transposed: whether positions are in column-major order.

    Returns:
      [B,H,W,3] float32 in [-1,1] (``offsets_to_flow_image``).
    """
    h, w = hw
    best = tf.argmax(attention, axis=-1, output_type=tf.int32)
    if transposed:
      best = tf.transpose(best, [0, 2, 1])
      best_y, best_x = best % h, best // h
    else:
      best_y, best_x = best // w, best % w
    offsets = tf.stack([best_y - tf.range(h)[None, :, None],
                        best_x - tf.range(w)[None, None, :]], axis=-1)
    flow = offsets_to_flow_image(offsets)
    if self.rate > 1:
      flow = ops.resize_nearest(flow, list(out_hw))
    return flow

  def _whole_map(self, f: tf.Tensor) -> bool:
    """Whether the map is small enough to compute whole (static sizes)."""
    height, width = f.shape[1:3]
    return (height is not None and width is not None and
            (height // self.rate) * (width // self.rate)
            <= self.whole_map_positions)

  def _usable(self, mask, grid, transposed: bool) -> tf.Tensor:
    """[Bm, h*w] float 0/1: background patches without a hole pixel.

    Positions in column-major order when ``transposed``; Bm is the mask's
    batch (1 without a mask).
    """
    h, w = grid
    if mask is None:
      return tf.ones([1, h * w], tf.float32)
    mask = tf.cast(mask, tf.float32)
    if self.rate > 1:
      mask = ops.resize_nearest(mask, [h, w])
    k = self.ksize
    hole_sum = tf.nn.conv2d(mask, tf.ones([k, k, 1, 1]), 1, 'SAME')
    usable = tf.cast(tf.equal(hole_sum, 0.), tf.float32)
    if transposed:
      usable = tf.transpose(usable, [0, 2, 1, 3])
    return tf.reshape(usable, [tf.shape(mask)[0], h * w])

  @staticmethod
  def _dynamic_checks(f, mask, query_mask):
    """Batch-size assertions that the static shapes could not decide."""
    checks = []
    batch = tf.shape(f)[0]
    for name, m in (('mask', mask), ('query_mask', query_mask)):
      if m is None or (f.shape[0] is not None and m.shape[0] is not None):
        continue
      size = tf.shape(m)[0]
      checks.append(tf.debugging.Assert(
          tf.logical_or(tf.equal(size, 1), tf.equal(size, batch)),
          [f'{name}: expected batch 1 or the batch of f; got batch', size,
           'for f of batch', batch]))
    return checks
