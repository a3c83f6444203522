"""Completion of 8-bit images of any size with a generator, in the graph.

The generators need H and W divisible by 16 (four stride-2 encoder layers),
so this module pads the image and the mask up to the next multiple of 16,
runs the network on ``I = Igt * (1 - M)`` and crops back. Known pixels are
then copied back from the input in 8-bit, so they are returned bit for bit
(``Ic = G(I) * M + Igt * (1 - M)``); an image whose mask has no hole comes
back unchanged.

Padding (``pad_mode``), always on the bottom and right edges:

* ``'reflect'`` (default): image and mask are mirrored about the last
  row/column (``numpy.pad(..., mode='reflect')``, repeated for pads larger
  than the image). The padded band looks like natural context, and a hole
  touching the border is mirrored with it, so mirrored hole pixels never
  serve as attention sources.
* ``'constant'``: the image is padded with zeros and the mask with ones: the
  band is treated as hole, so it never serves as context, at the cost of a
  larger hole next to the border.

HD strategies (``complete_hd``), for photographs larger than the network
is trained on, as image editors offer them:

* ``'original'``: the whole image at full resolution (``complete_uint8``).
* ``'crop'``: each hole region (holes closer than ``REGION_CELL`` pixels
  form one region) is completed in its bounding box plus
  ``crop_margin`` pixels of context on every side, clipped to the image;
  a box whose longer side exceeds ``resize_limit`` is scaled down for the
  network and its fill scaled back up. Memory is bounded by
  ``resize_limit``, whatever the image size.
* ``'resize'``: the whole image, scaled so its longer side is at most
  ``resize_limit``, and the fill scaled back up.

In every strategy the known pixels come back bit for bit. Everything here
works eagerly and inside ``tf.function`` (the SavedModel of
``inpaint_tf.export`` is built from it); the NumPy-facing API is
``inpaint_tf.inpainter``.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Tuple

import tensorflow as tf

from inpaint_tf.models import SIZE_MULTIPLE

PAD_MODES = ('reflect', 'constant')
HD_STRATEGIES = ('original', 'crop', 'resize')
# Side of the cells in which hole regions are found: holes closer than this
# many pixels (at most 2x it) join one region, whose box is completed once.
REGION_CELL = 8
# The smallest network input side the strategies scale to.
MIN_RESIZE_LIMIT = 16


def check_choice(name: str, value, choices) -> None:
  """ValueError naming ``name`` unless ``value`` is one of ``choices``."""
  if value not in choices:
    raise ValueError(f'{name}: expected one of {tuple(choices)}, got '
                     f'{value!r}')


@dataclasses.dataclass(frozen=True)
class CompletionOptions:
  """How an image is padded and, when large, cropped or resized.

  Attributes:
    pad_mode: ``'reflect'`` or ``'constant'`` (see the module docstring).
    hd_strategy: ``'original'``, ``'crop'`` or ``'resize'``.
    hd_crop_margin: context around each hole region's box, in pixels
      (``'crop'``), >= 0.
    hd_resize_limit: the longest side the network sees with ``'crop'`` and
      ``'resize'``, in pixels, >= ``MIN_RESIZE_LIMIT``.

  The defaults were chosen by measurement (BUILD.md, "Inference on
  photographs").
  """
  pad_mode: str = 'reflect'
  hd_strategy: str = 'crop'
  hd_crop_margin: int = 128
  hd_resize_limit: int = 256

  def __post_init__(self):
    check_choice('pad_mode', self.pad_mode, PAD_MODES)
    check_choice('hd_strategy', self.hd_strategy, HD_STRATEGIES)
    if not isinstance(self.hd_crop_margin, int) or self.hd_crop_margin < 0:
      raise ValueError(f'hd_crop_margin: expected an int >= 0, got '
                       f'{self.hd_crop_margin!r}')
    if (not isinstance(self.hd_resize_limit, int)
        or self.hd_resize_limit < MIN_RESIZE_LIMIT):
      raise ValueError(f'hd_resize_limit: expected an int >= '
                       f'{MIN_RESIZE_LIMIT}, got {self.hd_resize_limit!r}')


# (masked [B,H,W,3] float32 in [-1,1], mask [B,H,W,1] float32 {0,1}) -> pred
# [B,H,W,3] float32 in [-1,1].
GeneratorFn = Callable[[tf.Tensor, tf.Tensor], tf.Tensor]


def uint8_to_float(x: tf.Tensor) -> tf.Tensor:
  """Maps uint8 [0,255] to float32 [-1,1]."""
  return tf.cast(x, tf.float32) / 127.5 - 1.0


def float_to_uint8(x: tf.Tensor) -> tf.Tensor:
  """Maps float32 [-1,1] to uint8 [0,255] (rounded, clipped)."""
  return tf.cast(tf.clip_by_value(tf.round((x + 1.0) * 127.5), 0.0, 255.0),
                 tf.uint8)


def _reflect_indices(size: tf.Tensor, padded: tf.Tensor) -> tf.Tensor:
  """Source index of every output position of a reflect pad at the end.

  Position ``i`` of the padded axis reads ``i`` folded into ``[0, size)``
  with period ``2 * (size - 1)`` (a triangle wave), which equals
  ``numpy.pad(..., mode='reflect')`` applied as often as needed.
  """
  i = tf.range(padded)
  period = tf.maximum(2 * (size - 1), 1)
  j = tf.math.floormod(i, period)
  return tf.where(j < size, j, period - j)


def pad_to_multiple(x: tf.Tensor, multiple: int = SIZE_MULTIPLE,
                    mode: str = 'reflect',
                    constant: float = 0.0) -> tf.Tensor:
  """Pads H and W at the bottom/right up to a multiple of ``multiple``.

  Args:
    x: [B,H,W,C] tensor, H and W may be dynamic.
    multiple: required divisor of the output H and W.
    mode: ``'reflect'`` or ``'constant'`` (see the module docstring).
    constant: fill value for ``'constant'``.

  Returns:
    [B,ceil(H/multiple)*multiple,ceil(W/multiple)*multiple,C], same dtype.
  """
  check_choice('pad_mode', mode, PAD_MODES)
  shape = tf.shape(x)
  h, w = shape[1], shape[2]
  ph = (h + multiple - 1) // multiple * multiple
  pw = (w + multiple - 1) // multiple * multiple
  if mode == 'constant':
    return tf.pad(x, [[0, 0], [0, ph - h], [0, pw - w], [0, 0]],
                  constant_values=tf.cast(constant, x.dtype))
  x = tf.gather(x, _reflect_indices(h, ph), axis=1)
  return tf.gather(x, _reflect_indices(w, pw), axis=2)


def complete_uint8(generator_fn: GeneratorFn, image: tf.Tensor,
                   mask: tf.Tensor, pad_mode: str = 'reflect',
                   multiple: int = SIZE_MULTIPLE) -> tf.Tensor:
  """Pads, runs the generator, crops back and copies the known pixels back.

  Works eagerly and inside ``tf.function`` with dynamic N, H, W.

  Args:
    generator_fn: ``(masked, mask) -> pred``, see ``GeneratorFn``.
    image: [N,H,W,3] uint8.
    mask: [N,H,W,1] any numeric dtype or bool; non-zero = hole.
    pad_mode: ``'reflect'`` or ``'constant'``.
    multiple: H and W are padded up to a multiple of this.

  Returns:
    [N,H,W,3] uint8: generated pixels inside the hole, the input elsewhere.
  """
  hole = tf.not_equal(mask, tf.zeros([], mask.dtype))
  m = tf.cast(hole, tf.float32)
  x = uint8_to_float(image)
  h, w = tf.shape(image)[1], tf.shape(image)[2]
  xp = pad_to_multiple(x, multiple, pad_mode, 0.0)
  mp = pad_to_multiple(m, multiple, pad_mode, 1.0)
  pred = generator_fn(xp * (1.0 - mp), mp)
  pred = float_to_uint8(pred[:, :h, :w, :])
  return tf.where(tf.broadcast_to(hole, tf.shape(image)), pred, image)


def hole_regions(hole: tf.Tensor, cell: int = REGION_CELL):
  """Connected hole regions of one image, found on a grid of cells.

  A cell is a hole cell when any of its pixels is; regions are the
  8-connected components of hole cells (label propagation by 3x3 max
  pooling until nothing changes).

  Args:
    hole: [H,W] bool.
    cell: cell side in pixels.

  Returns:
    ``(boxes, owner)``: [K,4] int32 ``(top, left, bottom, right)`` pixel
    boxes (bottom/right exclusive, clipped to the image) of the K regions'
    cells, and [H,W] int32, the region of each pixel's cell (-1 outside
    every region).
  """
  shape = tf.shape(hole)
  height, width = shape[0], shape[1]
  rows, cols = (height + cell - 1) // cell, (width + cell - 1) // cell
  padded = tf.pad(tf.cast(hole, tf.float32),
                  [[0, rows * cell - height], [0, cols * cell - width]])
  cells = tf.nn.max_pool2d(padded[None, :, :, None], cell, cell, 'VALID')
  cells = cells[0, :, :, 0] > 0
  start = tf.where(cells, tf.reshape(tf.range(1, rows * cols + 1),
                                     [rows, cols]), 0)

  def spread(labels, _):
    grown = tf.nn.max_pool2d(labels[None, :, :, None], 3, 1, 'SAME')
    grown = tf.where(cells, grown[0, :, :, 0], 0)
    return grown, tf.reduce_any(tf.not_equal(grown, labels))

  labels, _ = tf.while_loop(lambda _, changed: changed, spread,
                            (start, tf.constant(True)))
  ids, region = tf.unique(tf.boolean_mask(labels, cells))
  where = tf.cast(tf.where(cells), tf.int32)
  count = tf.size(ids)
  top = tf.math.unsorted_segment_min(where[:, 0], region, count) * cell
  left = tf.math.unsorted_segment_min(where[:, 1], region, count) * cell
  bottom = (tf.math.unsorted_segment_max(where[:, 0], region, count) + 1) * cell
  right = (tf.math.unsorted_segment_max(where[:, 1], region, count) + 1) * cell
  boxes = tf.stack([top, left, tf.minimum(bottom, height),
                    tf.minimum(right, width)], axis=1)
  owner = tf.scatter_nd(where, region + 1, [rows, cols]) - 1
  owner = tf.repeat(tf.repeat(owner, cell, axis=0), cell, axis=1)
  return boxes, owner[:height, :width]


def _scaled_size(height: tf.Tensor, width: tf.Tensor,
                 limit: tf.Tensor) -> Tuple[tf.Tensor, tf.Tensor]:
  """(h, w) with the longer side at most ``limit``, the aspect kept."""
  longest = tf.maximum(height, width)
  scale = tf.minimum(1.0, tf.cast(limit, tf.float32)
                     / tf.cast(longest, tf.float32))
  size = [tf.maximum(1, tf.cast(tf.round(tf.cast(d, tf.float32) * scale),
                                tf.int32)) for d in (height, width)]
  return size[0], size[1]


def _complete_scaled(generator_fn: GeneratorFn, image: tf.Tensor,
                     hole: tf.Tensor, limit: tf.Tensor,
                     pad_mode: str) -> tf.Tensor:
  """One image completed at most ``limit`` pixels on its longer side.

  Args:
    image: [H,W,3] uint8.
    hole: [H,W,1] bool.
    limit: scalar int32.

  Returns:
    [H,W,3] uint8: the network's image (scaled back when it was scaled
    down) inside and around the hole; the caller keeps the known pixels.
  """
  height, width = tf.shape(image)[0], tf.shape(image)[1]
  # At scale 1 both resizes are exact copies, so one code path (and one
  # trace of the generator) serves every size.
  size = tf.stack(_scaled_size(height, width, limit))
  small = tf.image.resize(tf.cast(image, tf.float32), size, 'area')
  small = tf.cast(tf.clip_by_value(tf.round(small), 0., 255.), tf.uint8)
  # A small pixel is a hole when any pixel it covers is.
  small_hole = tf.image.resize(tf.cast(hole, tf.float32), size, 'area') > 0
  done = complete_uint8(generator_fn, small[None], small_hole[None],
                        pad_mode)[0]
  up = tf.image.resize(tf.cast(done, tf.float32), [height, width], 'bilinear')
  return tf.cast(tf.clip_by_value(tf.round(up), 0., 255.), tf.uint8)


def _strategy_checks(strategy, crop_margin, resize_limit):
  """In-graph checks of the strategy arguments (the serving signature's)."""
  return [
      tf.debugging.Assert(
          tf.reduce_any(tf.equal(strategy, tf.constant(HD_STRATEGIES))),
          ['hd_strategy: expected one of original, crop, resize; got',
           strategy]),
      tf.debugging.Assert(
          crop_margin >= 0, ['hd_crop_margin: expected >= 0, got',
                             crop_margin]),
      tf.debugging.Assert(
          resize_limit >= MIN_RESIZE_LIMIT,
          [f'hd_resize_limit: expected >= {MIN_RESIZE_LIMIT}, got',
           resize_limit]),
  ]


def _complete_one_hd(generator_fn: GeneratorFn, image: tf.Tensor,
                     hole: tf.Tensor, strategy: tf.Tensor,
                     crop_margin: tf.Tensor, resize_limit: tf.Tensor,
                     pad_mode: str) -> tf.Tensor:
  """``complete_hd`` of one image: [H,W,3] uint8, [H,W,1] bool."""
  height, width = tf.shape(image)[0], tf.shape(image)[1]
  crop = tf.equal(strategy, 'crop')
  # 'original' never scales: its limit is the image's own size.
  limit = tf.where(tf.equal(strategy, 'original'),
                   tf.maximum(height, width), resize_limit)
  margin = tf.where(crop, crop_margin, 0)

  def whole_image():
    return (tf.stack([[0, 0, height, width]]),
            tf.zeros([height, width], tf.int32))

  boxes, owner = tf.cond(crop, lambda: hole_regions(hole[..., 0]),
                         whole_image)

  def fill(k, out):
    top, left, bottom, right = tf.unstack(boxes[k])
    top, left = tf.maximum(top - margin, 0), tf.maximum(left - margin, 0)
    bottom = tf.minimum(bottom + margin, height)
    right = tf.minimum(right + margin, width)
    done = _complete_scaled(generator_fn, image[top:bottom, left:right],
                            hole[top:bottom, left:right], limit, pad_mode)
    done = tf.pad(done, [[top, height - bottom], [left, width - right],
                         [0, 0]])
    own = tf.logical_and(hole, tf.equal(owner, k)[..., None])
    return k + 1, tf.where(tf.broadcast_to(own, tf.shape(out)), done, out)

  _, out = tf.while_loop(lambda k, _: k < tf.shape(boxes)[0], fill,
                         (tf.constant(0), image))
  return out


def complete_hd(generator_fn: GeneratorFn, image: tf.Tensor, mask: tf.Tensor,
                strategy, crop_margin, resize_limit,
                pad_mode: str = 'reflect') -> tf.Tensor:
  """Completes images with an HD strategy (see the module docstring).

  Works eagerly and inside ``tf.function`` with dynamic N, H, W; the
  strategy arguments may be tensors (they are checked in the graph).
  Images are completed one at a time (each has its own regions).

  Args:
    generator_fn: ``(masked, mask) -> pred``, see ``GeneratorFn``.
    image: [N,H,W,3] uint8.
    mask: [N,H,W,1] any numeric dtype or bool; non-zero = hole.
    strategy: ``'original'``, ``'crop'`` or ``'resize'`` (string scalar).
    crop_margin: context pixels around each region's box (int scalar >= 0).
    resize_limit: longest side the network sees with ``'crop'`` and
      ``'resize'`` (int scalar >= ``MIN_RESIZE_LIMIT``).
    pad_mode: ``'reflect'`` or ``'constant'``.

  Returns:
    [N,H,W,3] uint8: generated pixels inside the hole, the input (bit for
    bit) elsewhere.
  """
  strategy = tf.convert_to_tensor(strategy, tf.string)
  crop_margin = tf.convert_to_tensor(crop_margin, tf.int32)
  resize_limit = tf.convert_to_tensor(resize_limit, tf.int32)
  with tf.control_dependencies(_strategy_checks(strategy, crop_margin,
                                                resize_limit)):
    image = tf.identity(image)
  hole = tf.not_equal(mask, tf.zeros([], mask.dtype))
  hole = tf.broadcast_to(hole, tf.concat([tf.shape(image)[:3], [1]], 0))
  return tf.map_fn(
      lambda pair: _complete_one_hd(generator_fn, pair[0], pair[1], strategy,
                                    crop_margin, resize_limit, pad_mode),
      (image, hole), fn_output_signature=tf.TensorSpec([None, None, 3],
                                                       tf.uint8),
      parallel_iterations=1)
