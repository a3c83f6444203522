"""Held-out validation during training: a fixed set of crops and holes.

A ``ValidationSet`` is drawn once from held-out images: ``crops_per_image``
square crops of the training resolution per image (seeded, at the image's
own resolution) and, for every crop, one square hole and one free-form hole
drawn with the run's ``MaskConfig`` (its square fields and its ``ff_*``
fields). OpenCV's TELEA and NS inpainting complete the same crops once, when
the set is made; the network is scored on it whenever ``score`` is called.

Scores are PSNR (dB), SSIM and L1 (mean absolute error in [0, 1]) of the
completed 8-bit images against the crops, over whole images (known pixels
included), as in ``inpaint_tf.metrics`` and ``tools/evaluate.py``; means per
mask type and over both (``'all'``).

``EvalLog`` keeps the scores of a run in ``<log_dir>/eval.csv``, one row per
``(step, method, mask_type, metric)``; a resumed run first drops the rows of
steps after its checkpoint, so the file never holds a step twice. The set
itself is saved as ``<log_dir>/eval_set.npz`` (``ValidationSet.save``), so
that later evaluations (``tools/demo.py``) use the very same crops and
holes, and a resumed run can check that it scores the same set.
"""

from __future__ import annotations

import csv
import dataclasses
import os
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf

from inpaint_tf import config as config_lib
from inpaint_tf import demo_images
from inpaint_tf import evaluation
from inpaint_tf import fileio
from inpaint_tf import image_io
from inpaint_tf import masks as masks_lib
from inpaint_tf import metrics

MASK_TYPES = ('square', 'free_form')
METRICS = ('psnr', 'ssim', 'l1')
HIGHER_IS_BETTER = {'psnr': True, 'ssim': True, 'l1': False}
EVAL_CSV = 'eval.csv'
EVAL_SET = 'eval_set.npz'
CSV_COLUMNS = ('step', 'method', 'mask_type', 'metric', 'value')

# {mask_type: {metric: mean}}, mask types ``MASK_TYPES + (evaluation.ALL,)``.
Scores = Dict[str, Dict[str, float]]


def held_out_crops(images: Sequence[Tuple[str, np.ndarray]], size: int,
                   per_image: int, seed: int) -> np.ndarray:
  """Seeded ``size`` x ``size`` crops, ``per_image`` from each image.

  Args:
    images: (name, uint8 [H,W,3]) pairs; every image at least ``size`` on
      each side.
    size: crop side in pixels.
    per_image: crops per image (>= 1).
    seed: fixes the crop positions.

  Returns:
    uint8 [len(images) * per_image, size, size, 3], image by image.

  Raises:
    ValueError: no images, ``per_image < 1``, or an image smaller than
      ``size``.
  """
  if not images:
    raise ValueError('eval_data: expected at least one readable image, got '
                     'none')
  if per_image < 1:
    raise ValueError(f'eval_crops_per_image: expected >= 1, got {per_image}')
  rng = np.random.default_rng(seed)
  crops = []
  for name, image in images:
    height, width = image.shape[:2]
    if height < size or width < size:
      raise ValueError(f'eval_data: expected images of at least {size}x{size} '
                       f'pixels (the training size), got {name} of '
                       f'{height}x{width}')
    for _ in range(per_image):
      top = rng.integers(0, height - size + 1)
      left = rng.integers(0, width - size + 1)
      crops.append(image[top:top + size, left:left + size])
  return np.stack(crops)


def validation_masks(count: int, size: int, mask_config: config_lib.MaskConfig,
                     seed: int) -> Dict[str, np.ndarray]:
  """``count`` square and ``count`` free-form holes of the run's settings.

  Args:
    count: masks of each type.
    size: image side.
    mask_config: square fields (``hole_size``, ``margin``, ``max_delta``)
      and free-form fields (``ff_*``); ``mask_type`` is ignored.
    seed: square masks use ``seed``, free-form ones ``seed + 1``.

  Returns:
    ``{'square': uint8 [count,size,size,1], 'free_form': ...}``, 1 = hole.
  """
  out = {}
  for offset, mask_type in enumerate(MASK_TYPES):
    fn = masks_lib.make_mask_fn(
        dataclasses.replace(mask_config, mask_type=mask_type), size, size)
    out[mask_type] = (evaluation.draw_masks(fn, count, seed + offset)
                      > 0.5).astype(np.uint8)
  return out


def _scores(images: np.ndarray, completed: Mapping[str, np.ndarray]) -> Scores:
  """Means of ``METRICS`` per mask type and over all of them."""
  per_image = {t: {m: np.asarray(metrics.PER_IMAGE[m](images, out), np.float64)
                   for m in METRICS} for t, out in completed.items()}
  scores = {t: {m: float(np.mean(v)) for m, v in values.items()}
            for t, values in per_image.items()}
  scores[evaluation.ALL] = {m: float(np.mean(np.concatenate(
      [per_image[t][m] for t in completed]))) for m in METRICS}
  return scores


class ValidationSet:
  """Fixed held-out crops and holes, with the OpenCV baselines' scores.

  Args:
    images: (name, uint8 [H,W,3]) held-out images.
    size: crop side (the training resolution).
    mask_config: the run's hole settings (see ``validation_masks``).
    crops_per_image: crops cut from each image.
    seed: fixes crops and masks.

  Attributes:
    images: uint8 [N,size,size,3] crops.
    masks: ``{mask_type: uint8 [N,size,size,1]}``, 1 = hole.
    baselines: ``{method: Scores}`` of ``evaluation.CV2_METHODS``, computed
      on first use (a loaded set that is only compared or re-scored by
      ``evaluation.evaluate`` never runs OpenCV here).
  """

  def __init__(self, images: Sequence[Tuple[str, np.ndarray]], size: int,
               mask_config: config_lib.MaskConfig, crops_per_image: int,
               seed: int):
    crops = held_out_crops(images, size, crops_per_image, seed)
    self._set(crops, validation_masks(len(crops), size, mask_config, seed))

  def _set(self, images: np.ndarray, masks: Mapping[str, np.ndarray]) -> None:
    self.images = images
    self.masks = dict(masks)
    self._baselines = None

  @property
  def baselines(self) -> Dict[str, Scores]:
    """``{method: Scores}`` of ``evaluation.CV2_METHODS``, computed once."""
    if self._baselines is None:
      self._baselines = {
          method: _scores(self.images, {
              t: metrics.cv2_inpaint(self.images, m, method=cv2_name)
              for t, m in self.masks.items()})
          for method, cv2_name in evaluation.CV2_METHODS.items()}
    return self._baselines

  def save(self, path: str) -> None:
    """Writes crops and masks to an ``.npz`` file (atomically)."""
    fileio.write_npz(path, {'images': self.images,
                            **{f'mask_{t}': m for t, m in self.masks.items()}},
                     compressed=True)

  @classmethod
  def load(cls, path: str) -> 'ValidationSet':
    """The set saved by ``save`` (baselines recomputed when first used).

    Raises:
      ValueError: naming the file, when it is missing or not such a file.
    """
    try:
      with np.load(path) as saved:
        images = saved['images']
        masks = {t: saved[f'mask_{t}'] for t in MASK_TYPES}
    except (OSError, KeyError, ValueError) as e:
      raise ValueError(f'eval_set: expected a validation set saved by the '
                       f'trainer at {path!r}, got {type(e).__name__}: {e}'
                       ) from None
    out = cls.__new__(cls)
    out._set(images, masks)
    return out

  def same_as(self, other: 'ValidationSet') -> bool:
    """Whether both hold the same crops and masks."""
    return (np.array_equal(self.images, other.images)
            and self.masks.keys() == other.masks.keys()
            and all(np.array_equal(m, other.masks[t])
                    for t, m in self.masks.items()))

  def complete(self, complete_fn: evaluation.CompleteFn
               ) -> Dict[str, np.ndarray]:
    """``{mask_type: completed uint8 [N,size,size,3]}`` of ``complete_fn``."""
    return {t: np.asarray(complete_fn(self.images, m))
            for t, m in self.masks.items()}

  def score(self, complete_fn: evaluation.CompleteFn) -> Scores:
    """Scores of ``complete_fn`` on every crop and hole."""
    return _scores(self.images, self.complete(complete_fn))


def load_eval_images(data: str) -> List[Tuple[str, np.ndarray]]:
  """(name, uint8 [H,W,3]) of the readable images at ``data``.

  Args:
    data: a folder (searched recursively) or a text file listing paths.

  Raises:
    ValueError: naming ``eval_data``, when nothing readable is there.
  """
  try:
    files = image_io.list_images(data)
  except ValueError as e:
    raise ValueError(f'eval_data: {str(e).partition(": ")[2] or e}') from None
  images = []
  for path in files:
    try:
      images.append((os.path.basename(path), image_io.load_image(path)))
    except (ValueError, tf.errors.OpError):
      continue
  if not images:
    raise ValueError(f'eval_data: expected at least one readable image in '
                     f'{data!r}, got none of its {len(files)} files')
  return images


def rows_of(step: int, method: str, scores: Scores) -> List[Tuple]:
  """``eval.csv`` rows ``(step, method, mask_type, metric, value)``."""
  return [(int(step), method, mask_type, metric, float(value))
          for mask_type, values in scores.items()
          for metric, value in values.items()]


class EvalLog:
  """``<log_dir>/eval.csv``: ``step,method,mask_type,metric,value`` rows.

  Args:
    path: the CSV file.
  """

  def __init__(self, path: str):
    self.path = path

  def rows(self) -> List[Tuple]:
    """The rows, values parsed (``[]`` when the file does not exist)."""
    if not os.path.exists(self.path):
      return []
    with open(self.path, newline='') as f:
      lines = [r for r in csv.reader(f) if r]
    if not lines or tuple(lines[0]) != CSV_COLUMNS:
      raise ValueError(f'log_dir: {self.path} expected the header '
                       f'{",".join(CSV_COLUMNS)}, got '
                       f'{",".join(lines[0]) if lines else "an empty file"}; '
                       'use a new --log_dir')
    return [(int(r[0]), r[1], r[2], r[3], float(r[4])) for r in lines[1:]]

  def steps(self) -> List[int]:
    """The steps that have rows, in file order, each once."""
    return list(dict.fromkeys(r[0] for r in self.rows()))

  def truncate_after(self, step: int) -> None:
    """Drops the rows of steps after ``step`` (not in the checkpoint)."""
    rows = self.rows()
    kept = [r for r in rows if r[0] <= step]
    if len(kept) != len(rows):
      self._write(kept, 'w')

  def append(self, rows: Sequence[Tuple]) -> None:
    self._write(rows, 'a')

  def _write(self, rows: Sequence[Tuple], mode: str) -> None:
    header = mode == 'w' or not os.path.exists(self.path)
    with open(self.path, mode, newline='') as f:
      writer = csv.writer(f)
      if header:
        writer.writerow(CSV_COLUMNS)
      writer.writerows([(r[0], r[1], r[2], r[3], f'{r[4]:.8g}') for r in rows])


def read_curves(path: str, mask_type: str = evaluation.ALL
                ) -> Dict[str, Dict[str, Tuple[np.ndarray, np.ndarray]]]:
  """``{metric: {method: (steps [T], values [T])}}`` from an eval CSV.

  Args:
    path: ``eval.csv`` of a run.
    mask_type: which rows (``'square'``, ``'free_form'`` or ``'all'``).

  Raises:
    ValueError: naming the file, when it is not an eval CSV or has no rows
      of ``mask_type``.
  """
  if not os.path.isfile(path):
    raise ValueError(f'csv: expected an eval.csv file, got {path!r} (no such '
                     'file)')
  rows = [r for r in EvalLog(path).rows() if r[2] == mask_type]
  if not rows:
    raise ValueError(f'csv: {path} has no rows of mask type {mask_type!r}')
  curves: Dict[str, Dict[str, Tuple[np.ndarray, np.ndarray]]] = {}
  for metric in dict.fromkeys(r[3] for r in rows):
    curves[metric] = {}
    for method in dict.fromkeys(r[1] for r in rows):
      points = sorted((r[0], r[4]) for r in rows
                      if r[1] == method and r[3] == metric)
      if points:
        steps, values = zip(*points)
        curves[metric][method] = (np.asarray(steps, np.float64),
                                  np.asarray(values, np.float64))
  return curves


def worst_setback(values: np.ndarray, higher_is_better: bool = True) -> float:
  """Largest distance of a curve behind its best earlier value (>= 0).

  Args:
    values: [T] metric values in step order.
    higher_is_better: True for PSNR and SSIM, False for L1.
  """
  values = np.asarray(values, np.float64)
  if not values.size:
    return 0.0
  signed = values if higher_is_better else -values
  return float(np.max(np.maximum.accumulate(signed) - signed))


def default_eval_images(data: str, eval_data: Optional[str]
                        ) -> Optional[List[Tuple[str, np.ndarray]]]:
  """The validation images of a run: ``eval_data``, or the demo's.

  Args:
    data: the run's training data (``demo_images.SKIMAGE_DATA`` selects
      the demo images, whose validation images
      ``demo_images.DEMO_VALIDATION`` are then used).
    eval_data: a folder or file list of held-out images, or None.

  Returns:
    (name, uint8 [H,W,3]) pairs, or None when neither applies (training on
    a folder and no ``eval_data``).
  """
  if eval_data:
    return load_eval_images(eval_data)
  if data == demo_images.SKIMAGE_DATA:
    return demo_images.split_demo_images(
        demo_images.skimage_demo_images()).validation
  return None


def demo_test_set(config: config_lib.ExperimentConfig) -> ValidationSet:
  """Crops and holes of the demo's test images (``demo_images.DEMO_TEST``),
  drawn as the trainer draws its validation set (``config``'s image size,
  holes, crops per image and seed); what ``make demo`` reports on."""
  t = config.train
  test_images = demo_images.split_demo_images(
      demo_images.skimage_demo_images()).test
  return ValidationSet(test_images, t.image_size, config.masks,
                       t.eval_crops_per_image, t.eval_seed)


class RunValidation:
  """A training run's validation: its set, ``eval_set.npz`` and ``eval.csv``.

  The writing process (``write``) saves the set, or checks that a resumed
  run draws the same one, and keeps the ``EvalLog``.

  Args:
    validation_set: the held-out crops and holes.
    log_dir: the run directory.
    method: the name of the generator's rows (its variant).
    write: whether this process writes files (the chief).
  """

  def __init__(self, validation_set: ValidationSet, log_dir: str,
               method: str, write: bool):
    self.validation_set = validation_set
    self.method = method
    self.log = None
    if not write:
      return
    path = os.path.join(log_dir, EVAL_SET)
    if os.path.exists(path):
      if not ValidationSet.load(path).same_as(validation_set):
        raise ValueError(
            f'log_dir: {path} holds other held-out crops or holes than this '
            'run draws (another --eval_data, --eval_crops_per_image, '
            '--eval_seed or hole setting); use a new --log_dir')
    else:
      validation_set.save(path)
    self.log = EvalLog(os.path.join(log_dir, EVAL_CSV))

  def resume(self, step: int) -> bool:
    """Drops the rows after ``step``; whether ``step`` still needs scoring."""
    self.log.truncate_after(step)
    return step not in self.log.steps()

  def run(self, step: int, complete_fn: evaluation.CompleteFn
          ) -> Tuple[Scores, List[Tuple]]:
    """Scores the generator; appends its and the baselines' rows.

    Returns:
      (the generator's scores, every row written).
    """
    scores = self.validation_set.score(complete_fn)
    methods = {self.method: scores}
    methods.update(self.validation_set.baselines)
    rows = [row for method, values in methods.items()
            for row in rows_of(step, method, values)]
    if self.log is not None:
      self.log.append(rows)
    return scores, rows
