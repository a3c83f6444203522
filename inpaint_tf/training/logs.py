"""What a training run shows: TensorBoard and weights.csv.

The progress bar (``inpaint_tf.progress``, on stderr) shows the step, the
generator's loss terms, the critics' total, images/s (every image read: critic, generator and guidance
batches) and the ETA. Loss terms go to TensorBoard raw (``loss/<term>``),
weighted (``weighted/<term>``) and with their weight (``weight/<term>``).
"""

from __future__ import annotations

import csv
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf

from inpaint_tf.training.task import CRITIC_TERMS


def image_grid(masked: tf.Tensor, output: tf.Tensor, completed: tf.Tensor,
               truth: tf.Tensor) -> tf.Tensor:
  """Rows of ``masked | output | completed | truth``.

  Args:
    masked, output, completed, truth: [B,H,W,3] float in [-1,1].

  Returns:
    [B,H,4W,3] float32 in [0,1] for ``tf.summary.image``.
  """
  row = tf.concat([tf.cast(x, tf.float32)
                   for x in (masked, output, completed, truth)], axis=2)
  return tf.clip_by_value((row + 1.0) * 0.5, 0.0, 1.0)


class WeightsLog:
  """``<log_dir>/weights.csv``: ``step`` and one column per auxiliary weight.

  Args:
    path: the CSV file.
    names: weight column names (``perceptual.WEIGHT_NAMES``).
  """

  def __init__(self, path: str, names: Sequence[str]):
    self.path = path
    self.columns = ['step'] + list(names)

  def truncate_after(self, step: int) -> None:
    """Drops the rows of steps after ``step`` (not in the checkpoint)."""
    if not tf.io.gfile.exists(self.path):
      return
    with tf.io.gfile.GFile(self.path, 'r') as f:
      rows = list(csv.reader(f))
    if rows and rows[0] != self.columns:
      raise ValueError(f'log_dir: {self.path} has columns {rows[0]}, '
                       f'expected {self.columns}; use a new --log_dir')
    kept = [r for r in rows[1:] if r and int(r[0]) <= step]
    if len(kept) != len(rows) - 1:
      self._write([self.columns] + kept, 'w')

  def append(self, step: int, weights: Sequence[float]) -> None:
    rows = [] if tf.io.gfile.exists(self.path) else [self.columns]
    rows.append([str(step)] + [f'{w:.8g}' for w in weights])
    self._write(rows, 'a')

  def _write(self, rows, mode: str) -> None:
    with open(self.path, mode, newline='') as f:
      csv.writer(f).writerows(rows)


class ScalarWindow:
  """Step scalars kept on the device between two reads.

  ``add`` sums a step's scalars on the device (no wait for it); ``read``
  fetches the means since the last read, each over the steps that reported
  it (the critics' terms are absent while pretraining), and the per-step
  rows (AWA's weights), in one transfer each, and starts a new window.
  """

  def __init__(self):
    self._sums: Dict[str, tf.Tensor] = {}
    self._counts: Dict[str, int] = {}
    self._rows: List[Tuple[int, tf.Tensor]] = []

  def add(self, scalars: Mapping[str, tf.Tensor], step: int,
          row: Optional[tf.Tensor] = None) -> None:
    """Adds one step's scalars and, if given, its [N] row."""
    for name, value in scalars.items():
      value = tf.cast(value, tf.float32)
      self._sums[name] = (self._sums[name] + value if name in self._sums
                          else value)
      self._counts[name] = self._counts.get(name, 0) + 1
    if row is not None:
      self._rows.append((step, row))

  def read(self) -> Tuple[Dict[str, float], List[Tuple[int, np.ndarray]]]:
    """(means by name, [(step, row values)]) since the last read."""
    names = list(self._sums)
    sums = (tf.stack([self._sums[n] for n in names]).numpy() if names
            else [])
    means = {n: float(v) / self._counts[n] for n, v in zip(names, sums)}
    rows = []
    if self._rows:
      values = tf.stack([r for _, r in self._rows]).numpy()
      rows = [(step, v) for (step, _), v in zip(self._rows, values)]
    self.__init__()
    return means, rows


def write_scalars(step: int, means: Mapping[str, float]) -> None:
  """Writes a step's averaged scalars to the default summary writer.

  ``<term>/weight`` becomes ``weight/<term>`` and, with the term,
  ``weighted/<term>``; gradient norms go under ``grad/``, names with a
  section (``opt/...``, ``reweight/...``) as they are, the rest under
  ``loss/``.
  """
  for name, value in means.items():
    if name.endswith('/weight'):
      term = name[:-len('/weight')]
      tf.summary.scalar(f'weight/{term}', value, step=step)
      if term in means:
        tf.summary.scalar(f'weighted/{term}', means[term] * value, step=step)
    elif name.endswith('grad_norm'):
      tf.summary.scalar(f'grad/{name}', value, step=step)
    elif '/' in name:
      tf.summary.scalar(name, value, step=step)
    else:
      tf.summary.scalar(f'loss/{name}', value, step=step)


def bar_scalars(scalars: Mapping[str, float]) -> Dict[str, float]:
  """Generator terms, totals: what the progress bar shows."""
  return {k: v for k, v in scalars.items()
          if '/' not in k and not k.endswith('grad_norm')
          and k not in CRITIC_TERMS}
