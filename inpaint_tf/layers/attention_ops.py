"""Contextual attention as batched matrix products (``ContextualAttention``).

The steps of DeepFill v1's ``contextual_attention``, for a whole batch:

1. Background patches ``b`` of size ``ksize`` (at ``1/rate`` resolution,
   TF1 nearest resizing with ``align_corners=True``) are L2-normalised and
   matched against every foreground position: ``S = P_f @ W^T``
   ([B, h*w, L], L = number of background patches).
2. Optional fusion of ``S`` with an identity ``fuse_k x fuse_k`` kernel,
   first in row-major position order, then in column-major order, exactly as
   the original's two ``conv2d`` passes over the flattened score matrix
   (including its wrap-around at row ends).
3. Patches touching the hole are unusable: scores are multiplied by the
   usability mask, soft-maxed with ``softmax_scale``, multiplied again.
4. Raw ``2*rate`` background patches are pasted back: ``A @ R`` followed by
   an overlap-add at stride ``rate`` (the original's transposed convolution),
   divided by 4.
"""

from __future__ import annotations

from typing import Tuple

import tensorflow as tf


def patch_matrix(x: tf.Tensor, ksize: int) -> tf.Tensor:
  """Stride-1 SAME ``ksize x ksize`` patches as rows.

  Args:
    x: [B,H,W,C].
    ksize: patch size; padding follows TF's SAME rule (top = (k-1)//2).

  Returns:
    [B,H*W,ksize*ksize*C], row ``y*W + x``, columns in (ky, kx, c) order,
    the layout of ``tf.image.extract_patches``.
  """
  shape = tf.shape(x)
  height, width, channels = shape[1], shape[2], x.shape[-1]
  before = (ksize - 1) // 2
  after = ksize - 1 - before
  padded = tf.pad(x, [[0, 0], [before, after], [before, after], [0, 0]])
  columns = [padded[:, dy:dy + height, dx:dx + width, :]
             for dy in range(ksize) for dx in range(ksize)]
  patches = tf.concat(columns, axis=-1) if len(columns) > 1 else columns[0]
  return tf.reshape(patches, [shape[0], -1, ksize * ksize * channels])


def _diagonal_fuse(scores: tf.Tensor, fuse_k: int) -> tf.Tensor:
  """SAME convolution of a [B,N,L] matrix with a ``fuse_k`` identity kernel.

  ``out[i, j] = sum_t scores[i + t, j + t]`` over ``t`` in
  ``[-(k-1)//2, k-1-(k-1)//2]``, zero outside the matrix.
  """
  before = (fuse_k - 1) // 2
  after = fuse_k - 1 - before
  n, l = tf.shape(scores)[1], tf.shape(scores)[2]
  padded = tf.pad(scores, [[0, 0], [before, after], [before, after]])
  out = padded[:, 0:n, 0:l]
  for t in range(1, fuse_k):
    out += padded[:, t:t + n, t:t + l]
  return out


def fuse_scores(scores: tf.Tensor, fg_hw: Tuple[tf.Tensor, tf.Tensor],
                 bg_hw: Tuple[tf.Tensor, tf.Tensor], fuse_k: int) -> tf.Tensor:
  """The original's two fusion passes (row-major, then column-major order).

  Args:
    scores: [B, h*w, hb*wb] similarity, rows and columns in row-major order.
    fg_hw: (h, w) of the foreground map.
    bg_hw: (hb, wb) of the background map.
    fuse_k: fusion kernel size.

  Returns:
    [B, w, h, wb, hb]: fused scores left in column-major order; transposing
    them back is unnecessary because the softmax and the paste work in
    either order (see ``paste``).
  """
  batch = tf.shape(scores)[0]
  (h, w), (hb, wb) = fg_hw, bg_hw
  scores = _diagonal_fuse(scores, fuse_k)
  scores = tf.reshape(scores, [batch, h, w, hb, wb])
  scores = tf.transpose(scores, [0, 2, 1, 4, 3])
  scores = tf.reshape(scores, [batch, w * h, wb * hb])
  scores = _diagonal_fuse(scores, fuse_k)
  return tf.reshape(scores, [batch, w, h, wb, hb])


def background_blocks(b: tf.Tensor, rate: int, transposed: bool) -> tf.Tensor:
  """Splits the SAME-padded background into ``rate x rate`` blocks.

  The original pastes ``2*rate`` patches taken at stride ``rate`` with SAME
  padding (``rate//2`` before, the rest after): the patch of background
  position (i, j) is blocks (i..i+1, j..j+1) of this grid.

  Args:
    b: [B,H,W,C], H and W divisible by ``rate``.
    rate: the attention rate.
    transposed: order the block grid column-major (x before y).

  Returns:
    [B, (H/r+1)*(W/r+1), r*r*C], block rows in row-major (or column-major)
    order, each block's pixels in (ry, rx, c) order.
  """
  shape = tf.shape(b)
  channels = b.shape[-1]
  before = rate // 2
  padded = tf.pad(b, [[0, 0], [before, rate - before], [before, rate - before],
                      [0, 0]])
  blocks = tf.reshape(padded, [shape[0], shape[1] // rate + 1, rate,
                               shape[2] // rate + 1, rate, channels])
  blocks = tf.transpose(blocks,
                        [0, 3, 1, 2, 4, 5] if transposed else [0, 1, 3, 2, 4, 5])
  return tf.reshape(blocks, [shape[0], -1, rate * rate * channels])


def paste(attention: tf.Tensor, blocks: tf.Tensor,
           out_hw: Tuple[tf.Tensor, tf.Tensor], rate: int, channels: int,
           transposed: bool) -> tf.Tensor:
  """The original's transposed convolution of the attention map, divided by 4.

  Position p pastes ``sum_l A[p, l] * patch_l``, a ``2r x 2r`` patch, at
  stride r. Patches are 2x2 background blocks, and pasted patches cover 2x2
  output blocks, so output block P receives background block M with weight
  ``G[P, M] = sum_{(a,c) in {0,1}^2} A[P - (a,c), M - (a,c)]``: one matrix
  product with the background blocks (4*r*r*C columns fewer than pasting
  whole patches).

  Args:
    attention: [B, P1, P2, Q1, Q2] attention of foreground positions
      (P1, P2) over background positions (Q1, Q2); (h, w, hb, wb), or
      (w, h, wb, hb) when ``transposed``.
    blocks: [B, (Q1+1)*(Q2+1), r*r*C] from ``background_blocks`` in the
      same order.
    out_hw: (H, W) = (h*r, w*r).
    rate: the attention rate r.
    channels: C.
    transposed: whether the grids are in column-major order.

  Returns:
    [B,H,W,C].
  """
  batch = tf.shape(attention)[0]
  p1, p2 = tf.shape(attention)[1], tf.shape(attention)[2]
  weights = 0.
  for a in (0, 1):
    for c in (0, 1):
      weights += tf.pad(attention, [[0, 0], [a, 1 - a], [c, 1 - c], [a, 1 - a],
                                    [c, 1 - c]])
  weights = tf.reshape(weights, [batch, (p1 + 1) * (p2 + 1), -1])
  canvas = tf.matmul(weights, blocks)
  canvas = tf.reshape(canvas, [batch, p1 + 1, p2 + 1, rate, rate, channels])
  canvas = tf.transpose(canvas,
                        [0, 2, 3, 1, 4, 5] if transposed else [0, 1, 3, 2, 4, 5])
  height, width = out_hw
  canvas = tf.reshape(canvas, [batch, height + rate, width + rate, channels])
  start = rate // 2
  return canvas[:, start:start + height, start:start + width, :] / 4.
