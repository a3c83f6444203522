"""Evaluation of an inpainting model against OpenCV's baselines (SPEC 6).

The network and OpenCV's classical inpainting (``cv2.INPAINT_TELEA`` and
``cv2.INPAINT_NS``, methods ``cv2_telea`` and ``cv2_ns``) complete the same
8-bit images with the same masks; each completed image is compared with the
original by the metrics of ``inpaint_tf.metrics``:

* ``l1``: mean absolute error with pixels in [0, 1]; ``l1_percent``: the
  GEPE-Net paper's "L1 (%)" (100 x l1); ``mae``: the same on 0..255;
* ``psnr`` (dB) and ``ssim`` (``tf.image.ssim``, max_val 255);
* optionally ``lpips`` (``inpaint_tf.lpips.LPIPS``, needs its weights file)
  and ``fid`` (TF-GAN's Frechet distance on InceptionV3 pool features, needs
  the InceptionV3 weights; computed per group of at least 2 images).

Metrics are taken over the whole image (known pixels included, as in the
papers), per image, then averaged per method over all images ("all") and
per hole-ratio bin (``mask_folder.HOLE_RATIO_LABELS``, ``(0.01,0.1]`` ...
``(0.5,0.6]``, ``other`` outside them).
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from absl import logging
import numpy as np
import tensorflow as tf

from inpaint_tf import fileio
from inpaint_tf import image_io
from inpaint_tf import completion
from inpaint_tf import inpainter as inpainter_lib
from inpaint_tf import mask_folder
from inpaint_tf import masks as masks_lib
from inpaint_tf import metrics

# Per-image metrics (``metrics.PER_IMAGE``), always computed.
METRICS = ('l1', 'l1_percent', 'psnr', 'ssim', 'mae')
# Baselines: method name -> ``metrics.cv2_inpaint`` method.
CV2_METHODS = {'cv2_telea': 'telea', 'cv2_ns': 'ns'}
# The label of the rows that average over every image (here over every hole
# ratio; in ``validation``, over every mask type).
ALL = 'all'
# Default name of the network's rows.
MODEL_NAME = 'gepenet'
CSV_FILE = 'metrics.csv'
JSON_FILE = 'metrics.json'

# uint8 [N,H,W,3], [N,H,W,1] (non-zero = hole) -> uint8 [N,H,W,3].
CompleteFn = Callable[[np.ndarray, np.ndarray], np.ndarray]


def _check_inputs(images, masks) -> Tuple[np.ndarray, np.ndarray]:
  images = np.asarray(images)
  masks = np.asarray(masks)
  if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3:
    raise ValueError(f'images: expected uint8 [N,H,W,3], got shape '
                     f'{list(images.shape)} dtype {images.dtype}')
  if images.shape[0] == 0:
    raise ValueError('images: expected at least one image, got none')
  if masks.ndim == 3:
    masks = masks[..., None]
  if masks.shape != images.shape[:3] + (1,):
    raise ValueError(f'masks: expected [{images.shape[0]},{images.shape[1]},'
                     f'{images.shape[2]},1] (one per image, non-zero = hole), '
                     f'got shape {list(masks.shape)}')
  holes = masks > 0.5 if masks.dtype.kind == 'f' else masks != 0
  return images, holes.astype(np.uint8)


def _in_batches(fn: CompleteFn, images: np.ndarray, holes: np.ndarray,
                batch_size: int) -> np.ndarray:
  return np.concatenate([
      np.asarray(fn(images[i:i + batch_size], holes[i:i + batch_size]))
      for i in range(0, len(images), batch_size)], axis=0)


def _lpips_values(lpips_model, a: np.ndarray, b: np.ndarray,
                  batch_size: int) -> np.ndarray:
  out = []
  for i in range(0, len(a), batch_size):
    x = completion.uint8_to_float(tf.constant(a[i:i + batch_size]))
    y = completion.uint8_to_float(tf.constant(b[i:i + batch_size]))
    out.append(np.asarray(lpips_model(x, y), np.float64))
  return np.concatenate(out)


def evaluate(model, images, masks, name: str = MODEL_NAME,
             mask_type: Optional[str] = None, batch_size: int = 8,
             lpips_model=None, inception=None,
             options: Optional[completion.CompletionOptions] = None,
             return_outputs: bool = False) -> Dict[str, Any]:
  """Completes images with the model and the OpenCV baselines; scores them.

  Args:
    model: an ``inpainter.Inpainter`` (``load_inpainter``), or what
      ``Inpainter.from_generator`` wraps (a Generator, a callable
      ``(masked, mask) -> pred``), or None to score only the baselines.
    images: uint8 [N,H,W,3] ground-truth images (any H, W >= 11).
    masks: [N,H,W,1] or [N,H,W], non-zero (> 0.5 for floats) = hole.
    name: method name of the model's rows (e.g. the generator variant).
    mask_type: label of the masks (e.g. 'square'), copied into the rows.
    batch_size: images per forward pass.
    lpips_model: optional ``inpaint_tf.lpips.LPIPS``; adds ``lpips``.
    inception: optional ``metrics.InceptionFeatures`` (or any callable
      uint8 [N,H,W,3] -> [N,D] features); adds ``fid``, the Frechet distance
      between the features of the completed and the original images, per
      group of at least 2 images (None, printed '-', otherwise).
    options: ``completion.CompletionOptions`` of the model's calls
      (default: the inpainter's own).
    return_outputs: also return the completed images.

  Returns:
    A dict with
      ``rows``: list of dicts ``{method, mask_type, hole_ratio, n, l1,
        l1_percent, psnr, ssim, mae[, lpips][, fid]}``, one per method for
        ``hole_ratio == 'all'`` and one per method and non-empty bin;
      ``summary``: ``{method: {metric: mean over all images}}``, e.g.
        ``{'gepenet': {'psnr': .., 'ssim': .., 'l1': .., ...}, 'cv2_telea':
        {...}, 'cv2_ns': {...}}``;
      ``per_image``: ``{method: {metric: [N] float64}}``;
      ``hole_ratio``: [N] hole fractions; ``bins``: [N] bin labels;
      ``metrics``: the metric names, in column order;
      ``outputs`` (with ``return_outputs``): ``{method: uint8 [N,H,W,3]}``.
  """
  images, holes = _check_inputs(images, masks)
  if not isinstance(batch_size, int) or batch_size <= 0:
    raise ValueError(f'batch_size: expected a positive int, got {batch_size!r}')
  methods: Dict[str, CompleteFn] = {}
  if model is not None:
    if not isinstance(model, inpainter_lib.Inpainter):
      model = inpainter_lib.Inpainter.from_generator(model)
    methods[name] = lambda x, m: model(x, m, options)
  for method, cv2_name in CV2_METHODS.items():
    methods[method] = (lambda x, m, c=cv2_name:
                       metrics.cv2_inpaint(x, m, method=c))
  outputs = {method: _in_batches(fn, images, holes, batch_size)
             for method, fn in methods.items()}

  names = list(METRICS)
  per_image = {
      method: {metric: np.asarray(metrics.PER_IMAGE[metric](images, out),
                                  np.float64) for metric in METRICS}
      for method, out in outputs.items()}
  if lpips_model is not None:
    names.append('lpips')
    for method, out in outputs.items():
      per_image[method]['lpips'] = _lpips_values(lpips_model, out, images,
                                                 batch_size)
  ratios = np.array([mask_folder.hole_ratio(m) for m in holes])
  bins = [mask_folder.hole_ratio_bin(m) for m in holes]
  groups = [(ALL, np.arange(len(images)))]
  for label in mask_folder.HOLE_RATIO_LABELS + (mask_folder.OTHER_BIN,):
    index = np.flatnonzero(np.array(bins) == label)
    if index.size:
      groups.append((label, index))

  features = None
  if inception is not None:
    names.append('fid')
    features = {'truth': inception(images)}
    features.update({method: inception(out) for method, out in outputs.items()})

  rows = []
  for method in outputs:
    for label, index in groups:
      row = {'method': method, 'mask_type': mask_type, 'hole_ratio': label,
             'n': int(index.size)}
      for metric in names:
        if metric == 'fid':
          row[metric] = (metrics.frechet_distance(
              features['truth'][index], features[method][index])
                         if index.size >= 2 else None)
        else:
          row[metric] = float(np.mean(per_image[method][metric][index]))
      rows.append(row)
  summary = {row['method']: {metric: row[metric] for metric in names}
             for row in rows if row['hole_ratio'] == ALL}
  result = {'rows': rows, 'summary': summary, 'per_image': per_image,
            'hole_ratio': ratios, 'bins': bins, 'metrics': names}
  if return_outputs:
    result['outputs'] = outputs
  return result


def summarize(result: Dict[str, Any]) -> Dict[str, Dict[str, float]]:
  """``{method: {metric: mean}}`` of an ``evaluate`` result (all images).

  For example ``{"gepenet": {"psnr": .., "ssim": .., "l1": .., ...},
  "cv2_telea": {...}, "cv2_ns": {...}}``, with ``l1`` the mean absolute
  error in [0, 1]. Non-finite values become None (JSON null).
  """
  return {method: {k: _finite_or_none(v) for k, v in values.items()}
          for method, values in result['summary'].items()}


def _finite_or_none(value):
  if isinstance(value, (float, np.floating)):
    return float(value) if math.isfinite(value) else None
  return value


def columns(result: Dict[str, Any]) -> List[str]:
  """Column names of the table, CSV and JSON rows."""
  return ['method', 'mask_type', 'hole_ratio', 'n'] + list(result['metrics'])


def format_table(result: Dict[str, Any]) -> str:
  """The rows as an aligned plain-text table (one line per row)."""
  cols = columns(result)
  cells = [cols]
  for row in result['rows']:
    line = []
    for col in cols:
      value = row[col]
      if isinstance(value, float):
        value = '-' if not math.isfinite(value) else (
            f'{value:.2f}' if col in ('psnr', 'l1_percent', 'mae', 'fid')
            else f'{value:.4f}')
      line.append('-' if value is None else str(value))
    cells.append(line)
  widths = [max(len(c[i]) for c in cells) for i in range(len(cols))]
  lines = ['  '.join(c.ljust(w) if i < 3 else c.rjust(w)
                     for i, (c, w) in enumerate(zip(line, widths)))
           for line in cells]
  lines.insert(1, '  '.join('-' * w for w in widths))
  return '\n'.join(lines)


def write_report(result: Dict[str, Any], output_dir: str,
                 settings: Optional[Dict[str, Any]] = None,
                 notes: Sequence[str] = ()) -> Tuple[str, str]:
  """Writes ``metrics.csv`` and ``metrics.json`` atomically.

  Args:
    result: from ``evaluate``.
    output_dir: created if needed.
    settings: run settings copied into the JSON (flags, file counts).
    notes: messages copied into the JSON (e.g. a skipped metric).

  Returns:
    (csv path, json path).
  """
  cols = columns(result)
  text = io.StringIO()
  writer = csv.DictWriter(text, fieldnames=cols, lineterminator='\n')
  writer.writeheader()
  for row in result['rows']:
    writer.writerow({k: ('' if row[k] is None else row[k]) for k in cols})
  rows = [{k: _finite_or_none(row[k]) for k in cols} for row in result['rows']]
  report = {'settings': dict(settings or {}), 'notes': list(notes),
            'columns': cols, 'rows': rows, 'summary': summarize(result)}
  csv_path = os.path.join(output_dir, CSV_FILE)
  json_path = os.path.join(output_dir, JSON_FILE)
  fileio.atomic_write(csv_path, text.getvalue())
  fileio.atomic_write(json_path, json.dumps(report, indent=2,
                                            allow_nan=False) + '\n')
  return csv_path, json_path


def load_images(files: Sequence[str],
                size: Optional[image_io.Size] = None,
                ) -> Tuple[np.ndarray, List[str]]:
  """Decodes images (resized to ``size``), skipping unreadable files.

  Returns:
    (uint8 [N,H,W,3], the N files used).

  Raises:
    ValueError: no file could be read, or sizes differ without ``size``.
  """
  images, used = [], []
  for path in files:
    try:
      images.append(image_io.load_image(path, size))
      used.append(path)
    except ValueError as e:
      logging.warning('Skipping %s: %s', path, e)
  if not images:
    raise ValueError(f'data: expected at least one readable image, got none '
                     f'of {len(files)} file(s)')
  shapes = {im.shape for im in images}
  if len(shapes) > 1:
    raise ValueError(f'data: expected images of one size (pass a size), got '
                     f'{sorted(shapes)}')
  return np.stack(images), used


def draw_masks(mask_fn: masks_lib.MaskFn, n: int, seed: int) -> np.ndarray:
  """``n`` masks from ``mask_fn``; mask i uses ``default_rng([seed, i])``.

  Returns:
    float32 [n,H,W,1], 1 = hole.
  """
  return np.stack([np.asarray(mask_fn(np.random.default_rng([seed, i])),
                              np.float32) for i in range(n)])
