"""Hole masks: GMCNN's square holes, free-form strokes, external mask sets.

* Square holes follow GMCNN's ``random_bbox`` and ``bbox2mask``
  (shepnerd/inpainting_gmcnn, ``tensorflow/net/ops.py``): the top-left
  corner is uniform in ``[margin, size - margin - hole)`` (upper bound
  excluded, as ``tf.random_uniform``'s ``maxval``), then every side of the
  box is pulled in by the same random amount in ``[0, max_delta // 2]`` per
  axis. ``center_square_mask`` is GMCNN's fixed test-time box
  (``util.generate_mask_rect(rand=False)``).
* Free-form strokes follow GMCNN's ``np_free_form_mask`` (the DeepFill v2
  generator): random walks of thick line segments, ``parts`` of them
  merged. Differences, all deliberate: every stroke has at least one vertex
  (GMCNN may draw nothing), the joints are filled discs (GMCNN draws a
  1-pixel circle outline there, hidden by the round line caps anyway),
  points are rounded (GMCNN truncates) and given to OpenCV as (x, y) (GMCNN
  swaps them, which matters only for non-square images), and the ``parts``
  strokes are independent (GMCNN's graph version adds one ``py_func``
  output to itself ``parts`` times, so its training masks are a single
  stroke).
* ``MaskFolder`` reads an external set such as NVIDIA's irregular masks and
  groups it by hole ratio in the bins used to report results,
  ``(0.01,0.1]``, ``(0.1,0.2]``, ..., ``(0.5,0.6]``.

Every mask is float32 ``[H,W,1]`` with 1 = hole, 0 = known. The numpy
generators draw from a ``np.random.Generator`` and are deterministic given
its seed; ``make_mask_fn`` wraps them behind one call signature for the data
pipeline and the evaluation tools (its 'mixed' type draws a square hole or
free-form strokes, half of the time each).
"""

from __future__ import annotations

import fractions
import os
import threading
from typing import Callable, List, Optional, Sequence, Tuple, Union

from absl import logging
import cv2
import numpy as np

from inpaint_tf import config as config_lib
from inpaint_tf import image_io
from inpaint_tf import ops

Pair = Union[int, Sequence[int]]
MaskFn = Callable[[np.random.Generator], np.ndarray]

# Hole-ratio bins (lower bound excluded, upper bound included).
HOLE_RATIO_BINS = ((0.01, 0.1), (0.1, 0.2), (0.2, 0.3), (0.3, 0.4),
                   (0.4, 0.5), (0.5, 0.6))
HOLE_RATIO_LABELS = tuple(f'({lo:g},{hi:g}]' for lo, hi in HOLE_RATIO_BINS)
# Label of masks outside every bin (no hole, tiny or very large holes).
OTHER_BIN = 'other'
# Free-form brushes are at least this wide (GMCNN's randint(10, max + 1)).
_MIN_BRUSH_WIDTH = 10


def _check_image_size(height: int, width: int) -> Tuple[int, int]:
  for name, value in (('height', height), ('width', width)):
    if (not isinstance(value, (int, np.integer)) or isinstance(value, bool)
        or value <= 0):
      raise ValueError(f'{name}: expected a positive int, got {value!r}')
  return int(height), int(width)


def _check_square_args(height, width, hole_size, margin, max_delta):
  """Validates square-hole arguments; returns them as int pairs."""
  size = _check_image_size(height, width)
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


def free_form_mask(height: int, width: int, rng: np.random.Generator,
                   max_vertex: Optional[int] = None,
                   max_length: Optional[int] = None,
                   max_brush_width: Optional[int] = None,
                   max_angle: Optional[int] = None,
                   parts: Optional[int] = None) -> np.ndarray:
  """Free-form brush strokes (GMCNN ``np_free_form_mask``, DeepFill v2).

  Each of ``parts`` strokes starts at a uniform random pixel and makes
  1..``max_vertex`` segments; a segment turns by a random angle in
  ``[0, max_angle]`` degrees (mirrored on even segments), runs
  ``0..max_length`` pixels (clipped to the image) and has an even width in
  ``[min(10, max_brush_width), max_brush_width]``. Unset arguments take the
  ``MaskConfig`` defaults.

  Args:
    height: image height.
    width: image width.
    rng: random generator.
    max_vertex: maximum number of segments per stroke.
    max_length: maximum segment length in pixels.
    max_brush_width: maximum brush width in pixels (>= 2).
    max_angle: maximum turn in degrees.
    parts: number of strokes.

  Returns:
    float32 [H,W,1] in {0, 1}, 1 = hole.
  """
  h, w = _check_image_size(height, width)
  defaults = config_lib.MaskConfig()
  args = {
      'max_vertex': (max_vertex, defaults.ff_max_vertex, 1),
      'max_length': (max_length, defaults.ff_max_length, 0),
      'max_brush_width': (max_brush_width, defaults.ff_max_brush_width, 2),
      'max_angle': (max_angle, defaults.ff_max_angle, 0),
      'parts': (parts, defaults.ff_parts, 1),
  }
  values = {}
  for name, (value, default, minimum) in args.items():
    value = default if value is None else value
    if (not isinstance(value, (int, np.integer)) or isinstance(value, bool)
        or value < minimum):
      raise ValueError(f'{name}: expected an int >= {minimum}, got {value!r}')
    values[name] = int(value)
  min_width = min(_MIN_BRUSH_WIDTH, values['max_brush_width'])

  canvas = np.zeros((h, w), np.uint8)
  for _ in range(values['parts']):
    y, x = int(rng.integers(h)), int(rng.integers(w))
    for i in range(int(rng.integers(1, values['max_vertex'] + 1))):
      angle = np.deg2rad(rng.integers(values['max_angle'] + 1))
      if i % 2 == 0:
        angle = 2 * np.pi - angle
      length = int(rng.integers(values['max_length'] + 1))
      brush = int(rng.integers(min_width, values['max_brush_width'] + 1))
      brush = max(brush // 2 * 2, 2)
      next_y = int(np.clip(np.rint(y + length * np.cos(angle)), 0, h - 1))
      next_x = int(np.clip(np.rint(x + length * np.sin(angle)), 0, w - 1))
      cv2.line(canvas, (x, y), (next_x, next_y), 1, brush)
      cv2.circle(canvas, (x, y), brush // 2, 1, -1)
      cv2.circle(canvas, (next_x, next_y), brush // 2, 1, -1)
      y, x = next_y, next_x
  return canvas.astype(np.float32)[..., None]


def hole_ratio(mask: np.ndarray) -> float:
  """Fraction of hole pixels (value > 0.5) of a [H,W] or [H,W,1] mask."""
  mask = np.asarray(mask)
  return float(np.count_nonzero(mask > 0.5)) / max(mask.size, 1)


def hole_ratio_bin(mask: np.ndarray) -> str:
  """The ``HOLE_RATIO_LABELS`` bin of a mask's hole ratio.

  Bin edges are compared exactly (in integers), so a 10x10 mask with 10
  hole pixels is in '(0.01,0.1]'.

  Args:
    mask: [H,W] or [H,W,1], hole where > 0.5.

  Returns:
    A label such as '(0.1,0.2]', or ``OTHER_BIN`` outside every bin.
  """
  mask = np.asarray(mask)
  holes, total = np.count_nonzero(mask > 0.5), mask.size
  for (lo, hi), label in zip(HOLE_RATIO_BINS, HOLE_RATIO_LABELS):
    lo, hi = fractions.Fraction(str(lo)), fractions.Fraction(str(hi))
    if lo * total < holes <= hi * total:
      return label
  return OTHER_BIN


class MaskFolder:
  """A set of external mask images (e.g. NVIDIA's irregular masks).

  Masks are read on demand (``image_io.load_mask``: any 8-bit image,
  non-zero = hole, or zero = hole with ``invert``) and resized to the
  requested size with nearest-neighbour sampling. NVIDIA's irregular
  *testing* masks (12,000 PNGs used by most papers) draw holes in white:
  use them as they are; the *training* masks of the same release draw holes
  in black: pass ``invert=True``.

  The hole ratio of every file (at its own resolution) is computed the first
  time it is needed and cached; it selects files per bin in ``sample``.
  Resizing can move a mask across a bin edge by a small amount; report the
  bin of the mask actually used with ``hole_ratio_bin``.

  A file that cannot be decoded is skipped by ``sample`` with one warning
  and never drawn again.
  """

  def __init__(self, path: Union[str, os.PathLike], invert: bool = False,
               check_exists: bool = True, argument: str = 'path'):
    """Lists the masks.

    Args:
      path: folder (searched recursively) or text file list of masks.
      invert: holes are the zero pixels.
      check_exists: see ``image_io.list_images``.
      argument: the setting that gave ``path`` (``'mask_dir'``), which
        starts every error about the folder.

    Raises:
      ValueError: the path is missing or holds no image.
    """
    self.path = os.fspath(path)
    self.invert = bool(invert)
    self.argument = argument
    try:
      self.files: List[str] = image_io.list_images(self.path, check_exists)
    except ValueError as e:
      raise ops.renamed(e, argument) from None
    self._ratios: Optional[np.ndarray] = None
    self._bad = set()
    self._lock = threading.Lock()

  def __len__(self) -> int:
    return len(self.files)

  def __repr__(self) -> str:
    return (f'MaskFolder({self.path!r}, invert={self.invert}, '
            f'{len(self.files)} masks)')

  def load(self, index: int,
           size: Optional[image_io.Size] = None) -> np.ndarray:
    """Mask number ``index``: float32 [H,W,1], 1 = hole (ValueError if bad)."""
    return image_io.load_mask(self.files[index], size, self.invert)

  def ratios(self) -> np.ndarray:
    """Hole ratio of every file at its own resolution (NaN if unreadable)."""
    with self._lock:
      if self._ratios is None:
        ratios = np.full(len(self.files), np.nan)
        for i in range(len(self.files)):
          try:
            ratios[i] = hole_ratio(self.load(i))
          except ValueError as e:
            self._mark_bad(i, e)
        self._ratios = ratios
      return self._ratios

  def _indices_in_bin(self, label: str) -> np.ndarray:
    if label not in HOLE_RATIO_LABELS:
      raise ValueError(f'ratio_bin: expected one of {HOLE_RATIO_LABELS}, got '
                       f'{label!r}')
    lo, hi = HOLE_RATIO_BINS[HOLE_RATIO_LABELS.index(label)]
    ratios = self.ratios()
    with np.errstate(invalid='ignore'):
      return np.flatnonzero((ratios > lo) & (ratios <= hi))

  def _mark_bad(self, index: int, error: Exception) -> None:
    if index not in self._bad:
      self._bad.add(index)
      logging.warning('Skipping mask file %s: %s', self.files[index], error)

  def sample(self, rng: np.random.Generator, size: image_io.Size,
             ratio_bin: Optional[str] = None) -> np.ndarray:
    """A uniformly drawn mask, resized to ``size``.

    Args:
      rng: random generator.
      size: (height, width) or int.
      ratio_bin: optional ``HOLE_RATIO_LABELS`` entry: draw only among the
        files whose native hole ratio is in that bin.

    Returns:
      float32 [H,W,1], 1 = hole.

    Raises:
      ValueError: no readable mask (in the bin).
    """
    size = image_io.pair('size', size)
    candidates = (np.arange(len(self.files)) if ratio_bin is None
                  else self._indices_in_bin(ratio_bin))
    while True:
      usable = [i for i in candidates if i not in self._bad]
      if not usable:
        where = '' if ratio_bin is None else f' in bin {ratio_bin}'
        raise ValueError(f'{self.argument}: expected at least one readable '
                         f'mask{where}, got none in {self.path!r}')
      index = int(usable[rng.integers(len(usable))])
      try:
        return self.load(index, size)
      except ValueError as e:
        with self._lock:
          self._mark_bad(index, e)


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
  height, width = _check_image_size(height, width)
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
