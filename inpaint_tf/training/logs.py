"""What a training run shows: TensorBoard, weights.csv and validation.

``RunLogs`` holds what a run writes besides its checkpoints; the chief
writes, other workers get no-op writers.

The progress bar (``inpaint_tf.progress``, on stderr) shows the step, the
generator's loss terms, the critics' total, images/s (every image read:
critic, generator and guidance batches) and the ETA. Loss terms go to
TensorBoard raw (``loss/<term>``), weighted (``weighted/<term>``) and with
their weight (``weight/<term>``).
"""

from __future__ import annotations

import csv
import os
import time
from typing import Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf

from inpaint_tf import config as config_lib
from inpaint_tf import evaluation
from inpaint_tf import ops
from inpaint_tf import run_dir
from inpaint_tf import validation
from inpaint_tf.training.task import CRITIC_TERMS
from inpaint_tf.training.task import InpaintingTask


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


class RunLogs:
  """What a run writes besides checkpoints.

  ``generator.json``, TensorBoard (``tb/``: scalars, image grids, a restart
  marker on resume), ``weights.csv`` with a reweighter, and with a
  validation set and ``eval_every > 0`` the validation's ``eval.csv`` and
  ``eval_set.npz`` (``validation.RunValidation``).

  Args:
    log_dir: the run directory.
    task: the run's ``InpaintingTask``.
    config: the experiment.
    is_chief: whether this process writes.
    validation_set: held-out crops, or None.
    restored_step: the step a resumed run restarts from (None: a new run).

  Attributes:
    writer: the TensorBoard writer (a no-op writer off the chief).
    eval_seconds: seconds spent in ``validate``.
  """

  def __init__(self, log_dir: str, task: InpaintingTask,
               config: config_lib.ExperimentConfig, is_chief: bool,
               validation_set: Optional[validation.ValidationSet],
               restored_step: Optional[int]):
    self._task = task
    self._config = config
    self.writer = tf.summary.create_noop_writer()
    self.weights_log = None
    if is_chief:
      run_dir.save_generator_config(task.generator, log_dir)
      tb_dir = os.path.join(log_dir, run_dir.TENSORBOARD_SUBDIR)
      if restored_step is not None:
        run_dir.write_restart_event(tb_dir, restored_step + 1)
      self.writer = tf.summary.create_file_writer(tb_dir)
      if task.reweighter is not None:
        self.weights_log = WeightsLog(
            os.path.join(log_dir, run_dir.WEIGHTS_CSV),
            ['w_' + n for n in task.auxiliary_names])
    self.run_validation = None
    if validation_set is not None and config.train.eval_every > 0:
      self.run_validation = validation.RunValidation(
          validation_set, log_dir, config.model.variant, is_chief)
    self.eval_seconds = 0.0
    self._vis_batch = None

  def aux_weights(self, scalars) -> Optional[tf.Tensor]:
    """[N] the step's auxiliary weights, for ``weights.csv`` (or None)."""
    if self.weights_log is None:
      return None
    return tf.stack([tf.cast(scalars[f'{n}/weight'], tf.float32)
                     for n in self._task.auxiliary_names])

  def write_window(self, step: int, means: Mapping[str, float],
                   rows: Sequence[Tuple[int, np.ndarray]]) -> None:
    """Writes a window's means to TensorBoard and its per-step auxiliary
    weights ``[(step, [N])]`` to ``weights.csv`` and TensorBoard."""
    with self.writer.as_default():
      write_scalars(step, means)
      for row_step, weights in rows:
        self.weights_log.append(row_step, weights)
        for name, w in zip(self._task.auxiliary_names, weights):
          tf.summary.scalar(f'aux_weight/w_{name}', w, step=row_step)

  def write_images(self, step: int, first_batch: Callable[[], Mapping],
                   predict: Callable[[tf.Tensor, tf.Tensor], tf.Tensor]
                   ) -> None:
    """An image grid of a fixed batch (``first_batch()``, drawn once)."""
    if self._vis_batch is None:
      batch = first_batch()
      n = self._config.train.max_images
      self._vis_batch = (batch['image'][:n], batch['mask'][:n])
    images, masks = self._vis_batch
    masked = images * (1.0 - masks)
    pred = predict(masked, masks)
    completed = ops.composite(pred, images, masks)
    with self.writer.as_default():
      tf.summary.image('masked|output|completed|truth',
                       image_grid(masked, pred, completed, images),
                       step=step, max_outputs=self._config.train.max_images)

  def validate(self, step: int, complete_fn: evaluation.CompleteFn
               ) -> validation.Scores:
    """Scores ``complete_fn`` on the validation set; logs the scores to
    ``eval.csv`` (with the OpenCV baselines) and TensorBoard
    (``eval/<method>/<mask_type>/<metric>``)."""
    t0 = time.perf_counter()
    scores, rows = self.run_validation.run(step, complete_fn)
    with self.writer.as_default():
      for _, method, mask_type, metric, value in rows:
        tf.summary.scalar(f'eval/{method}/{mask_type}/{metric}', value,
                          step=step)
    self.eval_seconds += time.perf_counter() - t0
    return scores

  def resume(self, step: int, complete_fn: evaluation.CompleteFn) -> bool:
    """Drops log rows after ``step`` (a resumed run writes them again) and
    repeats the validation of ``step`` when it is missing; returns whether
    this process validates."""
    if self.weights_log is not None:
      self.weights_log.truncate_after(step)
    validate = (self.run_validation is not None
                and self.run_validation.log is not None)
    if (validate and self.run_validation.resume(step)
        and step % self._config.train.eval_every == 0):
      self.validate(step, complete_fn)
    return validate
