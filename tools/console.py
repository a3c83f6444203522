"""Console scripts of the installed package: ``inpaint-tf-<tool>``.

``pyproject.toml`` points ``inpaint-tf-train`` at ``console:train`` and so
on; each runs the tool's ``main`` exactly as ``python -m tools.<tool>``
does in a checkout (same flags, ``--flagfile`` included, and the same
``--help``). ``tools.demo`` is not among them: it runs the checkout's
``flags/demo.cfg``.
"""

from . import _cli  # pylint: disable=g-bad-import-order

import importlib
import sys
from typing import Callable

from absl import flags

TOOLS = ('train', 'evaluate', 'inpaint', 'export', 'benchmark', 'plot_eval',
         'plot_weights', 'convert_lpips', 'convert_vgg', 'compare_vgg')


def __getattr__(name: str) -> Callable[[], None]:
  if name not in TOOLS:
    raise AttributeError(f'{__name__} has no tool {name!r}')

  def run() -> None:
    tool = importlib.import_module(f'{__package__}.{name}')
    # absl's --help shows the __main__ module's docstring and the flags
    # registered under sys.argv[0]; here __main__ is pip's wrapper script.
    sys.modules['__main__'].__doc__ = tool.__doc__
    for flag in flags.FLAGS.get_key_flags_for_module(tool.__name__):
      flags.FLAGS.register_key_flag_for_module(sys.argv[0], flag)
    _cli.run_main(tool.main)

  return run
