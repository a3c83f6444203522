"""The training loop: checkpoints, logs, validation and the data stream.

One training step is GMCNN's loop body (``tensorflow/train.py``): after the
reconstruction-only pretraining steps, ``n_critic`` critic updates and then
one generator update, each on a fresh batch; the task
(``training.task``) defines the losses, the steps (``training.steps``) run
them on the devices. With ``aux_losses='tpl_tsl'`` the six TPL/TSL terms of
the AWA paper join the generator loss, their weights set by a reweighter
(``inpaint_tf.reweighting``) before every generator update; AWA draws a
second batch from the stream as its guidance batch. The weights are written
every step to TensorBoard and ``weights.csv``. The auxiliary terms are used
in the pretraining steps too (they are reconstruction losses); only the
critics wait.

The data stream is a function of the index of its first batch
(``data.DatasetFn``) and the checkpoint stores how many batches were read,
so a run that is stopped and resumed repeats the uninterrupted run; with op
determinism (``configure_determinism``) the weights agree bit for bit.

The run directory's files are listed in ``run_dir``; ``checkpoints``
writes ``ckpt/`` (a run resumes from the latest checkpoint automatically)
and ``logs.RunLogs`` the rest: TensorBoard, ``weights.csv`` and the
validation's ``eval.csv`` and ``eval_set.npz``.

The steps' scalars stay on the device and are read once per
``log_every`` steps (and before every checkpoint), so a step never waits
for the device to report a value. A NaN or infinite loss term (or gradient
norm) in such a window raises ``NonFiniteLossError`` naming it and the
window's steps; none of them is checkpointed, so the last good checkpoint
is the latest one.
"""

from __future__ import annotations

import functools
import time
from typing import Any, Dict, Iterator, List, Optional

import numpy as np
import tensorflow as tf

from inpaint_tf import completion
from inpaint_tf import config as config_lib
from inpaint_tf import data as data_lib
from inpaint_tf import progress
from inpaint_tf import run_dir
from inpaint_tf import validation
from inpaint_tf.keras_api import keras
from inpaint_tf.training import actions
from inpaint_tf.training import checkpoints
from inpaint_tf.training import logs
from inpaint_tf.training import process
from inpaint_tf.training import steps as steps_lib
from inpaint_tf.training import stream as stream_lib
from inpaint_tf.training import task as task_lib


class Trainer:
  """GEPE-Net / PE-Net / S-Net trainer with WGAN-GP local and global critics.

  Typical use::

    trainer = Trainer(log_dir, data.make_dataset_fn(config), config)
    trainer.train()   # resumes from log_dir/ckpt if a checkpoint exists

  Tests drive ``critic_step``, ``generator_step`` and ``train_step``
  directly.

  Args:
    log_dir: run directory (created).
    dataset_fn: ``data.DatasetFn`` giving the training stream from a batch
      index.
    config: the ``ExperimentConfig`` (None: the papers' defaults). Its
      ``vgg_weights`` may be None for random VGG weights (tests).
    strategy: a ``tf.distribute.Strategy``; default: ``make_strategy(
      config.train.strategy)``.
    validation_set: held-out crops and holes scored every ``eval_every``
      steps (``validation.ValidationSet`` at ``image_size``); None for no
      validation.
    progress_stream: where the progress bar goes (default stderr); False
      for none.

  Attributes:
    task: the ``InpaintingTask`` (models and losses).
    steps: the ``TrainSteps`` (optimisers and the distributed updates).
    checkpoints: the run's ``checkpoints.RunCheckpoints``.
    logs: the run's ``logs.RunLogs`` (TensorBoard, CSVs, validation).
    restored_from: the checkpoint resumed from, or None.
    config_changes: the resumable settings that differ from the resumed
      run's (``'name: old -> new'``).
  """

  def __init__(self, log_dir: str, dataset_fn: data_lib.DatasetFn,
               config: Optional[config_lib.ExperimentConfig] = None, *,
               strategy: Optional[tf.distribute.Strategy] = None,
               validation_set: Optional[validation.ValidationSet] = None,
               progress_stream: Any = None):
    self.log_dir = log_dir
    self.dataset_fn = dataset_fn
    self.config = config = config or config_lib.ExperimentConfig()
    self.strategy = strategy or process.make_strategy(config.train.strategy)
    self.progress_stream = progress_stream
    self.is_chief = process.is_chief(self.strategy)
    task_lib.check_fits(config, self.strategy.num_replicas_in_sync)
    if validation_set is not None:
      size = validation_set.images.shape[1]
      if size != config.train.image_size:
        raise ValueError(f'validation_set: expected crops of image_size '
                         f'{config.train.image_size}, got {size}')
    self.config_changes = run_dir.record_config(log_dir, config,
                                                write=self.is_chief)
    self._build()
    self.checkpoints = self._make_checkpoints()
    self.restored_from = self.checkpoints.restore()
    self.logs = logs.RunLogs(
        log_dir, self.task, config, self.is_chief,
        validation_set, int(self.step.numpy()) if self.restored_from else None)
    self._predict_fn = tf.function(self._predict, autograph=False)
    self._complete_fn = tf.function(
        functools.partial(completion.complete_uint8, self._predict),
        autograph=False)
    # Seconds spent in training steps (for the validation's overhead).
    self.train_seconds = 0.0
    self._stream = None
    self._stop_signal = None
    self._stop_vote = process.StopVote(self.strategy)
    # The phase (adversarial or not) of the last step, and the seconds per
    # step of the last window without tracing (for the ETA).
    self._phase = None
    self._seconds_per_step = None

  # -------------------------------------------------------------- set-up

  def _build(self) -> None:
    """The task, its steps and the counters, under the strategy's scope
    (and the mixed-precision policy, if any)."""
    policy = keras.mixed_precision.global_policy()
    if self.config.train.mixed_precision:
      keras.mixed_precision.set_global_policy('mixed_float16')
    try:
      with self.strategy.scope():
        self.task = task_lib.InpaintingTask(self.config)
        self.steps = steps_lib.TrainSteps(self.task, self.strategy,
                                          self.config)
        # Counters are the same on every replica (updated in cross-replica
        # context only).
        self.step = tf.Variable(
            0, dtype=tf.int64, trainable=False, name='step',
            aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA)
        self.batches = tf.Variable(
            0, dtype=tf.int64, trainable=False, name='batches',
            aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA)
    finally:
      keras.mixed_precision.set_global_policy(policy)

  def _make_checkpoints(self) -> checkpoints.RunCheckpoints:
    """The checkpoints of everything that trains."""
    task, steps = self.task, self.steps
    trackables = dict(
        step=self.step, batches=self.batches, generator=task.generator,
        local_critic=task.local_critic, global_critic=task.global_critic,
        g_optimizer=steps.g_optimizer, d_optimizer=steps.d_optimizer)
    if task.reweighter is not None:
      trackables['reweighter'] = task.reweighter
    return checkpoints.RunCheckpoints(
        self.log_dir, trackables, self.strategy, self.is_chief,
        self.config.train.keep_checkpoints)

  # --------------------------------------------------------------- steps

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
                  self.config.optimizer.n_critic + int(index))
    return self.steps.critic_step(batch, seed_index)

  @property
  def needs_guidance(self) -> bool:
    """Whether each generator update reads a second (guidance) batch."""
    return self.task.needs_guidance

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
    return self.steps.generator_step(batch, guidance_batch, adversarial)

  def learning_rate(self, step: int) -> float:
    """Rate of the optimisers at ``step`` (``OptimizerConfig`` schedule).

    ``learning_rate`` while pretraining, ``adversarial_learning_rate`` (if
    set) once the critics train, both times ``0.5 ** (step /
    lr_half_life)`` when ``lr_half_life > 0``. It is set before every step,
    so a resumed run uses the rates of its own configuration, not the
    restored optimisers' values.
    """
    o = self.config.optimizer
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
    return step >= self.config.optimizer.pretrain_steps

  def train_step(self, iterator: Iterator,
                 step: Optional[int] = None) -> Dict[str, tf.Tensor]:
    """One step: ``n_critic`` critic updates, then one generator update.

    While ``step < pretrain_steps`` only the generator is updated, on the
    reconstruction terms (and the auxiliary ones). With AWA the generator
    update reads a second, guidance batch. Both optimisers first take the
    step's ``learning_rate``. Increments ``self.step``.

    Args:
      iterator: batches, normally ``self.iterator()``.
      step: the value of ``self.step``, when the caller knows it (``train``
        does; otherwise it is read, which waits for the device).

    Returns:
      The step's scalars as tensors (critic values from its last update);
      reading one waits for the device, so ``train`` reads them only on
      logging and checkpoint steps.
    """
    step = int(self.step.numpy()) if step is None else step
    adversarial = self.is_adversarial(step)
    rate = self.learning_rate(step)
    self.steps.set_learning_rate(rate)
    scalars = {'opt/learning_rate': tf.constant(rate, tf.float32)}
    if adversarial:
      for index in range(self.config.optimizer.n_critic):
        scalars.update(self.critic_step(next(iterator), index))
    batch = next(iterator)
    guidance = next(iterator) if self.needs_guidance else None
    scalars.update(self.generator_step(batch, adversarial, guidance))
    self.step.assign_add(1)
    return scalars

  # ---------------------------------------------------------------- data

  def iterator(self) -> Iterator:
    """The distributed training stream from batch ``self.batches`` on.

    Every batch drawn advances ``self.batches`` (saved in the checkpoint),
    so a restored trainer continues the stream where the saved one was.
    """
    return stream_lib.BatchStream(self.dataset_fn, self.strategy,
                                  self.batches)

  # ---------------------------------------------------------- validation

  def _predict(self, masked, masks):
    return tf.cast(self.task.generator((masked, masks), training=False),
                   tf.float32)

  @property
  def eval_seconds(self) -> float:
    """Seconds spent in ``validate``."""
    return self.logs.eval_seconds

  def complete(self, images: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """Completes images with the generator, a training batch at a time.

    Args:
      images: uint8 [N,H,W,3].
      masks: [N,H,W,1], non-zero = hole.

    Returns:
      uint8 [N,H,W,3]: generated pixels in the holes, the input elsewhere.
    """
    n = self.config.train.batch_size
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
    return self.logs.validate(step, self.complete)

  # ---------------------------------------------------------------- loop

  def save(self) -> str:
    """Writes a checkpoint of the current step (every worker must call it);
    returns its path."""
    return self.checkpoints.save(self.step)

  def train(self, max_steps: Optional[int] = None) -> Dict[str, float]:
    """Trains until the step counter reaches ``max_steps``.

    The count is absolute: a resumed run continues to the same target.
    The steps' scalars stay on the device; every ``log_every`` steps, at
    checkpoints, at a stop and at the end they are read in one transfer,
    checked for NaN/inf, written to TensorBoard (averaged) and
    ``weights.csv`` (per step) and shown by the progress bar, so steps do
    not wait for the device in between (image grids and validation do).
    Image grids every ``image_every`` steps, checkpoints every
    ``checkpoint_every`` steps and at the end.

    Args:
      max_steps: target step (default ``train.max_steps``).

    Returns:
      The scalars of the last step as floats (empty if there was nothing
      to do).

    Raises:
      NonFiniteLossError: a loss term or gradient norm is NaN/inf in a
        window of steps; no step of it is checkpointed.
      TrainingInterrupted: ``request_stop`` was called (a signal under
        ``stop_on_signals``); the step reached is checkpointed.
    """
    tc = self.config.train
    max_steps = tc.max_steps if max_steps is None else int(max_steps)
    step = int(self.step.numpy())
    if step >= max_steps:
      return {}
    if self._stream is None:
      self._stream = self.iterator()
    run = actions.Run(max_steps, self.logs.resume(step, self.complete))
    if self.progress_stream is not False and self.is_chief:
      run.bar = progress.ProgressBar(max_steps, stream=self.progress_stream,
                                     every=tc.log_every)
    run.window = actions.Window(step, self._stream.position,
                                self.eval_seconds)
    after_step = self._actions(run)
    last = {}
    try:
      while step < max_steps:
        run.window.traced |= self._phase != self.is_adversarial(step)
        self._phase = self.is_adversarial(step)
        last = self.train_step(self._stream, step)
        step += 1
        run.window.scalars.add(last, step, self.logs.aux_weights(last))
        signum = self._stop_vote(self._stop_signal)
        for action in after_step:
          if action.due(step, step == max_steps, signum is not None):
            action.run(step)
        if signum is not None:
          raise process.TrainingInterrupted(signum, step,
                                            self.checkpoints.latest)
    finally:
      if run.bar is not None:
        run.bar.close()
      self.logs.writer.flush()
    return {k: float(v) for k, v in last.items()}

  def _actions(self, run: actions.Run) -> List[actions.Action]:
    """What the loop does after a step, in this order, and when.

    The scalars are also read before every checkpoint, so that no
    checkpoint holds a non-finite step; a stop reads them and checkpoints
    whatever the step.
    """
    tc = self.config.train
    out = [
        actions.Action('scalars', (tc.log_every, tc.checkpoint_every),
                       lambda step: self._close_window(run, step),
                       at_stop=True),
        actions.Action('images', (tc.image_every,), functools.partial(
            self.logs.write_images,
            first_batch=lambda: next(iter(self.dataset_fn(0).take(1))),
            predict=self._predict_fn))]
    if run.validate:
      out.append(actions.Action('validation', (tc.eval_every,),
                                self.validate))
    out.append(actions.Action('checkpoint', (tc.checkpoint_every,),
                              lambda step: self.save(), at_stop=True))
    return out

  def _close_window(self, run: actions.Run, step: int) -> None:
    """Reads, checks and logs the scalars of ``run.window`` (ending at
    ``step``) and starts the next window."""
    window = run.window
    means, rows = window.scalars.read()
    seconds = (time.perf_counter() - window.start -
               (self.eval_seconds - window.eval_seconds))
    self.train_seconds += seconds
    steps_lib.check_finite(means, step, self.checkpoints.latest,
                           self.config.train.mixed_precision,
                           first_step=window.first_step + 1)
    images = ((self._stream.position - window.position) *
              self.config.train.batch_size)
    means['perf/images_per_sec'] = images / max(seconds, 1e-9)
    if not window.traced or self._seconds_per_step is None:
      self._seconds_per_step = seconds / (step - window.first_step)
    self.logs.write_window(step, means, rows)
    if run.bar is not None:
      run.bar.update(step, logs.bar_scalars(means),
                     means['perf/images_per_sec'],
                     (run.max_steps - step) * self._seconds_per_step)
    run.window = actions.Window(step, self._stream.position,
                                self.eval_seconds)

  def request_stop(self, signum: int) -> None:
    """Asks ``train`` to checkpoint and stop after the current step.

    Under ``multi_worker`` every worker stops, after the next step
    (``process.StopVote``). Safe to call from a signal handler (it only
    records ``signum``).
    """
    self._stop_signal = signum
