"""What a training run shows: the progress line, TensorBoard, weights.csv.

The progress bar (stderr) shows the step, the generator's loss terms, the
critics' total, images/s (every image read: critic, generator and guidance
batches) and the ETA. Loss terms go to TensorBoard raw (``loss/<term>``),
weighted (``weighted/<term>``) and with their weight (``weight/<term>``).
"""

from __future__ import annotations

import csv
import math
import sys
from typing import Dict, Mapping, Sequence

import tensorflow as tf

from inpaint_tf.training.task import CRITIC_TERMS


def _format_seconds(seconds: float) -> str:
  if not math.isfinite(seconds):
    return '?'
  seconds = int(round(max(seconds, 0.0)))
  hours, rest = divmod(seconds, 3600)
  minutes, seconds = divmod(rest, 60)
  return f'{hours}:{minutes:02d}:{seconds:02d}'


class ProgressBar:
  """One status line: step/max, losses, images/s and ETA.

  On a terminal the line is redrawn in place (carriage return); on another
  stream one line is written every ``every`` steps, which keeps log files
  readable.

  Args:
    total: the last step.
    stream: text stream (default ``sys.stderr``).
    every: steps between lines on a non-terminal stream.
    width: characters of the bar.
  """

  def __init__(self, total: int, stream=None, every: int = 10,
               width: int = 20):
    self.total = total
    self.stream = stream if stream is not None else sys.stderr
    self.every = max(1, every)
    self.width = width
    isatty = getattr(self.stream, 'isatty', None)
    self.interactive = bool(isatty and isatty())
    self._open_line = False

  def line(self, step: int, scalars: Mapping[str, float],
           images_per_sec: float, eta_seconds: float) -> str:
    done = min(1.0, step / max(1, self.total))
    filled = int(round(done * self.width))
    bar = '#' * filled + '.' * (self.width - filled)
    terms = ' '.join(f'{k} {v:.4g}' for k, v in scalars.items())
    return (f'[{bar}] {step}/{self.total} {terms} | '
            f'{images_per_sec:.1f} img/s | ETA {_format_seconds(eta_seconds)}')

  def update(self, step: int, scalars: Mapping[str, float],
             images_per_sec: float, eta_seconds: float) -> None:
    if not self.interactive and step % self.every and step != self.total:
      return
    text = self.line(step, scalars, images_per_sec, eta_seconds)
    if self.interactive:
      self.stream.write('\r' + text + '\x1b[K')
      self._open_line = True
    else:
      self.stream.write(text + '\n')
    self.stream.flush()

  def close(self) -> None:
    if self._open_line:
      self.stream.write('\n')
      self.stream.flush()
      self._open_line = False


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
