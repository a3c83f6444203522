"""A training run's checkpoints: written by every worker, kept by the chief.

``<log_dir>/ckpt`` holds the checkpoints (``ckpt-<step>``). Under
``multi_worker`` every worker takes part in each save (the variables are
mirrored, so saving is collective); the chief writes to ``ckpt/`` and each
other worker to a temporary ``.ckpt_worker<i>`` that it removes after the
save. Every worker restores the chief's latest checkpoint.
"""

from __future__ import annotations

import os
from typing import Mapping, Optional

import tensorflow as tf

from inpaint_tf import run_dir


class RunCheckpoints:
  """The checkpoints of one run directory.

  Args:
    log_dir: the run directory.
    trackables: name -> object to save (``tf.train.Checkpoint`` keys).
    strategy: the run's strategy (for the worker's task id).
    is_chief: whether this process keeps what it saves.
    max_to_keep: checkpoints kept in ``ckpt/``.

  Attributes:
    directory: ``<log_dir>/ckpt`` (the tools' ``--checkpoint_dir`` is the
      run directory).
    checkpoint: the ``tf.train.Checkpoint``.
  """

  def __init__(self, log_dir: str, trackables: Mapping[str, tf.Module],
               strategy: tf.distribute.Strategy, is_chief: bool,
               max_to_keep: int):
    self.directory = os.path.join(log_dir, run_dir.CHECKPOINT_SUBDIR)
    self.is_chief = is_chief
    self.checkpoint = tf.train.Checkpoint(**trackables)
    own = self.directory
    if not is_chief:
      task_id = strategy.cluster_resolver.task_id
      own = os.path.join(log_dir, f'.ckpt_worker{task_id}')
    self._manager = tf.train.CheckpointManager(self.checkpoint, own,
                                               max_to_keep=max_to_keep)

  def restore(self) -> Optional[str]:
    """Restores the latest checkpoint of ``directory``; returns its path.

    Removes what a killed save left behind first (the chief: stale
    temporary files; another worker: its own temporary directory).

    Raises:
      ValueError: naming ``log_dir``, when the checkpoint does not match
        the objects (another configuration).
    """
    if self.is_chief:
      run_dir.remove_stale_checkpoint_files(self.directory)
    elif tf.io.gfile.exists(self._manager.directory):
      tf.io.gfile.rmtree(self._manager.directory)
    path = tf.train.latest_checkpoint(self.directory)
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

  def save(self, step: tf.Variable) -> str:
    """Writes ``ckpt-<step>`` (every worker must call it); returns the path
    of the chief's copy."""
    self._manager.save(checkpoint_number=step)
    if not self.is_chief:
      tf.io.gfile.rmtree(self._manager.directory)
    return self.latest

  @property
  def latest(self) -> Optional[str]:
    """Path of the latest checkpoint this process saved or None (the path
    of the chief's copy in every worker)."""
    path = self._manager.latest_checkpoint
    if path is None:
      return None
    return os.path.join(self.directory, os.path.basename(path))
