"""Contextual attention restricted to queried positions, in chunks.

``ContextualAttention`` scores every foreground position against every
background patch: an [N, L] matrix, N = L = (H/rate) * (W/rate), which
grows with the square of the image (17 GB at 2048x2048 for GEPE-Net's E3).
The generator keeps the layer's output only inside the hole, so this module
computes the output only at queried positions and only the score rows they
need, a chunk of output blocks at a time:

* output pixel (Y, X) is the paste's output block
  ``P = ((Y + r//2) // r, (X + r//2) // r)`` of the padded canvas;
* block P sums the attention rows of the positions ``P - (dy, dx)``,
  ``dy, dx`` in {0, 1} (the ``2*rate`` paste at stride ``rate``);
* the fused score row of position q sums the raw score rows of its
  ``fuse_k`` neighbours in column-major order, each of which sums those of
  its ``fuse_k`` neighbours in row-major order (the original's two fusion
  passes over the flattened score matrix, wrap-around at row ends
  included).

Each chunk computes the distinct raw score rows its blocks need (one
matrix product), the fused and soft-maxed attention rows, and the pasted
blocks; memory is bounded by (chunk x L), not (N x L). Chunks follow square
tiles of the block grid, so the rows shared by neighbouring blocks are
computed once. Every sum is taken in the order the full layer takes it, so
the values equal the full layer's to float32 rounding of the matrix
products. Index sets have data-dependent sizes, so this path does not
compile with XLA (the full path does).
"""

from __future__ import annotations

import math
from typing import Tuple

import tensorflow as tf

# Paste terms (dy, dx) in the order the full layer sums them: its padding
# loop runs over (a, c) on the grid it works in, (x, y) when transposed.
_TERMS = {False: ((0, 0), (0, 1), (1, 0), (1, 1)),
          True: ((0, 0), (1, 0), (0, 1), (1, 1))}


def needed_blocks(query: tf.Tensor, rate: int) -> tf.Tensor:
  """The paste's output blocks that hold at least one queried pixel.

  Args:
    query: [B,H,W,1] bool, True = compute here; H, W divisible by ``rate``.
    rate: the attention rate r.

  Returns:
    [B, H/r + 1, W/r + 1] bool over the blocks of the canvas padded by
    ``r//2`` before and ``r - r//2`` after.
  """
  before = rate // 2
  q = tf.cast(query[..., 0], tf.int32)
  q = tf.pad(q, [[0, 0], [before, rate - before], [before, rate - before]])
  shape = tf.shape(q)
  q = tf.reshape(q, [shape[0], shape[1] // rate, rate, shape[2] // rate, rate])
  return tf.reduce_max(q, axis=[2, 4]) > 0


def _chunk_table(needed: tf.Tensor, chunk: int):
  """Splits each sample's needed blocks into chunks of ``chunk`` blocks.

  Blocks are ordered by square tiles of side ~sqrt(chunk), so a chunk is a
  compact region; a chunk never spans two samples.

  Args:
    needed: [B, h+1, w+1] bool from ``needed_blocks``.
    chunk: blocks per chunk.

  Returns:
    ``(sample, blocks, valid)``: [T] int32, the sample of each chunk;
    [T, chunk] int32, its flattened block indices ``py * (w+1) + px`` (0
    where not valid); [T, chunk] bool.
  """
  shape = tf.shape(needed)
  width = shape[2]
  tile = max(1, math.isqrt(chunk))
  where = tf.cast(tf.where(needed), tf.int32)  # [Q, 3] (s, py, px), sorted
  s, py, px = where[:, 0], where[:, 1], where[:, 2]
  tiles_x = (width + tile - 1) // tile
  tile_id = (py // tile) * tiles_x + px // tile
  # Sorting by (sample, tile, position in tile) keeps samples contiguous.
  key = ((tf.cast(s, tf.int64) * tf.cast(shape[1] * shape[2], tf.int64)
          + tf.cast(tile_id, tf.int64)) * tile * tile
         + tf.cast((py % tile) * tile + px % tile, tf.int64))
  flat = tf.gather(py * width + px, tf.argsort(key, stable=True))
  counts = tf.reduce_sum(tf.cast(needed, tf.int32), axis=[1, 2])  # [B]
  first = tf.cumsum(counts, exclusive=True)
  chunks = (counts + chunk - 1) // chunk
  chunk_end = tf.cumsum(chunks)
  total = tf.reduce_sum(chunks)
  ids = tf.range(total)
  sample = tf.searchsorted(chunk_end, ids, side='right')
  local = (ids - (tf.gather(chunk_end, sample) - tf.gather(chunks, sample)))
  offset = local[:, None] * chunk + tf.range(chunk)[None, :]
  valid = offset < tf.gather(counts, sample)[:, None]
  index = tf.gather(first, sample)[:, None] + offset
  index = tf.where(valid, index, 0)
  blocks = tf.where(valid, tf.gather(flat, tf.minimum(
      index, tf.maximum(tf.size(flat) - 1, 0))), 0)
  return sample, blocks, valid


def _gather_distinct(index: tf.Tensor, valid: tf.Tensor):
  """Distinct valid indices, and where each entry finds its row.

  Args:
    index: [E] int32.
    valid: [E] bool.

  Returns:
    ``(distinct [D], position [E])``: ``position`` points into ``distinct``
    for valid entries and at D (a zero row the caller appends) otherwise.
  """
  distinct, position = tf.unique(tf.boolean_mask(index, valid))
  count = tf.size(distinct)
  slot = tf.cumsum(tf.cast(valid, tf.int32), exclusive=True)
  position = tf.gather(tf.concat([position, [count]], axis=0),
                       tf.where(valid, slot, tf.size(position)))
  return distinct, position


def _with_zero_row(x: tf.Tensor) -> tf.Tensor:
  return tf.concat([x, tf.zeros_like(x[:1])], axis=0)


def _after(*tensors):
  """Control inputs that order a chunk's [rows, L] terms one after another.

  Without them the executor may compute every term of a sum at once.
  """
  return [t for t in tensors if t is not None]


class QueryAttention:
  """The per-chunk computation; see the module docstring.

  Args:
    fg: [B, N, K] foreground patch rows (row-major positions).
    bg: [B, L, K] L2-normalised background patch rows (row-major).
    usable: [Bm, L] float 0/1, in the column order of the scores
      (column-major when fusing); Bm is 1 or B.
    blocks: [B, M, r*r*C] background blocks from
      ``attention_ops.background_blocks`` in the same order.
    grid: (h, w) of the attention grid.
    fuse_k: fusion kernel size; ``None`` without fusion.
    softmax_scale: the softmax temperature.
  """

  def __init__(self, fg, bg, usable, blocks, grid: Tuple[tf.Tensor, tf.Tensor],
               fuse_k, softmax_scale: float):
    self.h, self.w = grid
    self.n = self.h * self.w
    self.fuse_k = fuse_k
    self.transposed = fuse_k is not None
    k = fuse_k or 1
    self.before, self.after = (k - 1) // 2, k - 1 - (k - 1) // 2
    self.fg, self.usable, self.blocks = fg, usable, blocks
    # Zero background rows around the matrix: the score product then gives
    # rows padded for the column shifts of the fusion.
    self.bg = tf.pad(bg, [[0, 0], [self.before, self.after], [0, 0]])
    self.softmax_scale = softmax_scale

  def _shifted_sum(self, rows: tf.Tensor, position, offsets) -> tf.Tensor:
    """``sum_t rows[position[t]][j + t]`` over the offsets, in their order.

    ``rows`` [R, L + k - 1] hold each row padded for the shifts; returns
    [E, L].
    """
    out = None
    for t, where in zip(offsets, position):
      with tf.control_dependencies(_after(out)):
        part = tf.gather(rows, where)
      part = part[:, t + self.before:t + self.before + self.n]
      out = part if out is None else out + part
    return out

  def _scores(self, sample: tf.Tensor, rows: tf.Tensor) -> tf.Tensor:
    """[V, L] (fused) scores of the row-major positions ``rows``."""
    fg, bg = self.fg[sample], self.bg[sample]
    if not self.transposed:
      raw = tf.matmul(tf.gather(fg, rows), bg, transpose_b=True)
      return raw[:, self.before:self.before + self.n]
    h, w, n = self.h, self.w, self.n
    offsets = range(-self.before, self.after + 1)
    # Second pass (column-major): the first-pass rows each row sums.
    column_major = (rows % w) * h + rows // w
    second = [column_major + t for t in offsets]
    second_ok = [(i >= 0) & (i < n) for i in second]
    second = [(i % h) * w + i // h for i in second]
    middle, middle_at = _gather_distinct(tf.concat(second, 0),
                                         tf.concat(second_ok, 0))
    # First pass (row-major): the raw rows each first-pass row sums.
    first = [middle + t for t in offsets]
    raw_rows, raw_at = _gather_distinct(
        tf.concat(first, 0), tf.concat([(i >= 0) & (i < n) for i in first], 0))
    raw = tf.matmul(_with_zero_row(tf.gather(fg, raw_rows)), bg,
                    transpose_b=True)  # [U + 1, L + k - 1], last row zero
    count = tf.size(middle)
    fused = self._shifted_sum(
        raw, tf.split(raw_at, len(first)), offsets)  # [D, L], row-major cols
    fused = tf.reshape(tf.transpose(tf.reshape(fused, [count, h, w]),
                                    [0, 2, 1]), [count, n])
    fused = tf.pad(_with_zero_row(fused), [[0, 0], [self.before, self.after]])
    return self._shifted_sum(fused, tf.split(middle_at, len(second)), offsets)

  def chunk(self, sample: tf.Tensor, blocks: tf.Tensor,
            valid: tf.Tensor) -> tf.Tensor:
    """Pasted output blocks of one chunk.

    Args:
      sample: scalar int32.
      blocks: [C] flattened block indices ``py * (w+1) + px``.
      valid: [C] bool.

    Returns:
      [C, r*r*C_f]: the canvas blocks (before the division by 4), zero
      where not valid.
    """
    h, w = self.h, self.w
    py, px = blocks // (w + 1), blocks % (w + 1)
    terms = _TERMS[self.transposed]
    index, ok = [], []
    for dy, dx in terms:
      qy, qx = py - dy, px - dx
      index.append(qy * w + qx)
      ok.append(valid & (qy >= 0) & (qy < h) & (qx >= 0) & (qx < w))
    rows, row_at = _gather_distinct(tf.concat(index, 0), tf.concat(ok, 0))
    scores = self._scores(sample, rows)
    usable = self.usable[tf.minimum(sample, tf.shape(self.usable)[0] - 1)]
    attention = tf.nn.softmax(scores * (usable * self.softmax_scale), axis=-1)
    attention = _with_zero_row(attention * usable)
    grid = (w, h) if self.transposed else (h, w)
    weights = None
    for (dy, dx), where in zip(terms, tf.split(row_at, len(terms))):
      with tf.control_dependencies(_after(weights)):
        part = tf.gather(attention, where)
      shift = (dx, dy) if self.transposed else (dy, dx)
      part = tf.pad(tf.reshape(part, [-1, grid[0], grid[1]]),
                    [[0, 0], [shift[0], 1 - shift[0]], [shift[1], 1 - shift[1]]])
      part = tf.reshape(part, [tf.size(blocks), -1])
      weights = part if weights is None else weights + part
    return tf.matmul(weights, self.blocks[sample])


def query_attention(fg: tf.Tensor, bg: tf.Tensor, usable: tf.Tensor,
                    blocks: tf.Tensor, query: tf.Tensor, rate: int,
                    fuse_k, softmax_scale: float, chunk: int) -> tf.Tensor:
  """Contextual attention at the queried pixels, chunk by chunk.

  Args:
    fg, bg, usable, blocks, fuse_k, softmax_scale: see ``QueryAttention``.
    query: [B,H,W,1] bool (True = compute here), H = h*rate, W = w*rate.
    rate: the attention rate r.
    chunk: output blocks per chunk (each chunk holds a few [chunk, L]
      float32 matrices).

  Returns:
    [B,H,W,C_f] float32: the full layer's output at queried pixels, zero
    elsewhere.
  """
  shape = tf.shape(query)
  batch, height, width = shape[0], shape[1], shape[2]
  grid = (height // rate, width // rate)
  needed = needed_blocks(query, rate)
  sample, block_index, valid = _chunk_table(needed, chunk)
  op = QueryAttention(fg, bg, usable, blocks, grid, fuse_k, softmax_scale)
  depth = blocks.shape[-1]
  pasted = tf.map_fn(
      lambda args: op.chunk(*args), (sample, block_index, valid),
      fn_output_signature=tf.TensorSpec([chunk, depth], tf.float32),
      parallel_iterations=1)
  keep = tf.reshape(valid, [-1])
  target = tf.stack([tf.repeat(sample, chunk),
                     tf.reshape(block_index, [-1])], axis=1)
  blocks_h, blocks_w = grid[0] + 1, grid[1] + 1
  canvas = tf.scatter_nd(tf.boolean_mask(target, keep),
                         tf.boolean_mask(tf.reshape(pasted, [-1, depth]),
                                         keep),
                         tf.stack([batch, blocks_h * blocks_w, depth]))
  channels = depth // (rate * rate)
  canvas = tf.reshape(canvas, [batch, blocks_h, blocks_w, rate, rate, channels])
  canvas = tf.transpose(canvas, [0, 1, 3, 2, 4, 5])
  canvas = tf.reshape(canvas, [batch, blocks_h * rate, blocks_w * rate,
                               channels])
  start = rate // 2
  y = canvas[:, start:start + height, start:start + width, :] / 4.
  return y * tf.cast(query, y.dtype)
