"""Training of GEPE-Net and its ablations (GEPE-Net Eq. 10, SPEC 4.3-4.5, 7).

One training step is GMCNN's loop body (``tensorflow/train.py``): after the
reconstruction-only pretraining steps, ``n_critic`` critic updates and then
one generator update, each on a fresh batch. The losses are

* critics (GMCNN ``build_net``): for the local critic on the hole's
  bounding-box crop (``models.hole_crop`` at ``CriticConfig.local_size``)
  and the global critic on the whole image,
  ``d = mean(D(completed)) - mean(D(real))`` plus ``theta_gp`` times the
  gradient penalty on per-sample random interpolates, its slope taken over
  the hole (``losses.masked_gradient_penalty``);
* generator (Eq. 10): ``gamma_svw * L_svw + gamma_igl * L_IGL +
  gamma_adv * (g_adv_local + g_adv_global)`` (+ ``gamma_ae * ae`` when
  ``gamma_ae > 0``); ``L_IGL`` exists for ``gepenet`` only and the
  adversarial terms only after pretraining.

Loss terms form a named collection of ``LossTerm(value, weight)`` pairs; each
is logged raw (``loss/<term>``), weighted (``weighted/<term>``) and with its
weight (``weight/<term>``). With ``aux_losses='tpl_tsl'`` the six TPL/TSL
terms of the AWA paper (``inpaint_tf.perceptual``) join the generator loss,
their weights set by a reweighter from ``inpaint_tf.awa`` (``awa``,
``adaloss``, ``gradnorm``, ``gradsim`` or ``fixed``) before every generator
update; AWA draws a second batch from the stream as its guidance batch. The
weights are written every step to TensorBoard and ``<log_dir>/weights.csv``.
The auxiliary terms are used in the pretraining steps too (they are
reconstruction losses); only the critics wait.

Distribution goes through ``tf.distribute``: ``strategy.run`` on
per-replica batches from ``strategy.experimental_distribute_dataset``; every
per-replica loss is a mean over the replica's batch divided by
``num_replicas_in_sync``, so the summed gradients are those of the mean over
the global batch (training batches are complete, so replicas hold equal
shares; GMCNN's ``ae`` term, normalised per replica by the known area, is
the one exception and is off by default).

Randomness inside the steps (the gradient penalty's interpolation weights)
is stateless, keyed on ``(seed, step, critic update)`` and drawn for the
global batch, each replica taking its share, so one device and N replicas
see the same numbers. The data stream is a function of the index of its
first batch (``DatasetFn``) and the checkpoint stores how many batches were
read, so a run that is stopped and resumed repeats the uninterrupted run;
with op determinism (``configure_determinism``) the weights agree bit for
bit.

Mixed precision (``TrainConfig.mixed_precision``, for GPUs): the models are
built under the ``mixed_float16`` policy and both optimisers wrapped in a
``LossScaleOptimizer``; losses, critic scores and the contextual attention
(softmax included) are computed in float32.

Run directory (``log_dir``):

* ``generator.json``: the generator's config (``models.load_generator``);
* ``ckpt/``: ``tf.train.CheckpointManager`` with the step, the number of
  batches read, generator, both critics, both optimisers and the
  reweighter; a run resumes from the latest checkpoint automatically;
* ``tb/``: TensorBoard scalars and image grids ``masked | output |
  completed | truth``;
* ``weights.csv``: the auxiliary weights per step (with ``aux_losses``);
* ``eval.csv``: held-out validation (with a ``validation_set`` and
  ``eval_every > 0``): PSNR, SSIM and L1 of the completed held-out crops
  per mask type at the start, every ``eval_every`` steps and at the end,
  with OpenCV's TELEA and NS on the same crops beside them; the same
  values go to TensorBoard as ``eval/<method>/<mask_type>/<metric>``;
  ``eval_set.npz`` holds those crops and holes.

The progress bar (stderr) shows the step, the generator's loss terms, the
critics' total, images/s (every image read: critic, generator and guidance
batches) and the ETA.

A NaN or infinite loss term (or gradient norm) raises ``NonFiniteLossError``
naming it; that step is not checkpointed, so the last good checkpoint is
the latest one.
"""

from __future__ import annotations

import collections
import contextlib
import csv
import dataclasses
import functools
import json
import math
import os
import re
import signal
import socket
import sys
import time
from typing import Any, Callable, Dict, Iterator, Mapping, Optional, Sequence

import numpy as np
import tensorflow as tf
from tensorflow.core.util import event_pb2

from inpaint_tf import awa
from inpaint_tf import config as config_lib
from inpaint_tf import data as data_lib
from inpaint_tf import inference
from inpaint_tf import losses
from inpaint_tf import masks as masks_lib
from inpaint_tf import models
from inpaint_tf import ops
from inpaint_tf import perceptual
from inpaint_tf import validation
from inpaint_tf.keras_api import keras
from inpaint_tf.models import generator as generator_lib

STRATEGIES = ('default', 'mirrored', 'multi_worker')
# Auxiliary generator losses: none, or TPL + TSL (AWA paper Eqs. 4-5).
AUX_LOSSES = ('none', 'tpl_tsl')
CRITIC_TERMS = ('d_local', 'd_global', 'gp_local', 'gp_global')
WEIGHTS_CSV = 'weights.csv'

# (value, weight) of one loss term; scalars (the weight may be a tensor).
LossTerm = collections.namedtuple('LossTerm', ['value', 'weight'])

# start -> dataset of global batches ``{'image': [B,H,W,3] float32 in
# [-1,1], 'mask': [B,H,W,1] float32, 1 = hole}`` (``data.make_dataset``)
# whose first element is batch number ``start`` of the training stream.
# Every batch has the global batch size (``drop_remainder=True``).
DatasetFn = Callable[[int], tf.data.Dataset]


@dataclasses.dataclass(frozen=True)
class TrainConfig:
  """Run settings besides the model hyperparameters of ``inpaint_tf.config``.

  ``image_size`` is the papers' resolution; ``batch_size`` and ``max_steps``
  are GMCNN's training defaults (``options/train_options.py``), which the
  GEPE-Net paper does not state.
  """
  image_size: int = 256
  batch_size: int = 16
  max_steps: int = 40000
  seed: int = 0
  # Scalars are averaged over, and written every, ``log_every`` steps.
  log_every: int = 10
  image_every: int = 500
  checkpoint_every: int = 1000
  keep_checkpoints: int = 5
  # Samples shown in each TensorBoard image grid.
  max_images: int = 4
  strategy: str = STRATEGIES[0]
  mixed_precision: bool = False
  deterministic: bool = False
  # Held-out validation (``inpaint_tf.validation``): steps between
  # evaluations (0 = none; also at the start and the end of a run), crops
  # per held-out image and the seed of crops and holes.
  eval_every: int = 0
  eval_crops_per_image: int = 4
  eval_seed: int = 1234


class NonFiniteLossError(RuntimeError):
  """A loss term or gradient norm became NaN or infinite."""

  def __init__(self, term: str, value: float, step: int,
               checkpoint: Optional[str]):
    self.term = term
    self.value = value
    self.step = step
    self.checkpoint = checkpoint
    kept = (f'last good checkpoint: {checkpoint}' if checkpoint
            else 'no checkpoint was written')
    kind = 'gradient norm' if term.endswith('grad_norm') else 'loss term'
    super().__init__(f'non-finite {kind} {term!r} ({value}) at step '
                     f'{step}; training stopped, {kept}')


class TrainingInterrupted(RuntimeError):
  """A stop was requested (``Trainer.request_stop``) and checkpointed.

  Attributes:
    signum: the signal that asked for the stop.
    step: the step saved.
    checkpoint: path of that checkpoint.
    exit_status: ``128 + signum``, the shell's status for the signal (143
      for SIGTERM, 130 for SIGINT).
  """

  def __init__(self, signum: int, step: int, checkpoint: Optional[str]):
    self.signum = signum
    self.step = step
    self.checkpoint = checkpoint
    self.exit_status = 128 + signum
    super().__init__(f'stopped by {signal.Signals(signum).name} at step '
                     f'{step}; checkpoint {checkpoint} written, the same '
                     'command continues the run')


@contextlib.contextmanager
def stop_on_signals(trainer: 'Trainer',
                    signums: Sequence[int] = (signal.SIGTERM, signal.SIGINT)
                    ) -> Iterator[None]:
  """Within the block, the signals ask ``trainer`` to stop after its step.

  SIGTERM (what schedulers send before killing a job) and SIGINT (Ctrl-C)
  let the current step finish; ``Trainer.train`` then writes a checkpoint
  and raises ``TrainingInterrupted``. A second signal of the same kind acts
  at once, as if no handler were installed. The previous handlers come back
  when the block ends. Main thread only (Python's signal rule).
  """
  previous = {s: signal.getsignal(s) for s in signums}

  def handler(signum, frame):
    del frame
    signal.signal(signum, previous[signum])
    trainer.request_stop(signum)

  for s in signums:
    signal.signal(s, handler)
  try:
    yield
  finally:
    for s, old in previous.items():
      signal.signal(s, old)


# An event file's name and the second it was made.
_EVENT_FILE = re.compile(r'^events\.out\.tfevents\.(\d+)\.')


def write_restart_event(tb_dir: str, step: int) -> str:
  """Tells TensorBoard that a resumed run rewrites the steps from ``step``.

  TensorBoard reads a run's event files in name order; a ``SessionLog``
  START event at step ``s`` makes it drop what it read at steps >= ``s``
  (its "purge orphaned data"). A run killed after its last checkpoint has
  logged steps that the resumed run logs again; with this marker each step
  is shown once, from the resumed run. The file's name sorts after the
  older event files (it waits, at most a second, for a later second than
  theirs) and before the writer's next one (in the same second,
  ``.0restart`` comes before ``.<pid>``).

  Args:
    tb_dir: the run's TensorBoard directory.
    step: the first step the resumed run logs.

  Returns:
    The path written.
  """
  tf.io.gfile.makedirs(tb_dir)
  # File names start with the second they were made: wait (at most a
  # second) until it is later than that of every existing file.
  seconds = [int(m.group(1)) for m in
             (_EVENT_FILE.match(n) for n in tf.io.gfile.listdir(tb_dir)) if m]
  while seconds and int(time.time()) <= max(seconds):
    time.sleep(0.05)
  now = time.time()
  path = os.path.join(tb_dir, f'events.out.tfevents.{int(now):010d}.'
                      f'{socket.gethostname()}.0restart')
  start = event_pb2.Event(wall_time=now, step=step,
                          session_log=event_pb2.SessionLog(
                              status=event_pb2.SessionLog.START))
  # TensorBoard takes a run's first START for the run's beginning, not a
  # restart; a second one at the same step is harmless in later files.
  events = [event_pb2.Event(wall_time=now, step=0,
                            file_version='brain.Event:2'), start, start]
  with tf.io.TFRecordWriter(path) as writer:
    for event in events:
      writer.write(event.SerializeToString())
  return path


def make_strategy(name: str) -> tf.distribute.Strategy:
  """Returns the ``tf.distribute`` strategy called ``name``.

  Args:
    name: ``'default'`` (one device), ``'mirrored'`` (all local GPUs, or the
      CPU) or ``'multi_worker'`` (``MultiWorkerMirroredStrategy``, cluster
      from ``TF_CONFIG``).
  """
  if name == 'default':
    return tf.distribute.get_strategy()
  if name == 'mirrored':
    return tf.distribute.MirroredStrategy()
  if name == 'multi_worker':
    return tf.distribute.MultiWorkerMirroredStrategy()
  raise ValueError(f'strategy: expected one of {STRATEGIES}, got {name!r}')


def configure_determinism(seed: int, deterministic: bool) -> None:
  """Seeds Python, NumPy and TF; optionally makes every op deterministic.

  Call before building models. Op determinism is process-wide and cannot
  be switched off again.
  """
  keras.utils.set_random_seed(seed)
  if deterministic:
    tf.config.experimental.enable_op_determinism()


def _renamed(error: ValueError, name: str) -> ValueError:
  """The error with the argument it names replaced by ``name``."""
  text = str(error)
  head, sep, rest = text.partition(': ')
  if sep and head.isidentifier():
    text = rest
  return ValueError(f'{name}: {text}')


def make_dataset_fn(data: str, image_size: int, batch_size: int,
                    mask_config: config_lib.MaskConfig, seed: int,
                    celeba_crop: bool = False,
                    mask_dir: Optional[str] = None,
                    augment: Optional[config_lib.AugmentConfig] = None,
                    skip_counter: Optional[data_lib.SkipCounter] = None
                    ) -> DatasetFn:
  """The training stream of ``data.make_dataset`` as a ``DatasetFn``.

  Args:
    data: a folder of images (searched recursively), a text file listing
      image paths, or ``'skimage'``: the training split of scikit-image's
      bundled photographs (``data.split_demo_images``), as random
      ``image_size`` crops at their own resolution.
    image_size: training resolution (square).
    batch_size: global batch size.
    mask_config: hole generator; ``mask_type='folder'`` reads ``mask_dir``.
    seed: fixes the order, crops, flips and masks.
    celeba_crop: CelebA's 178x178 centre crop before resizing.
    mask_dir: folder or file list of masks for ``mask_type='folder'``.
    augment: ``AugmentConfig`` (None: the defaults, no augmentation beyond
      horizontal flips).
    skip_counter: collects the unreadable image files the stream skips
      (``data.SkipCounter``; its ``summary()`` is the line to print).

  Returns:
    ``start -> tf.data.Dataset`` of batches, from batch ``start`` on.

  Raises:
    ValueError: no images at ``data``, no masks at ``mask_dir``, options
      that do not fit together, or no readable image among the files: the
      first batch is read now, so that such data fails before a run
      directory is made.
  """
  augment = augment or config_lib.AugmentConfig()
  random_crop = data == data_lib.SKIMAGE_DATA
  if random_crop:
    train, _ = data_lib.split_demo_images(data_lib.skimage_demo_files())
    files = [path for _, path in train]
  else:
    try:
      files = data_lib.list_images(data)
    except ValueError as e:
      raise _renamed(e, 'data') from None
  mask_spec = mask_config
  if mask_config.mask_type == 'folder':
    if not mask_dir:
      raise ValueError("mask_dir: expected a folder of masks for mask_type "
                       "'folder', got none")
    try:
      folder = masks_lib.MaskFolder(mask_dir)
    except ValueError as e:
      raise _renamed(e, 'mask_dir') from None
    mask_spec = masks_lib.make_mask_fn(mask_config, image_size, image_size,
                                       folder)
  elif mask_dir:
    raise ValueError(f"mask_dir: only used with mask_type 'folder', got "
                     f'mask_type {mask_config.mask_type!r}')

  def dataset_fn(start: int) -> tf.data.Dataset:
    dataset = data_lib.make_dataset(
        files, image_size, batch_size, mask_spec, seed, training=True,
        celeba_crop=celeba_crop, random_crop=random_crop,
        min_crop_scale=augment.min_crop_scale, rotate90=augment.rotate90,
        skip_counter=skip_counter)
    # The stream is a deterministic function of the seed: skipping replays
    # the reading of the skipped batches, not their training.
    return dataset.skip(start) if start else dataset

  # Bad options (hole larger than the image...) fail when it is built,
  # unreadable data at its first batch.
  first = iter(dataset_fn(0).take(1))
  try:
    next(first)
    error = None
  except tf.errors.OpError as err:
    error = ops.op_error_text(err)
  # The iterator's threads must stop before the process may exit.
  del first
  if error is not None:
    raise ValueError(f'data: expected readable images, got {data!r} '
                     f'({error})')
  return dataset_fn


def _is_chief(strategy: tf.distribute.Strategy) -> bool:
  """Whether this process writes checkpoints and summaries."""
  if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
    return True
  resolver = strategy.cluster_resolver
  task_type, task_id = resolver.task_type, resolver.task_id
  if task_type is None or task_type == 'chief':
    return True
  has_chief = 'chief' in resolver.cluster_spec().as_dict()
  return task_type == 'worker' and task_id == 0 and not has_chief


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


class Trainer:
  """GEPE-Net / PE-Net / S-Net trainer with WGAN-GP local and global critics.

  Typical use::

    trainer = Trainer(log_dir, make_dataset_fn(...), train_config=...)
    trainer.train()   # resumes from log_dir/ckpt if a checkpoint exists

  Tests drive ``critic_step``, ``generator_step`` and ``train_step``
  directly.

  Args:
    log_dir: run directory (created).
    dataset_fn: ``DatasetFn`` giving the training stream from a batch index.
    generator_config, attention_config, loss_config, critic_config,
      optimizer_config: hyperparameters (``inpaint_tf.config``; None: the
      defaults, i.e. the papers' values).
    train_config: ``TrainConfig`` (None: the defaults).
    aux_losses: ``'none'`` or ``'tpl_tsl'`` (TPL + TSL on VGG-16 features).
    reweight: reweighter of the auxiliary terms, one of
      ``config.REWEIGHTERS``.
    awa_config: ``AWAConfig`` (bases, scales, phi optimiser, guidance).
      None: the defaults.
    vgg_weights: VGG-16 weights for TPL/TSL: ``'imagenet'`` (Keras cache),
      a ``.h5`` path, or None for random weights (tests).
    lpips_weights: LPIPS ``.npz`` for AWA's LPIPS guidance.
    strategy: a ``tf.distribute.Strategy``; default: ``make_strategy(
      train_config.strategy)``.
    validation_set: held-out crops and holes scored every
      ``train_config.eval_every`` steps (``validation.ValidationSet`` at
      ``train_config.image_size``); None for no validation.
    progress_stream: where the progress bar goes (default stderr); False
      for none.
  """

  def __init__(
      self, log_dir: str, dataset_fn: DatasetFn, *,
      generator_config: Optional[config_lib.GeneratorConfig] = None,
      attention_config: Optional[config_lib.AttentionConfig] = None,
      loss_config: Optional[config_lib.LossConfig] = None,
      critic_config: Optional[config_lib.CriticConfig] = None,
      optimizer_config: Optional[config_lib.OptimizerConfig] = None,
      train_config: Optional[TrainConfig] = None,
      aux_losses: str = AUX_LOSSES[0],
      reweight: str = config_lib.REWEIGHTERS[0],
      awa_config: Optional[config_lib.AWAConfig] = None,
      vgg_weights: Optional[str] = 'imagenet',
      lpips_weights: Optional[str] = None,
      strategy: Optional[tf.distribute.Strategy] = None,
      validation_set: Optional[validation.ValidationSet] = None,
      progress_stream: Any = None):
    self.log_dir = log_dir
    self.dataset_fn = dataset_fn
    self.generator_config = generator_config or config_lib.GeneratorConfig()
    self.attention_config = attention_config or config_lib.AttentionConfig()
    self.loss_config = loss_config or config_lib.LossConfig()
    self.critic_config = critic_config or config_lib.CriticConfig()
    self.optimizer_config = optimizer_config or config_lib.OptimizerConfig()
    self.train_config = train_config = train_config or TrainConfig()
    awa_config = awa_config or config_lib.AWAConfig()
    self.aux_losses = aux_losses
    self.reweight = reweight
    self.strategy = strategy or make_strategy(train_config.strategy)
    self.progress_stream = progress_stream
    self.validation_set = validation_set
    self.is_chief = _is_chief(self.strategy)
    self.global_batch_size = train_config.batch_size
    self.num_replicas = self.strategy.num_replicas_in_sync
    self.mixed_precision = train_config.mixed_precision
    self._check_configs(reweight)

    policy = keras.mixed_precision.global_policy()
    if self.mixed_precision:
      keras.mixed_precision.set_global_policy('mixed_float16')
    try:
      with self.strategy.scope():
        self._build(reweight, awa_config, vgg_weights, lpips_weights)
    finally:
      keras.mixed_precision.set_global_policy(policy)

    trackables = dict(
        step=self.step, batches=self.batches, generator=self.generator,
        local_critic=self.local_critic, global_critic=self.global_critic,
        g_optimizer=self.g_optimizer, d_optimizer=self.d_optimizer)
    if self.reweighter is not None:
      trackables['reweighter'] = self.reweighter
    self.checkpoint = tf.train.Checkpoint(**trackables)
    self._write_generator_config()
    ckpt_dir = os.path.join(log_dir, generator_lib.CHECKPOINT_SUBDIR)
    self.checkpoint_dir = ckpt_dir
    if not self.is_chief:
      # Every worker must take part in saving; only the chief's copy stays.
      task_id = self.strategy.cluster_resolver.task_id
      ckpt_dir = os.path.join(log_dir, f'.ckpt_worker{task_id}')
    self.manager = tf.train.CheckpointManager(
        self.checkpoint, ckpt_dir, max_to_keep=train_config.keep_checkpoints)
    self.restored_from = self._restore()

    if self.is_chief:
      tb_dir = os.path.join(log_dir, 'tb')
      if self.restored_from:
        write_restart_event(tb_dir, int(self.step.numpy()) + 1)
      self.writer = tf.summary.create_file_writer(tb_dir)
    else:
      self.writer = tf.summary.create_noop_writer()
    self.weights_log = None
    if self.reweighter is not None and self.is_chief:
      self.weights_log = WeightsLog(
          os.path.join(log_dir, WEIGHTS_CSV),
          ['w_' + n for n in self.auxiliary.tunable.names])
    self.eval_log = None
    if self.validating and self.is_chief:
      self._save_validation_set()
      self.eval_log = validation.EvalLog(
          os.path.join(log_dir, validation.EVAL_CSV))

    # The steps hold no tensor-dependent Python control flow; without
    # AutoGraph conversion they trace several times faster.
    self._critic_fn = tf.function(self._distributed_critic_step,
                                  autograph=False)
    self._generator_fns = {
        adversarial: tf.function(
            functools.partial(self._distributed_generator_step,
                              adversarial=adversarial), autograph=False)
        for adversarial in (False, True)}
    self._predict_fn = tf.function(self._predict, autograph=False)
    self._complete_fn = tf.function(
        functools.partial(inference.complete_uint8, self._predict),
        autograph=False)
    # Seconds spent in ``validate`` and in training steps (for the overhead).
    self.eval_seconds = 0.0
    self.train_seconds = 0.0
    self._stream = None
    self._vis_batch = None
    self._stop_signal = None

  # --------------------------------------------------------------- set-up

  def _check_configs(self, reweight: str) -> None:
    g, t, c = self.generator_config, self.train_config, self.critic_config
    if g.variant not in config_lib.GENERATOR_VARIANTS:
      raise ValueError(f'variant: expected one of '
                       f'{config_lib.GENERATOR_VARIANTS}, got {g.variant!r}')
    multiple = generator_lib.SIZE_MULTIPLE
    if t.image_size < multiple or t.image_size % multiple:
      raise ValueError(f'image_size: expected a positive multiple of '
                       f'{multiple}, got {t.image_size}')
    if not 1 <= c.local_size <= t.image_size:
      raise ValueError(f'local_size: expected 1..image_size '
                       f'({t.image_size}), got {c.local_size}')
    if t.batch_size < 1 or t.batch_size % self.num_replicas:
      raise ValueError(f'batch_size: expected a positive multiple of the '
                       f'{self.num_replicas} replicas, got {t.batch_size}')
    o = self.optimizer_config
    if o.n_critic < 1:
      raise ValueError(f'n_critic: expected >= 1, got {o.n_critic}')
    rates = [('learning_rate', o.learning_rate)]
    if o.adversarial_learning_rate is not None:
      rates.append(('adversarial_learning_rate', o.adversarial_learning_rate))
    for name, rate in rates:
      if not rate > 0:
        raise ValueError(f'{name}: expected > 0, got {rate}')
    if o.lr_half_life < 0:
      raise ValueError(f'lr_half_life: expected >= 0, got {o.lr_half_life}')
    if self.loss_config.svw_normalization not in config_lib.SVW_NORMALIZATIONS:
      raise ValueError(f'svw_normalization: expected one of '
                       f'{config_lib.SVW_NORMALIZATIONS}, got '
                       f'{self.loss_config.svw_normalization!r}')
    for name in ('max_steps', 'log_every', 'image_every', 'checkpoint_every',
                 'keep_checkpoints', 'max_images'):
      if getattr(t, name) < 1:
        raise ValueError(f'{name}: expected >= 1, got {getattr(t, name)}')
    if t.eval_every < 0:
      raise ValueError(f'eval_every: expected >= 0, got {t.eval_every}')
    if self.validation_set is not None:
      size = self.validation_set.images.shape[1]
      if size != t.image_size:
        raise ValueError(f'validation_set: expected crops of image_size '
                         f'{t.image_size}, got {size}')
    if self.aux_losses not in AUX_LOSSES:
      raise ValueError(f'aux_losses: expected one of {AUX_LOSSES}, got '
                       f'{self.aux_losses!r}')
    if reweight not in config_lib.REWEIGHTERS:
      raise ValueError(f'reweight: expected one of {config_lib.REWEIGHTERS}, '
                       f'got {reweight!r}')
    if self.aux_losses != 'none' and self.mixed_precision:
      raise ValueError('mixed_precision: not supported with aux_losses '
                       f'{self.aux_losses!r} (the reweighters differentiate '
                       'without loss scaling)')

  def _build(self, reweight, awa_config, vgg_weights, lpips_weights) -> None:
    """Models, optimisers, counters and reweighter (under the scope)."""
    g, a = self.generator_config, self.attention_config
    self.generator = models.build_generator(
        variant=g.variant, cnum=g.cnum, aspc=g.aspc, aspc_rates=g.aspc_rates,
        attention_rates=g.attention_rates, attention_ksize=a.ksize,
        attention_stride=a.stride, attention_fuse_k=a.fuse_k,
        attention_softmax_scale=a.softmax_scale, attention_fuse=a.fuse,
        name='generator')
    self.local_critic = models.LocalCritic(
        filters=self.critic_config.local_filters)
    self.global_critic = models.GlobalCritic(
        filters=self.critic_config.global_filters)
    self.g_optimizer = self._make_optimizer()
    self.d_optimizer = self._make_optimizer()
    # Counters are the same on every replica (updated in cross-replica
    # context only).
    self.step = tf.Variable(
        0, dtype=tf.int64, trainable=False, name='step',
        aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA)
    self.batches = tf.Variable(
        0, dtype=tf.int64, trainable=False, name='batches',
        aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA)
    size, local = self.train_config.image_size, self.critic_config.local_size
    self.generator((tf.zeros([1, size, size, 3]), tf.zeros([1, size, size, 1])))
    self.local_critic(tf.zeros([1, local, local, 3]))
    self.global_critic(tf.zeros([1, size, size, 3]))
    # Optimiser slots exist before a restore, so it fills them at once.
    self.g_optimizer.build(self.generator.trainable_variables)
    self.d_optimizer.build(self.critic_variables)
    self.auxiliary = self.reweighter = None
    if self.aux_losses == 'tpl_tsl':
      self.auxiliary = perceptual.TunableAuxiliaryLoss(
          vgg_weights=vgg_weights, config=awa_config)
      self.reweighter = awa.make_reweighter(
          reweight, self.auxiliary.tunable, self.generator, awa_config,
          lookahead_lr=self.optimizer_config.learning_rate,
          lpips_weights=lpips_weights)

  def _make_optimizer(self) -> keras.optimizers.Optimizer:
    o = self.optimizer_config
    optimizer = keras.optimizers.Adam(
        learning_rate=o.learning_rate, beta_1=o.beta_1, beta_2=o.beta_2)
    if self.mixed_precision:
      optimizer = keras.mixed_precision.LossScaleOptimizer(optimizer)
    return optimizer

  @property
  def critic_variables(self):
    """Trainable variables of both critics (local first)."""
    return (self.local_critic.trainable_variables +
            self.global_critic.trainable_variables)

  def _write_generator_config(self) -> None:
    path = os.path.join(self.log_dir, generator_lib.CONFIG_FILENAME)
    new = json.loads(json.dumps(self.generator.get_config()))
    if tf.io.gfile.exists(path):
      with tf.io.gfile.GFile(path) as f:
        old = json.load(f)
      ignored = ('name',)
      if ({k: v for k, v in old.items() if k not in ignored} !=
          {k: v for k, v in new.items() if k not in ignored}):
        raise ValueError(
            f'log_dir: {self.log_dir} holds a run of another generator '
            f'({old}); this run builds {new}. Use a new --log_dir.')
      return
    if self.is_chief:
      models.save_generator_config(self.generator, self.log_dir)

  def _save_validation_set(self) -> None:
    """Writes ``eval_set.npz``; a resumed run must score the same set."""
    path = os.path.join(self.log_dir, validation.EVAL_SET)
    if os.path.exists(path):
      if not validation.ValidationSet.load(path).same_as(self.validation_set):
        raise ValueError(
            f'log_dir: {path} holds other held-out crops or holes than this '
            'run draws (another --eval_data, --eval_crops_per_image, '
            '--eval_seed or hole setting); use a new --log_dir')
      return
    self.validation_set.save(path)

  def _restore(self) -> Optional[str]:
    # Every worker restores the chief's latest checkpoint: the others save
    # to temporary directories that each save removes again.
    self._remove_stale_checkpoint_files()
    path = tf.train.latest_checkpoint(self.checkpoint_dir)
    if path is None:
      return None
    status = self.checkpoint.restore(path)
    try:
      status.assert_existing_objects_matched()
    except AssertionError as e:
      raise ValueError(f'log_dir: checkpoint {path} does not match this '
                       f'configuration ({str(e).splitlines()[0]}); use a new '
                       '--log_dir') from None
    return path

  def _remove_stale_checkpoint_files(self) -> None:
    """Deletes what a killed save leaves: temporaries no checkpoint uses.

    The chief removes ``ckpt-N_temp*`` shards and ``checkpoint.tmp*``
    state files in ``ckpt/``; another worker removes its own temporary
    checkpoint directory.
    """
    if not self.is_chief:
      if tf.io.gfile.exists(self.manager.directory):
        tf.io.gfile.rmtree(self.manager.directory)
      return
    for pattern in ('*_temp*', 'checkpoint.tmp*'):
      for path in tf.io.gfile.glob(os.path.join(self.checkpoint_dir,
                                                pattern)):
        if tf.io.gfile.isdir(path):
          tf.io.gfile.rmtree(path)
        else:
          tf.io.gfile.remove(path)

  # ---------------------------------------------------------------- steps

  def _alpha(self, seed_index: tf.Tensor, stream: int) -> tf.Tensor:
    """This replica's share of the per-sample interpolation weights, [b]."""
    seed = tf.stack([tf.constant(self.train_config.seed, tf.int64),
                     seed_index * 2 + stream])
    alpha = tf.random.stateless_uniform([self.global_batch_size], seed=seed)
    share = self.global_batch_size // self.num_replicas
    replica = tf.distribute.get_replica_context().replica_id_in_sync_group
    return alpha[replica * share:(replica + 1) * share]

  def _scaled(self, optimizer, total: tf.Tensor) -> tf.Tensor:
    """Per-replica mean -> its share of the global-batch mean (loss-scaled)."""
    scaled = total / tf.cast(self.num_replicas, total.dtype)
    if self.mixed_precision:
      scaled = optimizer.get_scaled_loss(scaled)
    return scaled

  def _apply(self, optimizer, grads, variables) -> tf.Tensor:
    """Sums the replicas' gradients, applies them; returns their norm."""
    pairs = [(g, v) for g, v in zip(grads, variables) if g is not None]
    grads = [g for g, _ in pairs]
    # Summed here rather than inside apply_gradients, so that the logged
    # norm is that of the global-batch gradient.
    grads = tf.distribute.get_replica_context().all_reduce(
        tf.distribute.ReduceOp.SUM, grads)
    if self.mixed_precision:
      grads = optimizer.get_unscaled_gradients(grads)
    optimizer.apply_gradients(zip(grads, [v for _, v in pairs]),
                              skip_gradients_aggregation=True)
    return tf.linalg.global_norm(grads)

  def critic_terms(self, images: tf.Tensor, masks: tf.Tensor,
                   completed: tf.Tensor, seed_index: tf.Tensor
                   ) -> Dict[str, LossTerm]:
    """Named critic loss terms (GMCNN's ``d_loss``) for one batch.

    Args:
      images: [B,H,W,3] float32 in [-1,1], the ground truth.
      masks: [B,H,W,1] float32, 1 = hole.
      completed: [B,H,W,3] float32, ``G(I) * M + Igt * (1 - M)``.
      seed_index: int64 scalar keying the penalty's interpolation weights.

    Returns:
      Ordered dict: ``d_local``, ``d_global`` (weight 1), ``gp_local``,
      ``gp_global`` (weight ``theta_gp``).
    """
    size = self.critic_config.local_size
    real_local = models.hole_crop(images, masks, size)
    fake_local = models.hole_crop(completed, masks, size)
    mask_local = models.hole_crop(masks, masks, size)

    def local(x):
      return tf.cast(self.local_critic(x, training=True), tf.float32)

    def global_(x):
      return tf.cast(self.global_critic(x, training=True), tf.float32)

    theta = self.loss_config.theta_gp
    return collections.OrderedDict([
        ('d_local', LossTerm(losses.wgan_critic_loss(
            local(real_local), local(fake_local)), 1.0)),
        ('d_global', LossTerm(losses.wgan_critic_loss(
            global_(images), global_(completed)), 1.0)),
        ('gp_local', LossTerm(losses.masked_gradient_penalty(
            local, real_local, fake_local, mask_local,
            alpha=self._alpha(seed_index, 0)), theta)),
        ('gp_global', LossTerm(losses.masked_gradient_penalty(
            global_, images, completed, masks,
            alpha=self._alpha(seed_index, 1)), theta)),
    ])

  def _critic_step_fn(self, images, masks, seed_index):
    masked = images * (1.0 - masks)
    pred = tf.cast(self.generator((masked, masks), training=True), tf.float32)
    completed = tf.stop_gradient(pred * masks + images * (1.0 - masks))
    variables = self.critic_variables
    with tf.GradientTape(watch_accessed_variables=False) as tape:
      tape.watch(variables)
      terms = self.critic_terms(images, masks, completed, seed_index)
      total = tf.add_n([t.value * t.weight for t in terms.values()])
      scaled = self._scaled(self.d_optimizer, total)
    grad_norm = self._apply(self.d_optimizer, tape.gradient(scaled, variables),
                            variables)
    return self._summaries(terms, total, 'd_total', grad_norm, 'd_grad_norm')

  def generator_terms(self, images: tf.Tensor, masks: tf.Tensor,
                      adversarial: bool, training: bool = True):
    """Named generator loss terms of Eq. 10 for one (per-replica) batch.

    The auxiliary TPL/TSL terms are not included (``aux_losses``).

    Args:
      images: [B,H,W,3] float32 in [-1,1], the ground truth.
      masks: [B,H,W,1] float32, 1 = hole.
      adversarial: include the critics' terms (False while pretraining).
      training: passed to the models.

    Returns:
      (terms, pred, completed): an ordered dict name -> ``LossTerm``
      (``svw``, ``igl`` for gepenet, ``ae`` if ``gamma_ae > 0``,
      ``adv_local`` and ``adv_global`` if adversarial), and the generator
      output and completed image, [B,H,W,3] float32.
    """
    lc = self.loss_config
    gepenet = self.generator_config.variant == 'gepenet'
    masked = images * (1.0 - masks)
    out = self.generator.forward(masked, masks,
                                 ground_truth=images if gepenet else None,
                                 training=training)
    pred = tf.cast(out.image, tf.float32)
    completed = pred * masks + images * (1.0 - masks)
    weights = losses.spatial_variant_weights(
        masks, size=lc.svw_size, sigma=lc.svw_sigma,
        iterations=lc.svw_iterations)
    terms = collections.OrderedDict()
    terms['svw'] = LossTerm(
        losses.svw_reconstruction_loss(
            images, pred, weights, masks, normalization=lc.svw_normalization),
        lc.gamma_svw)
    if gepenet:
      terms['igl'] = LossTerm(losses.iterative_guidance_loss(
          out.features, out.targets, stop_gradient=lc.igl_stop_gradient),
                              lc.gamma_igl)
    if lc.gamma_ae > 0:
      terms['ae'] = LossTerm(losses.known_region_loss(images, pred, masks),
                             lc.gamma_ae)
    if adversarial:
      local = models.hole_crop(completed, masks, self.critic_config.local_size)
      terms['adv_local'] = LossTerm(losses.wgan_generator_loss(tf.cast(
          self.local_critic(local, training=training), tf.float32)),
                                    lc.gamma_adv)
      terms['adv_global'] = LossTerm(losses.wgan_generator_loss(tf.cast(
          self.global_critic(completed, training=training), tf.float32)),
                                     lc.gamma_adv)
    return terms, pred, completed

  @staticmethod
  def _weighted_sum(terms: Mapping[str, LossTerm]) -> tf.Tensor:
    return tf.add_n([t.value * tf.cast(t.weight, tf.float32)
                     for t in terms.values()])

  def _generator_step_fn(self, images, masks, guidance, adversarial):
    variables = self.generator.trainable_variables
    if self.reweighter is None:
      with tf.GradientTape() as tape:
        terms, _, _ = self.generator_terms(images, masks, adversarial)
        total = self._weighted_sum(terms)
        scaled = self._scaled(self.g_optimizer, total)
      grad_norm = self._apply(self.g_optimizer,
                              tape.gradient(scaled, variables), variables)
      return self._summaries(terms, total, 'g_total', grad_norm,
                             'g_grad_norm')

    def loss_fn(batch):
      # Replica batch means, as on one device: the reweighter scales them.
      batch_images, batch_masks = batch
      terms, pred, _ = self.generator_terms(batch_images, batch_masks,
                                            adversarial)
      aux = self.auxiliary.terms(pred, batch_images, batch_masks)
      return self._weighted_sum(terms), aux, terms

    result = self.reweighter.step(loss_fn, (images, masks), guidance)
    grad_norm = self._apply(self.g_optimizer, result.gradients, variables)
    terms = collections.OrderedDict(result.outputs)
    for j, name in enumerate(self.auxiliary.tunable.names):
      terms[name] = LossTerm(result.aux_terms[j], result.weights[j])
    out = self._summaries(terms, result.total_loss, 'g_total', grad_norm,
                          'g_grad_norm')
    for name, value in result.scalars.items():
      if not name.startswith('w_'):  # The weights are logged with the terms.
        out[f'reweight/{name}'] = tf.cast(value, tf.float32)
    return out

  @staticmethod
  def _summaries(terms, total, total_name, grad_norm, grad_name):
    out = {}
    for name, term in terms.items():
      out[name] = tf.cast(term.value, tf.float32)
      out[f'{name}/weight'] = tf.cast(term.weight, tf.float32)
    out[total_name] = tf.cast(total, tf.float32)
    out[grad_name] = grad_norm
    return out

  def _reduce(self, per_replica: Dict[str, Any]) -> Dict[str, tf.Tensor]:
    # Replica values are means over equal shares of the global batch.
    return {k: self.strategy.reduce(tf.distribute.ReduceOp.MEAN, v, axis=None)
            for k, v in per_replica.items()}

  def _distributed_critic_step(self, batch, seed_index):
    return self._reduce(self.strategy.run(
        self._critic_step_fn, args=(batch['image'], batch['mask'],
                                    seed_index)))

  def _distributed_generator_step(self, batch, guidance, adversarial):
    if guidance is not None:
      guidance = (guidance['image'], guidance['mask'])
    return self._reduce(self.strategy.run(
        self._generator_step_fn,
        args=(batch['image'], batch['mask'], guidance, adversarial)))

  def critic_step(self, batch, index: int = 0) -> Dict[str, tf.Tensor]:
    """One update of both critics.

    Args:
      batch: ``{'image', 'mask'}`` global batch, or a batch of the
        distributed stream (``iterator()``).
      index: which of the step's ``n_critic`` updates this is; with the step
        counter it keys the penalty's random interpolation weights.

    Returns:
      Scalars: raw terms, ``<term>/weight``, ``d_total``, ``d_grad_norm``.
    """
    seed_index = (tf.convert_to_tensor(self.step) *
                  self.optimizer_config.n_critic + int(index))
    return self._critic_fn(batch, seed_index)

  def generator_step(self, batch, adversarial: bool = True,
                     guidance_batch=None) -> Dict[str, tf.Tensor]:
    """One generator update.

    Args:
      batch: as for ``critic_step``.
      adversarial: include the critics' terms.
      guidance_batch: AWA's second batch (same format); needed when
        ``needs_guidance``.

    Returns:
      Scalars: raw terms, ``<term>/weight``, ``g_total``, ``g_grad_norm``
      (and ``reweight/...`` values of the reweighter).
    """
    if self.needs_guidance and guidance_batch is None:
      raise ValueError('guidance_batch: AWA needs a second batch, got None')
    return self._generator_fns[bool(adversarial)](batch, guidance_batch)

  @property
  def needs_guidance(self) -> bool:
    """Whether each generator update reads a second (guidance) batch."""
    return bool(self.reweighter is not None and self.reweighter.uses_guidance)

  def learning_rate(self, step: int) -> float:
    """Rate of the optimisers at ``step`` (``OptimizerConfig`` schedule).

    ``learning_rate`` while pretraining, ``adversarial_learning_rate`` (if
    set) once the critics train, both times ``0.5 ** (step /
    lr_half_life)`` when ``lr_half_life > 0``. It is set before every step,
    so a resumed run uses the rates of its own configuration, not the
    restored optimisers' values.
    """
    o = self.optimizer_config
    rate = o.learning_rate
    if (self.is_adversarial(step)
        and o.adversarial_learning_rate is not None):
      rate = o.adversarial_learning_rate
    if o.lr_half_life > 0:
      rate *= 0.5 ** (step / o.lr_half_life)
    return float(rate)

  def is_adversarial(self, step: Optional[int] = None) -> bool:
    """Whether ``step`` (default: the current one) trains the critics."""
    step = int(self.step.numpy()) if step is None else step
    return step >= self.optimizer_config.pretrain_steps

  def train_step(self, iterator: Iterator) -> Dict[str, float]:
    """One step: ``n_critic`` critic updates, then one generator update.

    While ``step < pretrain_steps`` only the generator is updated, on the
    reconstruction terms (and the auxiliary ones). With AWA the generator
    update reads a second, guidance batch. Both optimisers first take the
    step's ``learning_rate``. Increments ``self.step``.

    Args:
      iterator: batches, normally ``self.iterator()``.

    Returns:
      The step's scalars as Python floats (critic values from its last
      update).
    """
    step = int(self.step.numpy())
    adversarial = self.is_adversarial(step)
    rate = self.learning_rate(step)
    for optimizer in (self.g_optimizer, self.d_optimizer):
      optimizer.learning_rate.assign(rate)
    scalars = {'opt/learning_rate': rate}
    if adversarial:
      for index in range(self.optimizer_config.n_critic):
        scalars.update(self.critic_step(next(iterator), index))
    batch = next(iterator)
    guidance = next(iterator) if self.needs_guidance else None
    scalars.update(self.generator_step(batch, adversarial, guidance))
    self.step.assign_add(1)
    return {k: float(np.asarray(v)) for k, v in scalars.items()}

  # ------------------------------------------------------------- the loop

  def iterator(self) -> Iterator:
    """The distributed training stream from batch ``self.batches`` on.

    Every batch drawn advances ``self.batches`` (saved in the checkpoint),
    so a restored trainer continues the stream where the saved one was.
    """
    return _Stream(self)

  def distributed_dataset(self, start: int):
    """``dataset_fn(start)`` distributed over the strategy's replicas."""
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = (
        tf.data.experimental.AutoShardPolicy.DATA)
    dataset = self.dataset_fn(start).with_options(options)
    return self.strategy.experimental_distribute_dataset(dataset)

  def _predict(self, masked, masks):
    return tf.cast(self.generator((masked, masks), training=False),
                   tf.float32)

  def _write_images(self, step: int) -> None:
    if self._vis_batch is None:
      # A fixed batch (the stream's first), so the grids show progress.
      batch = next(iter(self.dataset_fn(0).take(1)))
      n = self.train_config.max_images
      self._vis_batch = (batch['image'][:n], batch['mask'][:n])
    images, masks = self._vis_batch
    masked = images * (1.0 - masks)
    pred = self._predict_fn(masked, masks)
    completed = pred * masks + images * (1.0 - masks)
    with self.writer.as_default():
      tf.summary.image('masked|output|completed|truth',
                       image_grid(masked, pred, completed, images), step=step,
                       max_outputs=self.train_config.max_images)

  def _write_scalars(self, step: int, means: Mapping[str, float]) -> None:
    with self.writer.as_default():
      for name, value in means.items():
        if name.endswith('/weight'):
          term = name[:-len('/weight')]
          tf.summary.scalar(f'weight/{term}', value, step=step)
          if term in means:
            tf.summary.scalar(f'weighted/{term}', means[term] * value,
                              step=step)
        elif name.endswith('grad_norm'):
          tf.summary.scalar(f'grad/{name}', value, step=step)
        elif '/' in name:
          tf.summary.scalar(name, value, step=step)
        else:
          tf.summary.scalar(f'loss/{name}', value, step=step)

  def _log_aux_weights(self, step: int, scalars: Mapping[str, float]) -> None:
    if self.weights_log is None:
      return
    names = self.auxiliary.tunable.names
    weights = [scalars[f'{n}/weight'] for n in names]
    self.weights_log.append(step, weights)
    with self.writer.as_default():
      for name, w in zip(names, weights):
        tf.summary.scalar(f'aux_weight/w_{name}', w, step=step)

  @property
  def validating(self) -> bool:
    """Whether ``train`` scores the generator on held-out crops."""
    return (self.validation_set is not None
            and self.train_config.eval_every > 0)

  def complete(self, images: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """Completes images with the generator, a training batch at a time.

    Args:
      images: uint8 [N,H,W,3].
      masks: [N,H,W,1], non-zero = hole.

    Returns:
      uint8 [N,H,W,3]: generated pixels in the holes, the input elsewhere.
    """
    n = self.global_batch_size
    return np.concatenate([
        self._complete_fn(tf.constant(images[i:i + n]),
                          tf.constant(masks[i:i + n])).numpy()
        for i in range(0, len(images), n)])

  def validate(self, step: int) -> validation.Scores:
    """Scores the generator on the validation set and logs the scores.

    Appends the rows of the generator (named after its variant) and of the
    OpenCV baselines to ``eval.csv`` and writes them to TensorBoard as
    ``eval/<method>/<mask_type>/<metric>``.

    Args:
      step: the step the scores belong to.

    Returns:
      The generator's scores (``validation.Scores``).
    """
    t0 = time.perf_counter()
    scores = self.validation_set.score(self.complete)
    methods = {self.generator_config.variant: scores}
    methods.update(self.validation_set.baselines)
    rows = [row for method, values in methods.items()
            for row in validation.rows_of(step, method, values)]
    if self.eval_log is not None:
      self.eval_log.append(rows)
    with self.writer.as_default():
      for _, method, mask_type, metric, value in rows:
        tf.summary.scalar(f'eval/{method}/{mask_type}/{metric}', value,
                          step=step)
    self.eval_seconds += time.perf_counter() - t0
    return scores

  def save(self) -> Optional[str]:
    """Writes a checkpoint of the current step; returns its path (chief)."""
    path = self.manager.save(checkpoint_number=self.step)
    if not self.is_chief:
      tf.io.gfile.rmtree(self.manager.directory)
      return None
    return path

  def train(self, max_steps: Optional[int] = None) -> Dict[str, float]:
    """Trains until the step counter reaches ``max_steps``.

    The count is absolute: a resumed run continues to the same target.
    Scalars go to TensorBoard every ``log_every`` steps (averaged), image
    grids every ``image_every`` steps, checkpoints every
    ``checkpoint_every`` steps and at the end.

    Args:
      max_steps: target step (default ``train_config.max_steps``).

    Returns:
      The scalars of the last step (empty if there was nothing to do).

    Raises:
      NonFiniteLossError: a loss term or gradient norm is NaN/inf; that
        step is not checkpointed.
      TrainingInterrupted: ``request_stop`` was called (a signal under
        ``stop_on_signals``); the step reached is checkpointed.
    """
    tc = self.train_config
    max_steps = tc.max_steps if max_steps is None else int(max_steps)
    step = int(self.step.numpy())
    if step >= max_steps:
      return {}
    if self._stream is None:
      self._stream = self.iterator()
    if self.weights_log is not None:
      self.weights_log.truncate_after(step)
    validate = self.validating and self.eval_log is not None
    if validate:
      # A resumed run repeats the evaluations after its checkpoint.
      self.eval_log.truncate_after(step)
      if (step % tc.eval_every == 0
          and step not in self.eval_log.steps()):
        self.validate(step)
    bar = None
    if self.progress_stream is not False and self.is_chief:
      bar = ProgressBar(max_steps, stream=self.progress_stream,
                        every=tc.log_every)
    sums = collections.defaultdict(float)
    counts = collections.defaultdict(int)
    # Step times for the ETA; a phase's first step (tracing) is left out.
    recent = collections.deque(maxlen=20)
    phase = None
    last = {}
    try:
      while step < max_steps:
        batches_before = int(self.batches.numpy())
        traced = phase != self.is_adversarial(step)
        phase = self.is_adversarial(step)
        if traced:
          recent.clear()
        t0 = time.perf_counter()
        last = self.train_step(self._stream)
        elapsed = time.perf_counter() - t0
        self.train_seconds += elapsed
        step = int(self.step.numpy())
        for name, value in last.items():
          # With loss scaling, overflowing gradients are expected now and
          # then: the optimiser skips the update and lowers the scale.
          if not math.isfinite(value) and not (
              self.mixed_precision and name.endswith('grad_norm')):
            raise NonFiniteLossError(name, value, step,
                                     self.manager.latest_checkpoint)
        images = ((int(self.batches.numpy()) - batches_before) *
                  self.global_batch_size)
        last['perf/images_per_sec'] = images / max(elapsed, 1e-9)
        if not traced:
          recent.append(elapsed)
        seconds_per_step = float(np.mean(recent)) if recent else elapsed
        for name, value in last.items():
          sums[name] += value
          counts[name] += 1
        self._log_aux_weights(step, last)
        if bar is not None:
          bar.update(step, self._bar_scalars(last),
                     last['perf/images_per_sec'],
                     (max_steps - step) * seconds_per_step)
        if step % tc.log_every == 0 or step == max_steps:
          self._write_scalars(step, {k: sums[k] / counts[k] for k in sums})
          sums.clear()
          counts.clear()
        if step % tc.image_every == 0 or step == max_steps:
          self._write_images(step)
        if validate and (step % tc.eval_every == 0 or step == max_steps):
          self.validate(step)
        saved = step % tc.checkpoint_every == 0 or step == max_steps
        if saved:
          self.save()
        if self._stop_signal is not None:
          if not saved:
            self.save()
          raise TrainingInterrupted(self._stop_signal, step,
                                    self.manager.latest_checkpoint)
    finally:
      if bar is not None:
        bar.close()
      self.writer.flush()
    return last

  def request_stop(self, signum: int) -> None:
    """Asks ``train`` to checkpoint and stop after the current step.

    Safe to call from a signal handler (it only records ``signum``).
    """
    self._stop_signal = signum

  def _bar_scalars(self, scalars: Mapping[str, float]) -> Dict[str, float]:
    """Generator terms, totals: what the progress bar shows."""
    return {k: v for k, v in scalars.items()
            if '/' not in k and not k.endswith('grad_norm')
            and k not in CRITIC_TERMS}


class _Stream:
  """Iterator over a trainer's distributed stream that counts the batches."""

  def __init__(self, trainer: Trainer):
    self._trainer = trainer
    self._iterator = None
    self._position = None

  def __iter__(self):
    return self

  def __next__(self):
    trainer = self._trainer
    position = int(trainer.batches.numpy())
    if self._iterator is None or self._position != position:
      self._iterator = iter(trainer.distributed_dataset(position))
    batch = next(self._iterator)
    trainer.batches.assign_add(1)
    self._position = position + 1
    return batch
