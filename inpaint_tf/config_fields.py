"""How a setting of ``config.ExperimentConfig`` is declared and checked.

Every field is made by ``field``: its default, the help text and choices of
the command-line flag of the same name (``config_flags``), and its
constraints. Fields marked ``scaled`` are sizes in pixels at the papers'
256x256 resolution (``PAPER_IMAGE_SIZE``): unless set explicitly they
follow ``image_size`` (``scaled_size``, ``ExperimentConfig.scaled``).
Fields marked ``resumable`` may change when a run resumes (the schedule,
cadence, paths); every other field describes the model, its losses or its
data and must stay (``run_dir.resume_conflicts``). Sections derive from
``Section``, which checks the choices and ranges when one is made.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Optional, Tuple

# The resolution of the papers; ``scaled`` sizes are given at it.
PAPER_IMAGE_SIZE = 256


def field(default: Any, help: str, *,
          choices: Optional[Tuple[str, ...]] = None, scaled: bool = False,
          resumable: bool = False, minimum: Optional[float] = None,
          maximum: Optional[float] = None) -> Any:
  """A config field with its flag's help text and constraints.

  Args:
    default: the paper's (or original code's) value.
    help: the flag's help text.
    choices: allowed values of a string field.
    scaled: a size in pixels at ``PAPER_IMAGE_SIZE`` that follows
      ``image_size`` unless set.
    resumable: may differ when a run resumes.
    minimum: smallest allowed value of a number.
    maximum: largest allowed value of a number.
  """
  # pylint: disable=redefined-builtin
  return dataclasses.field(default=default, metadata=dict(
      help=help, choices=choices, scaled=scaled, resumable=resumable,
      minimum=minimum, maximum=maximum))


class Section:
  """Checks the choices and ranges of its fields when it is made."""

  def __post_init__(self):
    for f in dataclasses.fields(self):
      value = getattr(self, f.name)
      choices, minimum = f.metadata['choices'], f.metadata['minimum']
      if choices is not None and value not in choices:
        raise ValueError(f'{f.name}: expected one of {choices}, got '
                         f'{value!r}')
      if minimum is not None and value is not None and not value >= minimum:
        raise ValueError(f'{f.name}: expected >= {minimum}, got {value!r}')
      maximum = f.metadata['maximum']
      if maximum is not None and value is not None and not value <= maximum:
        raise ValueError(f'{f.name}: expected <= {maximum}, got {value!r}')


def scaled_size(size: int, image_size: int) -> int:
  """``size`` pixels at ``PAPER_IMAGE_SIZE``, scaled to ``image_size``."""
  return max(0, int(round(size * image_size / PAPER_IMAGE_SIZE)))
