"""Hole masks: GMCNN's square holes, and ``make_mask_fn`` over every kind.

* Square holes follow GMCNN's ``random_bbox`` and ``bbox2mask``
  (shepnerd/inpainting_gmcnn, ``tensorflow/net/ops.py``): the top-left
  corner is uniform in ``[margin, size - margin - hole)`` (upper bound
  excluded, as ``tf.random_uniform``'s ``maxval``), then every side of the
  box is pulled in by the same random amount in ``[0, max_delta // 2]`` per
  axis. ``center_square_mask`` is GMCNN's fixed test-time box
  (``util.generate_mask_rect(rand=False)``).
* Free-form strokes are ``masks_free_form``'s; external mask sets such as
  NVIDIA's irregular masks, and the hole-ratio bins they are reported in,
  are ``mask_folder``'s.

Every mask is float32 ``[H,W,1]`` with 1 = hole, 0 = known. The numpy
generators draw from a ``np.random.Generator`` and are deterministic given
its seed; ``make_mask_fn`` wraps them behind one call signature for the data
pipeline and the evaluation tools (its 'mixed' type draws a square hole or
free-form strokes, half of the time each).
"""

from __future__ import annotations

from typing import Callable, Optional, Sequence, Tuple, Union

import numpy as np

from inpaint_tf import config as config_lib
from inpaint_tf import image_io
from inpaint_tf.mask_folder import MaskFolder
from inpaint_tf.masks_free_form import free_form_mask

Pair = Union[int, Sequence[int]]
MaskFn = Callable[[np.random.Generator], np.ndarray]


def _check_square_args(height, width, hole_size, margin, max_delta):
  """Validates square-hole arguments; returns them as int pairs."""
  size = image_io.check_image_size(height, width)
  hole = image_io.pair('hole_size', hole_size)
  margin = image_io.pair('margin', margin, allow_zero=True)
  delta = image_io.pair('max_delta', max_delta, allow_zero=True)
  for axis, name in enumerate(('height', 'width')):
    if hole[axis] + 2 * margin[axis] > size[axis]:
      raise ValueError(
          f'hole_size: expected hole {name} + 2 * margin <= image {name} '
          f'{size[axis]}, got hole_size={hole_size!r}, margin={margin[axis]}')
    if 2 * (delta[axis] // 2) >= hole[axis]:
      raise ValueError(
          f'max_delta: expected 2 * (max_delta // 2) < hole {name} '
          f'{hole[axis]} (the shrunk hole must not vanish), got {max_delta!r}')
  return size, hole, margin, delta


def random_bbox(height: int, width: int, hole_size: Pair, margin: Pair,
                rng: np.random.Generator) -> Tuple[int, int, int, int]:
  """GMCNN's ``random_bbox``: a hole box at a uniform random position.

  Args:
    height: image height.
    width: image width.
    hole_size: box size, int or (height, width).
    margin: minimum distance to the top/left border, int or pair; the box
      also stays ``margin + 1`` pixels away from the bottom/right border
      when there is room (the upper bound is excluded, as in GMCNN).
    rng: random generator.

  Returns:
    (top, left, box_height, box_width).
  """
  (h, w), hole, margin, _ = _check_square_args(height, width, hole_size,
                                               margin, 0)
  top = int(rng.integers(margin[0], max(h - margin[0] - hole[0],
                                        margin[0] + 1)))
  left = int(rng.integers(margin[1], max(w - margin[1] - hole[1],
                                         margin[1] + 1)))
  return top, left, hole[0], hole[1]


def bbox_to_mask(height: int, width: int, bbox: Sequence[int],
                 max_delta: Pair, rng: np.random.Generator) -> np.ndarray:
  """GMCNN's ``bbox2mask``: the box, each side pulled in by a random amount.

  Args:
    height: image height.
    width: image width.
    bbox: (top, left, box_height, box_width).
    max_delta: int or pair; the box shrinks by ``d`` on both sides of an
      axis, ``d`` uniform in ``[0, max_delta // 2]``.
    rng: random generator.

  Returns:
    float32 [H,W,1], 1 = hole.
  """
  top, left, bh, bw = (int(v) for v in bbox)
  (h, w), _, _, delta = _check_square_args(height, width, (bh, bw), 0,
                                           max_delta)
  if top < 0 or left < 0 or top + bh > h or left + bw > w:
    raise ValueError(f'bbox: expected a box inside the {h}x{w} image, got '
                     f'{tuple(bbox)!r}')
  dh = int(rng.integers(delta[0] // 2 + 1))
  dw = int(rng.integers(delta[1] // 2 + 1))
  mask = np.zeros((h, w, 1), np.float32)
  mask[top + dh:top + bh - dh, left + dw:left + bw - dw] = 1.
  return mask


def random_square_mask(height: int, width: int, hole_size: Pair,
                       margin: Pair, max_delta: Pair,
                       rng: np.random.Generator) -> np.ndarray:
  """A random rectangular hole (GMCNN ``random_bbox`` + ``bbox2mask``).

  Args:
    height: image height.
    width: image width.
    hole_size: hole size before shrinking, int or (height, width).
    margin: int or pair, see ``random_bbox``.
    max_delta: int or pair, see ``bbox_to_mask``.
    rng: random generator.

  Returns:
    float32 [H,W,1], 1 = hole.

  Raises:
    ValueError: the hole (plus margins) does not fit, or would vanish.
  """
  _check_square_args(height, width, hole_size, margin, max_delta)
  bbox = random_bbox(height, width, hole_size, margin, rng)
  return bbox_to_mask(height, width, bbox, max_delta, rng)


def center_square_mask(height: int, width: int, hole_size: Pair) -> np.ndarray:
  """The centred hole of GMCNN's test-time masks.

  Args:
    height: image height.
    width: image width.
    hole_size: int or (height, width).

  Returns:
    float32 [H,W,1], 1 inside ``[(H - h) // 2, (H - h) // 2 + h)`` x
    ``[(W - w) // 2, (W - w) // 2 + w)``.
  """
  (h, w), hole, _, _ = _check_square_args(height, width, hole_size, 0, 0)
  top, left = (h - hole[0]) // 2, (w - hole[1]) // 2
  mask = np.zeros((h, w, 1), np.float32)
  mask[top:top + hole[0], left:left + hole[1]] = 1.
  return mask


def make_mask_fn(mask_config: config_lib.MaskConfig, height: int, width: int,
                 mask_folder: Optional[MaskFolder] = None) -> MaskFn:
  """One mask generator for training and evaluation.

  Args:
    mask_config: ``MaskConfig``; ``mask_type`` is one of
      ``config.MASK_TYPES``. 'mixed' draws a square hole (the square
      fields) or free-form strokes (the ``ff_*`` fields) with probability
      1/2 each.
    height: image height.
    width: image width.
    mask_folder: required for ``mask_type == 'folder'``.

  Returns:
    A function ``rng -> float32 [H,W,1]`` (1 = hole) that draws from the
    given ``np.random.Generator`` only.

  Raises:
    ValueError: unknown mask type, missing folder, or arguments that do
      not fit the image size (checked now, not at the first call).
  """
  height, width = image_io.check_image_size(height, width)
  kind = mask_config.mask_type
  if kind not in config_lib.MASK_TYPES:
    raise ValueError(f'mask_type: expected one of {config_lib.MASK_TYPES}, '
                     f'got {kind!r}')
  if kind in ('square', 'mixed'):
    _check_square_args(height, width, mask_config.hole_size,
                       mask_config.margin, mask_config.max_delta)

    def square_fn(rng):
      return random_square_mask(height, width, mask_config.hole_size,
                                mask_config.margin, mask_config.max_delta, rng)
  if kind in ('free_form', 'mixed'):
    kwargs = dict(max_vertex=mask_config.ff_max_vertex,
                  max_length=mask_config.ff_max_length,
                  max_brush_width=mask_config.ff_max_brush_width,
                  max_angle=mask_config.ff_max_angle,
                  parts=mask_config.ff_parts)
    free_form_mask(height, width, np.random.default_rng(0), **kwargs)

    def free_form_fn(rng):
      return free_form_mask(height, width, rng, **kwargs)
  if kind == 'square':
    fn = square_fn
  elif kind == 'free_form':
    fn = free_form_fn
  elif kind == 'mixed':

    def fn(rng):
      # One draw picks the type, then that generator draws from the same rng.
      return square_fn(rng) if rng.random() < 0.5 else free_form_fn(rng)
  elif kind == 'center':
    fixed = center_square_mask(height, width, mask_config.hole_size)

    def fn(rng):
      del rng
      return fixed.copy()
  else:
    if not isinstance(mask_folder, MaskFolder):
      raise ValueError(f'mask_folder: expected a MaskFolder for mask_type '
                       f"'folder', got {mask_folder!r}")

    def fn(rng):
      return mask_folder.sample(rng, (height, width))
  return fn
