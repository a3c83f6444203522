"""The training process: its strategy, determinism and stop signals."""

from __future__ import annotations

import contextlib
import signal
from typing import Iterator, Optional, Sequence

import numpy as np
import tensorflow as tf

from inpaint_tf import config as config_lib
from inpaint_tf.keras_api import keras


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
def stop_on_signals(trainer,
                    signums: Sequence[int] = (signal.SIGTERM, signal.SIGINT)
                    ) -> Iterator[None]:
  """Within the block, the signals ask ``trainer`` to stop after its step.

  SIGTERM (what schedulers send before killing a job) and SIGINT (Ctrl-C)
  let the current step finish; ``Trainer.train`` then writes a checkpoint
  and raises ``TrainingInterrupted`` (under ``multi_worker``, every worker
  does, one step later, when any of them received the signal:
  ``StopVote``). A second signal of the same kind acts
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


class StopVote:
  """After each step: whether to stop, the same answer in every process.

  With one process (one device, or ``MirroredStrategy``) the answer is the
  signal this process received, at once. Under
  ``MultiWorkerMirroredStrategy`` a signal may reach one worker only (a
  scheduler pre-empting one machine), yet every worker must stop after the
  same step and take part in its checkpoint: each worker votes after every
  step with the signal it received, the votes are summed over the workers
  by a collective, and the sum is read one step later. Every worker then
  reads the same sum after the same step, and the host only waits for the
  previous step's vote, never for the step it has just queued.

  Args:
    strategy: the trainer's strategy.
  """

  def __init__(self, strategy: tf.distribute.Strategy):
    self._strategy = strategy
    self._multi_worker = isinstance(
        strategy, tf.distribute.MultiWorkerMirroredStrategy)
    self._pending = None  # The summed votes of the previous step.
    if self._multi_worker:
      self._sum = tf.function(self._sum_votes, autograph=False)

  def _sum_votes(self, votes: tf.Tensor) -> tf.Tensor:
    """[NSIG] float32 one-hot vote -> [NSIG] votes summed over replicas."""
    per_replica = self._strategy.run(tf.identity, args=(votes,))
    return self._strategy.reduce(tf.distribute.ReduceOp.SUM, per_replica,
                                 axis=None)

  def __call__(self, signum: Optional[int]) -> Optional[int]:
    """Votes ``signum`` (None: no signal); returns the signal to stop for.

    Under ``MultiWorkerMirroredStrategy`` the answer is that of the
    previous call's votes: the lowest-numbered signal any worker received,
    or None (go on). Call it once after every step, in every worker.
    """
    if not self._multi_worker:
      return signum
    votes = np.zeros([signal.NSIG], np.float32)
    if signum is not None:
      votes[signum] = 1.0
    previous, self._pending = self._pending, self._sum(tf.constant(votes))
    if previous is None:
      return None
    received = np.flatnonzero(previous.numpy())
    return int(received[0]) if received.size else None


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
  raise ValueError(f'strategy: expected one of {config_lib.STRATEGIES}, got '
                   f'{name!r}')


def configure_determinism(seed: int, deterministic: bool) -> None:
  """Seeds Python, NumPy and TF; optionally makes every op deterministic.

  Call before building models. Op determinism is process-wide and cannot
  be switched off again.
  """
  keras.utils.set_random_seed(seed)
  if deterministic:
    tf.config.experimental.enable_op_determinism()


def is_chief(strategy: tf.distribute.Strategy) -> bool:
  """Whether this process writes checkpoints and summaries."""
  if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
    return True
  resolver = strategy.cluster_resolver
  task_type, task_id = resolver.task_type, resolver.task_id
  if task_type is None or task_type == 'chief':
    return True
  has_chief = 'chief' in resolver.cluster_spec().as_dict()
  return task_type == 'worker' and task_id == 0 and not has_chief
