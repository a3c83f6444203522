"""Curves over training: auxiliary loss weights and held-out validation.

The trainer logs one CSV row per step: ``step,w_perc_1,w_perc_2,w_perc_3,
w_style_1,w_style_2,w_style_3`` (any further ``w_*`` columns are drawn
too). :func:`weight_curves_image` draws them with OpenCV, one panel per
group as in Fig. 4 of the AWA paper: TPL weights (``w_perc_*``), TSL
weights (``w_style_*``), then anything else. :func:`metric_curves_image`
draws the held-out scores of ``eval.csv`` (``inpaint_tf.validation``), one
panel per metric and one line per method (the network and the OpenCV
baselines). Each panel has its own y range, axes with tick labels, and a
legend. ``side_by_side`` and ``show_holes`` compose image panels (the
demo's grid, ``tools/inpaint.py --grid``).
"""

from __future__ import annotations

import csv
import math
from typing import Dict, List, Mapping, Sequence, Tuple

import cv2
import numpy as np

_GROUPS = (('w_perc_', 'TPL weights (perceptual)'),
           ('w_style_', 'TSL weights (style)'))
# BGR, distinguishable in print and on screen (shallow to deep layer).
_COLOURS = ((180, 119, 31), (14, 127, 255), (44, 160, 44), (40, 39, 214),
            (189, 103, 148), (75, 86, 140))
_FONT = cv2.FONT_HERSHEY_SIMPLEX


def read_weights_csv(path: str) -> Tuple[np.ndarray, np.ndarray,
                                         Tuple[str, ...]]:
  """Reads the weights CSV.

  Args:
    path: CSV with a header ``step,<name>,...``.

  Returns:
    (steps [T] float64, weights [T,N] float64, names): rows in file order.

  Raises:
    ValueError: naming the file and the offending line.
  """
  try:
    with open(path, newline='') as f:
      rows = list(csv.reader(f))
  except OSError as e:
    raise ValueError(f'csv: expected a readable weights CSV, got {path!r} '
                     f'({e.strerror})') from None
  rows = [r for r in rows if r and any(c.strip() for c in r)]
  if not rows:
    raise ValueError(f'csv: {path} is empty; expected a header '
                     '"step,w_perc_1,...,w_style_3" and one row per step')
  header = [c.strip() for c in rows[0]]
  if len(header) < 2 or header[0] != 'step':
    raise ValueError(f'csv: {path} header expected "step,<weight>,...", got '
                     f'{",".join(header)!r}')
  values = []
  for line, row in enumerate(rows[1:], start=2):
    if len(row) != len(header):
      raise ValueError(f'csv: {path} line {line}: expected {len(header)} '
                       f'columns, got {len(row)}')
    try:
      values.append([float(c) for c in row])
    except ValueError:
      raise ValueError(f'csv: {path} line {line}: expected numbers, got '
                       f'{",".join(row)!r}') from None
  if not values:
    raise ValueError(f'csv: {path} has a header but no rows')
  data = np.asarray(values, np.float64)
  return data[:, 0], data[:, 1:], tuple(header[1:])


def _nice_ticks(lo: float, hi: float, count: int = 5) -> List[float]:
  """Round tick values covering [lo, hi] (1, 2, 5 times a power of ten)."""
  if not math.isfinite(lo) or not math.isfinite(hi):
    return [0.0]
  if hi <= lo:
    hi = lo + (abs(lo) * 0.1 or 1.0)
  raw = (hi - lo) / max(count - 1, 1)
  power = 10.0 ** math.floor(math.log10(raw))
  step = min((m * power for m in (1, 2, 5, 10) if m * power >= raw),
             default=10 * power)
  first = math.ceil(lo / step - 1e-9) * step
  ticks, t = [], first
  while t <= hi + step * 1e-9:
    ticks.append(round(t, 12))
    t += step
  return ticks


def _label(value: float) -> str:
  if value == 0:
    return '0'
  if 1e4 <= abs(value) < 1e9 and value == int(value):
    return str(int(value))
  if abs(value) >= 1e4 or abs(value) < 1e-3:
    return f'{value:.1e}'
  return f'{value:.6g}'


def _panel(steps: np.ndarray, curves: np.ndarray, names: Sequence[str],
           title: str, width: int, height: int,
           colours: Sequence[Tuple[int, int, int]]) -> np.ndarray:
  img = np.full((height, width, 3), 255, np.uint8)
  left, right, top, bottom = 80, 20, 34, 46
  x0, x1, y0, y1 = left, width - right, top, height - bottom
  finite = curves[np.isfinite(curves)]
  lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (
      0.0, 1.0)
  pad = (hi - lo) * 0.05 or abs(hi) * 0.05 or 1.0
  lo, hi = lo - pad, hi + pad
  s_lo, s_hi = float(steps.min()), float(steps.max())
  if s_hi <= s_lo:
    s_lo, s_hi = s_lo - 1.0, s_hi + 1.0

  def to_px(s, v):
    px = x0 + (s - s_lo) / (s_hi - s_lo) * (x1 - x0)
    py = y1 - (v - lo) / (hi - lo) * (y1 - y0)
    return px, py

  grey, black = (225, 225, 225), (0, 0, 0)
  for t in _nice_ticks(lo, hi):
    if lo <= t <= hi:
      _, py = to_px(s_lo, t)
      cv2.line(img, (x0, int(round(py))), (x1, int(round(py))), grey, 1)
      cv2.putText(img, _label(t), (5, int(round(py)) + 4), _FONT, 0.4, black,
                  1, cv2.LINE_AA)
  for t in _nice_ticks(s_lo, s_hi):
    if s_lo <= t <= s_hi:
      px, _ = to_px(t, lo)
      cv2.line(img, (int(round(px)), y1), (int(round(px)), y1 + 4), black, 1)
      text = _label(t)
      size = cv2.getTextSize(text, _FONT, 0.4, 1)[0]
      cv2.putText(img, text, (int(round(px)) - size[0] // 2, y1 + 18), _FONT,
                  0.4, black, 1, cv2.LINE_AA)
  cv2.rectangle(img, (x0, y0), (x1, y1), black, 1)
  cv2.putText(img, title, (x0, top - 12), _FONT, 0.5, black, 1, cv2.LINE_AA)
  cv2.putText(img, 'step', ((x0 + x1) // 2 - 14, height - 6), _FONT, 0.4,
              black, 1, cv2.LINE_AA)
  for k, (name, colour) in enumerate(zip(names, colours)):
    v = curves[:, k]
    ok = np.isfinite(v)
    px, py = to_px(steps[ok], v[ok])
    points = np.stack([px, py], axis=1)
    if len(points) == 1:
      cv2.circle(img, tuple(int(round(c)) for c in points[0]), 2, colour, -1,
                 cv2.LINE_AA)
    elif len(points) > 1:
      # Sub-pixel coordinates: 4 fractional bits.
      cv2.polylines(img, [np.round(points * 16).astype(np.int32)], False,
                    colour, 2, cv2.LINE_AA, shift=4)
  # Legend in a box at the top right, over the curves.
  text_w = max(cv2.getTextSize(n, _FONT, 0.45, 1)[0][0] for n in names)
  bx0, by0 = x1 - text_w - 50, y0 + 6
  cv2.rectangle(img, (bx0, by0), (x1 - 6, by0 + 18 * len(names) + 6),
                (255, 255, 255), -1)
  cv2.rectangle(img, (bx0, by0), (x1 - 6, by0 + 18 * len(names) + 6), grey,
                1)
  for k, (name, colour) in enumerate(zip(names, colours)):
    ly = by0 + 18 * (k + 1)
    cv2.line(img, (bx0 + 6, ly - 4), (bx0 + 30, ly - 4), colour, 2,
             cv2.LINE_AA)
    cv2.putText(img, name, (bx0 + 36, ly), _FONT, 0.45, black, 1, cv2.LINE_AA)
  return img


def weight_curves_image(steps: np.ndarray, weights: np.ndarray,
                        names: Sequence[str], width: int = 900,
                        panel_height: int = 320) -> np.ndarray:
  """Draws the weight curves, one panel per group (Fig. 4 of the paper).

  Args:
    steps: [T] training steps.
    weights: [T,N] weights, column k named ``names[k]``.
    names: N column names (``w_perc_*`` and ``w_style_*`` get their own
      panels, others share a last one).
    width: image width in pixels.
    panel_height: height of each panel in pixels.

  Returns:
    [H,W,3] uint8 BGR image (``cv2.imwrite`` order).
  """
  steps = np.asarray(steps, np.float64).reshape(-1)
  weights = np.asarray(weights, np.float64)
  if weights.ndim != 2 or weights.shape != (steps.size, len(names)):
    raise ValueError(f'weights: expected [{steps.size},{len(names)}], got '
                     f'{list(weights.shape)}')
  if steps.size == 0:
    raise ValueError('steps: expected at least one row, got none')
  if width < 300 or panel_height < 150:
    raise ValueError(f'width, panel_height: expected >= 300 and >= 150, got '
                     f'{width} and {panel_height}')
  groups, used = [], set()
  for prefix, title in _GROUPS:
    cols = [k for k, n in enumerate(names) if n.startswith(prefix)]
    if cols:
      groups.append((cols, title))
      used.update(cols)
  rest = [k for k in range(len(names)) if k not in used]
  if rest:
    groups.append((rest, 'weights'))
  panels = []
  for cols, title in groups:
    colours = [_COLOURS[i % len(_COLOURS)] for i in range(len(cols))]
    panels.append(_panel(steps, weights[:, cols], [names[k] for k in cols],
                         title, width, panel_height, colours))
  return np.concatenate(panels, axis=0)


def metric_curves_image(
    curves: Mapping[str, Mapping[str, Tuple[np.ndarray, np.ndarray]]],
    title: str = '', width: int = 900, panel_height: int = 320
) -> np.ndarray:
  """Draws validation curves, one panel per metric, one line per method.

  Args:
    curves: ``{metric: {method: (steps [T], values [T])}}`` as
      ``validation.read_curves`` returns; methods may have different steps.
    title: prefix of each panel's title (e.g. the mask type).
    width: image width in pixels.
    panel_height: height of each panel in pixels.

  Returns:
    [H,W,3] uint8 BGR image (``cv2.imwrite`` order).
  """
  if not curves:
    raise ValueError('curves: expected at least one metric, got none')
  if width < 300 or panel_height < 150:
    raise ValueError(f'width, panel_height: expected >= 300 and >= 150, got '
                     f'{width} and {panel_height}')
  panels = []
  for metric, methods in curves.items():
    names = list(methods)
    steps = np.unique(np.concatenate([methods[n][0] for n in names]))
    table: Dict[str, np.ndarray] = {}
    for name in names:
      s, v = methods[name]
      column = np.full(steps.shape, np.nan)
      column[np.searchsorted(steps, s)] = v
      table[name] = column
    colours = [_COLOURS[i % len(_COLOURS)] for i in range(len(names))]
    label = f'{title} {metric}'.strip()
    panels.append(_panel(steps, np.stack([table[n] for n in names], axis=1),
                         names, label, width, panel_height, colours))
  return np.concatenate(panels, axis=0)


# Width of the white gutter between the panels of a side-by-side grid.
GRID_GUTTER = 4


def side_by_side(panels: Sequence[np.ndarray],
                 gutter: int = GRID_GUTTER) -> np.ndarray:
  """Concatenates uint8 [H,W,3] images horizontally with white gutters."""
  height = panels[0].shape[0]
  bar = np.full((height, gutter, 3), 255, np.uint8)
  row = []
  for i, panel in enumerate(panels):
    if i:
      row.append(bar)
    row.append(panel)
  return np.concatenate(row, axis=1)


def show_holes(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
  """The network's view of an image: holes painted white. uint8 [H,W,3]."""
  hole = np.asarray(mask).reshape(image.shape[:2] + (1,)) != 0
  return np.where(hole, np.uint8(255), image)
