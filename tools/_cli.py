"""Shared plumbing of the absl entry points in ``tools/``.

``run_main(main)`` replaces ``absl.app.run(main)``: bad input (a
``ValueError``, a file error, a TensorFlow op error such as an undecodable
image) ends the program with one line ``error: ...`` on stderr and exit
status 1 instead of a traceback. Library errors start with the name of the
argument at fault (``image: expected ...``); where that name is one of the
tool's flags the line names the flag as typed (``error: --image: expected
...``). Import this module before TensorFlow so that TensorFlow's C++
start-up chatter stays off stderr on every supported version and oneDNN's
CPU kernels are used (see below); absl INFO logs
(TensorFlow's own, e.g. from SavedModel saving) are hidden unless
``--verbosity`` is given.
"""

from __future__ import annotations

import os

# Must be set before TensorFlow is first imported. Level 3 also hides the
# CUDA plugin registration messages, which are logged as errors.
os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '3')
# oneDNN's CPU kernels: TensorFlow enables them by default only on CPUs with
# AVX-512 and newer; on AVX2 machines they still make a training step about
# twice as fast (convolution gradients). Set to 0 to use TF's own kernels.
os.environ.setdefault('TF_ENABLE_ONEDNN_OPTS', '1')

# pylint: disable=g-import-not-at-top,wrong-import-position
import sys
from typing import Callable, Optional, Sequence


def _import_tensorflow_quietly() -> None:
  """Imports TensorFlow and Keras with file descriptor 2 sent to /dev/null.

  TensorFlow 2.16+ writes C++ start-up lines ("All log messages before
  absl::InitializeLog() ...", the oneDNN and CUDA notices) to stderr while
  it loads, whatever ``TF_CPP_MIN_LOG_LEVEL`` says; they would break the
  one-error-line contract. stderr is restored before any error propagates,
  so a failed import still shows its traceback.
  """
  sys.stderr.flush()
  saved = os.dup(2)
  devnull = os.open(os.devnull, os.O_WRONLY)
  try:
    os.dup2(devnull, 2)
    import tensorflow  # pylint: disable=unused-import
    from inpaint_tf import keras_api  # pylint: disable=unused-import
  finally:
    os.dup2(saved, 2)
    os.close(saved)
    os.close(devnull)


_import_tensorflow_quietly()

from absl import app
from absl import flags
from absl import logging
import tensorflow as tf

from inpaint_tf import ops


def error_line(err: BaseException) -> str:
  """One line describing ``err``, naming the flag at fault where known.

  TensorFlow op errors give their first line without the ``{{function_node
  ...}}`` prefix; a leading ``name:`` that is a defined flag becomes
  ``--name:``.
  """
  if isinstance(err, tf.errors.OpError):
    text = ops.op_error_text(err)
  else:
    text = ' '.join(str(err).split()) or type(err).__name__
  name, sep, rest = text.partition(':')
  if sep and name.isidentifier() and name in flags.FLAGS:
    text = f'--{name}:{rest}'
  return f'error: {text}'


def run_main(main: Callable[[Sequence[str]], Optional[int]]) -> None:
  """Runs an absl ``main(argv)``; bad input exits 1 with one error line.

  Args:
    main: the tool's ``main(argv)``; it raises ``ValueError`` (or
      ``OSError``/``tf.errors.OpError``) on bad input and must leave no
      partial output behind (see ``inpaint_tf.fileio``).
  """

  def wrapped(argv: Sequence[str]) -> Optional[int]:
    tf.get_logger().setLevel('ERROR')
    if not flags.FLAGS['verbosity'].present:
      logging.set_verbosity(logging.WARNING)
    try:
      return main(argv)
    except (ValueError, OSError, tf.errors.OpError) as err:
      print(error_line(err), file=sys.stderr, flush=True)
      sys.exit(1)

  app.run(wrapped)


def exactly_one(**flags_by_name) -> str:
  """Returns the name of the only non-empty flag; ValueError otherwise."""
  given = [name for name, value in flags_by_name.items() if value]
  if len(given) != 1:
    names = ' or '.join(f'--{n}' for n in flags_by_name)
    raise ValueError(f'expected exactly one of {names}, got '
                     f'{", ".join("--" + g for g in given) or "none"}')
  return given[0]


def require(**flags_by_name) -> None:
  """Raises ValueError naming every empty flag among ``flags_by_name``."""
  missing = [f'--{n}' for n, v in flags_by_name.items() if v in (None, '')]
  if missing:
    raise ValueError(f'missing required flag(s): {", ".join(missing)}')


def define_completion_flags(pad_mode_help: str) -> None:
  """Defines --pad_mode, --hd_strategy, --hd_crop_margin, --hd_resize_limit.

  Their defaults are ``completion.CompletionOptions``'s; values are checked
  by ``completion_options`` (one ``error: --flag: ...`` line).
  """
  from inpaint_tf import completion  # pylint: disable=g-import-not-at-top
  default = completion.CompletionOptions()
  flags.DEFINE_string('pad_mode', None,
                      f'{"|".join(completion.PAD_MODES)}: {pad_mode_help} '
                      f'(default {default.pad_mode}).')
  flags.DEFINE_string(
      'hd_strategy', None,
      'original: the whole image at full resolution; crop: each hole region '
      'in its box plus --hd_crop_margin, scaled down to --hd_resize_limit '
      'when larger; resize: the whole image scaled down to '
      f'--hd_resize_limit (default {default.hd_strategy}; a SavedModel: '
      'the strategy chosen at export).')
  flags.DEFINE_integer('hd_crop_margin', None,
                       'Context pixels around each hole region with '
                       f'--hd_strategy=crop (default '
                       f'{default.hd_crop_margin}).')
  flags.DEFINE_integer('hd_resize_limit', None,
                       'Longest side, in pixels, that the network sees with '
                       '--hd_strategy=crop or resize (default '
                       f'{default.hd_resize_limit}).')


def completion_options(base=None):
  """``CompletionOptions`` from the flags given, over ``base``.

  Args:
    base: the options that flags not given keep (default: the library's).

  Returns:
    A ``completion.CompletionOptions``; ValueError names the bad flag.
  """
  import dataclasses  # pylint: disable=g-import-not-at-top
  from inpaint_tf import completion  # pylint: disable=g-import-not-at-top
  base = base or completion.CompletionOptions()
  given = {name: flags.FLAGS[name].value for name in (
      'pad_mode', 'hd_strategy', 'hd_crop_margin', 'hd_resize_limit')
           if flags.FLAGS[name].value is not None}
  return dataclasses.replace(base, **given)
