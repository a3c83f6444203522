"""A run directory: its files, and saving and loading what they hold.

``log_dir`` of a training run (``training.Trainer``) holds:

* ``config.json``: the whole ``ExperimentConfig`` (``config.to_dict()``),
  written at the start; a resumed run must agree with it on every field that
  is not ``resumable`` (``record_config``, ``resume_conflicts``);
* ``generator.json``: the generator's Keras config, what ``load_generator``
  rebuilds the network from;
* ``ckpt/``: ``tf.train.CheckpointManager`` checkpoints; the generator is
  saved under the key ``generator``;
* ``tb/``: TensorBoard events;
* ``weights.csv``: the auxiliary weights per step (with ``aux_losses``);
* ``eval.csv``, ``eval_set.npz``: held-out validation
  (``validation.EVAL_CSV``, ``validation.EVAL_SET``).
"""

from __future__ import annotations

import json
import os
import re
import socket
import tempfile
import time
from typing import Any, Dict, List, Mapping, Tuple

import tensorflow as tf
from tensorflow.core.util import event_pb2

from inpaint_tf import config as config_lib
from inpaint_tf import ops
from inpaint_tf.models.generator import Generator

CONFIG_JSON = 'config.json'
GENERATOR_JSON = 'generator.json'
CHECKPOINT_SUBDIR = 'ckpt'
CHECKPOINT_KEY = 'generator'
TENSORBOARD_SUBDIR = 'tb'
WEIGHTS_CSV = 'weights.csv'


def _write_json(path: str, value) -> None:
  """Writes ``value`` as JSON to ``path`` atomically."""
  tmp = f'{path}.tmp-{os.getpid()}'
  with tf.io.gfile.GFile(tmp, 'w') as f:
    f.write(json.dumps(value, indent=2, sort_keys=True) + '\n')
  tf.io.gfile.rename(tmp, path, overwrite=True)


def _read_json(path: str, argument: str):
  with tf.io.gfile.GFile(path) as f:
    try:
      return json.load(f)
    except json.JSONDecodeError as e:
      raise ValueError(f'{argument}: {path} is not valid JSON: {e}') from e


def _read_config_json(path: str) -> Dict[str, Dict[str, Any]]:
  """A run's ``config.json``, with the settings older runs did not record.

  ``vgg_convention``: runs from before the setting computed TPL/TSL on
  Keras' weights (``'keras_caffe'``); without TPL/TSL it plays no part.
  """
  values = _read_json(path, 'log_dir')
  losses = values.setdefault('losses', {})
  if 'vgg_convention' not in losses:
    losses['vgg_convention'] = (
        'keras_caffe' if losses.get('aux_losses') == 'tpl_tsl'
        else config_lib.LossConfig.vgg_convention)
  return values


def resume_conflicts(saved: Mapping[str, Mapping[str, Any]],
                     config: config_lib.ExperimentConfig
                     ) -> Tuple[List[str], List[str]]:
  """How ``config`` differs from a run's saved ``to_dict()``.

  Returns:
    (conflicts, changes): one text per differing field, ``'name: saved
    -> new'``; conflicts are fields that describe the model, its losses or
    its data (not ``resumable``), changes the resumable ones. Fields the
    saved run did not record count as differing.
  """
  new = config.to_dict()
  conflicts, changes = [], []
  for section, f in config_lib.fields():
    old = saved.get(section, {}).get(f.name, '<not recorded>')
    value = new[section][f.name]
    if old != value:
      text = f'{f.name}: {old!r} -> {value!r}'
      (changes if f.metadata['resumable'] else conflicts).append(text)
  return conflicts, changes


def record_config(log_dir: str, config: config_lib.ExperimentConfig,
                  write: bool = True) -> List[str]:
  """Writes ``config.json``, or checks a resumed run against it.

  Args:
    log_dir: the run directory (created).
    config: this run's experiment.
    write: whether this process writes files (the chief).

  Returns:
    The resumable fields that changed since the saved run, as ``'name:
    old -> new'`` (empty for a new run); ``config.json`` then holds the new
    values.

  Raises:
    ValueError: a field that describes the model, its losses or its data
      differs from the saved run's; the message starts with its name.
  """
  if tf.io.gfile.exists(log_dir) and not tf.io.gfile.isdir(log_dir):
    raise ValueError(f'log_dir: expected a run directory (new, or a run to '
                     f'resume), got the file {log_dir!r}')
  path = os.path.join(log_dir, CONFIG_JSON)
  changes = []
  if tf.io.gfile.exists(path):
    conflicts, changes = resume_conflicts(_read_config_json(path), config)
    if conflicts:
      first = conflicts[0]
      name = first.split(':', 1)[0]
      more = (f' (and {len(conflicts) - 1} more: '
              f'{", ".join(c.split(":", 1)[0] for c in conflicts[1:])})'
              if len(conflicts) > 1 else '')
      raise ValueError(
          f'{name}: expected the value of the run in {log_dir}, got a '
          f'change ({first.split(": ", 1)[1]}){more}; a resumed run keeps '
          'its model, losses and data, use a new --log_dir for new ones')
  if write and (changes or not tf.io.gfile.exists(path)):
    tf.io.gfile.makedirs(log_dir)
    _write_json(path, config.to_dict())
  return changes


def load_config(log_dir: str) -> config_lib.ExperimentConfig:
  """The ``ExperimentConfig`` a run directory's ``config.json`` holds."""
  path = os.path.join(log_dir, CONFIG_JSON)
  if not tf.io.gfile.exists(path):
    raise ValueError(f'log_dir: expected {path}, not found')
  return config_lib.ExperimentConfig.from_dict(_read_config_json(path))


def remove_stale_checkpoint_files(ckpt_dir: str) -> None:
  """Deletes what a killed save leaves: temporaries no checkpoint uses.

  Removes ``ckpt-N_temp*`` shards and ``checkpoint.tmp*`` state files.
  """
  for pattern in ('*_temp*', 'checkpoint.tmp*'):
    for path in tf.io.gfile.glob(os.path.join(ckpt_dir, pattern)):
      if tf.io.gfile.isdir(path):
        tf.io.gfile.rmtree(path)
      else:
        tf.io.gfile.remove(path)


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


def save_generator_config(gen: Generator, checkpoint_dir: str) -> str:
  """Writes ``<checkpoint_dir>/generator.json`` atomically.

  Args:
    gen: the generator.
    checkpoint_dir: run directory (created if needed).

  Returns:
    Path of the written file.
  """
  tf.io.gfile.makedirs(checkpoint_dir)
  path = os.path.join(checkpoint_dir, GENERATOR_JSON)
  _write_json(path, gen.get_config())
  return path


def _generator_variables(checkpoint_path: str) -> Dict[str, Tuple[int, ...]]:
  """Generator variable keys and shapes stored in a checkpoint."""
  prefix = CHECKPOINT_KEY + '/'
  return {
      name: tuple(shape)
      for name, shape in tf.train.list_variables(checkpoint_path)
      if name.startswith(prefix) and '.OPTIMIZER_SLOT' not in name
      and name.endswith('.ATTRIBUTES/VARIABLE_VALUE')
  }


def _describe(variables: Dict[str, Tuple[int, ...]]) -> str:
  """Guesses the variant and width of a generator from its variables."""
  widths = [shape[-1] for name, shape in variables.items()
            if name.startswith(f'{CHECKPOINT_KEY}/e1/kernel')]
  cnum = widths[0] // 2 if widths else '?'
  if any(f'{CHECKPOINT_KEY}/aspc_layer/' in name for name in variables):
    kind = "with ASPC ('penet' or 'gepenet')"
  else:
    kind = "without ASPC ('snet', or aspc=False)"
  return f'a generator {kind}, cnum={cnum}'


def _check_checkpoint_matches(gen: Generator, checkpoint_path: str,
                              config_path: str) -> None:
  """Raises ValueError unless the checkpoint's generator fits ``gen``."""
  with tempfile.TemporaryDirectory() as tmp:
    own_path = tf.train.Checkpoint(**{CHECKPOINT_KEY: gen}).write(
        os.path.join(tmp, 'expected'))
    expected = _generator_variables(own_path)
  found = _generator_variables(checkpoint_path)
  if found == expected:
    return
  missing = sorted(set(expected) - set(found))
  unexpected = sorted(set(found) - set(expected))
  reshaped = sorted(k for k in set(expected) & set(found)
                    if expected[k] != found[k])
  details = []
  for label, keys in (('missing', missing), ('unexpected', unexpected),
                      ('with other shapes', reshaped)):
    if keys:
      shown = ', '.join(k.split('/.ATTRIBUTES')[0] for k in keys[:4])
      more = f' and {len(keys) - 4} more' if len(keys) > 4 else ''
      details.append(f'{label}: {shown}{more}')
  if not found:
    details = [f'no variables under the key {CHECKPOINT_KEY!r}']
  raise ValueError(
      f'checkpoint_dir: {config_path} describes variant {gen.variant!r} '
      f'(cnum={gen.cnum}, aspc={gen.uses_aspc}), but checkpoint '
      f'{checkpoint_path} holds {_describe(found)}; ' + '; '.join(details))


def load_generator(checkpoint_dir: str, dtype: str = 'float32') -> Generator:
  """Rebuilds a generator from a run directory and restores its weights.

  Args:
    checkpoint_dir: directory with ``generator.json`` and ``ckpt/`` (the
      latest checkpoint there is restored).
    dtype: the dtype policy of the rebuilt network (float32 by default,
      whatever policy it was trained under; ``generator.json`` records it).

  Returns:
    The built Generator with restored weights.

  Raises:
    ValueError: the directory, the JSON or the checkpoint is missing or
      unreadable, or the checkpoint holds a different generator (variant,
      width, ASPC). 'penet' and 'gepenet' have the same variables (they
      differ only in the IGL targets used in training), so the JSON decides
      between them.
  """
  if not tf.io.gfile.isdir(checkpoint_dir):
    raise ValueError(f'checkpoint_dir: expected a run directory with '
                     f'{GENERATOR_JSON} and {CHECKPOINT_SUBDIR}/, got '
                     f'{checkpoint_dir!r} (not a directory)')
  config_path = os.path.join(checkpoint_dir, GENERATOR_JSON)
  if not tf.io.gfile.exists(config_path):
    raise ValueError(f'checkpoint_dir: expected {config_path} (written by '
                     f'save_generator_config), not found')
  config = _read_json(config_path, 'checkpoint_dir')
  ckpt_dir = os.path.join(checkpoint_dir, CHECKPOINT_SUBDIR)
  checkpoint_path = tf.train.latest_checkpoint(ckpt_dir)
  if checkpoint_path is None:
    raise ValueError(f'checkpoint_dir: expected a checkpoint in {ckpt_dir}, '
                     f'found none')
  gen = Generator.from_config(dict(config, dtype=dtype))
  gen.build()
  try:
    _check_checkpoint_matches(gen, checkpoint_path, config_path)
    tf.train.Checkpoint(**{CHECKPOINT_KEY: gen}).restore(
        checkpoint_path).expect_partial()
  except tf.errors.OpError as e:
    raise ValueError(f'checkpoint_dir: expected a readable checkpoint, got '
                     f'{checkpoint_path!r} ({ops.op_error_text(e)})') from None
  return gen
