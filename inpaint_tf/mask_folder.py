"""External mask sets and the hole-ratio bins results are reported in.

``MaskFolder`` reads an external set such as NVIDIA's irregular masks and
groups it by hole ratio in the bins used to report results,
``(0.01,0.1]``, ``(0.1,0.2]``, ..., ``(0.5,0.6]`` (``HOLE_RATIO_LABELS``;
``hole_ratio_bin`` names the bin of any mask).
"""

from __future__ import annotations

import fractions
import os
import threading
from typing import List, Optional, Union

from absl import logging
import numpy as np

from inpaint_tf import image_io
from inpaint_tf import ops

# Hole-ratio bins (lower bound excluded, upper bound included).
HOLE_RATIO_BINS = ((0.01, 0.1), (0.1, 0.2), (0.2, 0.3), (0.3, 0.4),
                   (0.4, 0.5), (0.5, 0.6))
HOLE_RATIO_LABELS = tuple(f'({lo:g},{hi:g}]' for lo, hi in HOLE_RATIO_BINS)
# Label of masks outside every bin (no hole, tiny or very large holes).
OTHER_BIN = 'other'


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
