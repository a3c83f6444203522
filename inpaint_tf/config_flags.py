"""absl flags generated from ``config.ExperimentConfig``: one per field.

A flag has its field's name, type, help text and choices, so a setting
cannot exist without a flag or under another name. The ``scaled`` sizes
default to None, which means "``train.image_size`` times the paper's value
over 256" (``ExperimentConfig.scaled``); the help says the paper's value.

  config_flags.define_flags()
  ...
  config = config_flags.experiment_from_flags()
"""

from __future__ import annotations

import typing
from typing import Any, Optional, Sequence

from absl import flags

from inpaint_tf import config as config_lib
from inpaint_tf import config_fields


def _base_type(annotation: Any) -> Any:
  """``Optional[X]`` -> ``X``; other annotations unchanged."""
  args = [a for a in typing.get_args(annotation) if a is not type(None)]
  if typing.get_origin(annotation) is typing.Union and len(args) == 1:
    return args[0]
  return annotation


def help_text(name: str) -> str:
  """The flag help of the field ``name`` (with the scaling rule if scaled)."""
  field = dict((f.name, f) for _, f in config_lib.fields())[name]
  text = field.metadata['help']
  if field.metadata['scaled']:
    size = config_fields.PAPER_IMAGE_SIZE
    text += (f' Default: {field.default} at {size}x{size}, scaled with '
             '--image_size.')
  return text


def define_flags(flag_values: flags.FlagValues = flags.FLAGS) -> None:
  """Defines one flag per ``ExperimentConfig`` field in ``flag_values``."""
  config_lib.field_sections()  # Raises if two fields share a name.
  for section, field in config_lib.fields():
    kind = _base_type(config_lib.field_type(section, field.name))
    default = None if field.metadata['scaled'] else field.default
    name, text = field.name, help_text(field.name)
    if field.metadata['choices'] is not None:
      flags.DEFINE_enum(name, default, list(field.metadata['choices']), text,
                        flag_values=flag_values)
    elif kind is bool:
      flags.DEFINE_bool(name, default, text, flag_values=flag_values)
    elif kind is int:
      flags.DEFINE_integer(name, default, text, flag_values=flag_values)
    elif kind is float:
      flags.DEFINE_float(name, default, text, flag_values=flag_values)
    elif kind is str:
      flags.DEFINE_string(name, default, text, flag_values=flag_values)
    elif typing.get_origin(kind) is tuple:
      flags.DEFINE_list(name, [str(v) for v in default], text,
                        flag_values=flag_values)
    else:
      raise TypeError(f'{name}: no flag type for {kind!r}')


def _int_tuple(name: str, values: Sequence[str]) -> tuple:
  try:
    return tuple(int(v) for v in values)
  except ValueError:
    raise ValueError(f'{name}: expected comma-separated integers, got '
                     f'{",".join(values)!r}') from None


def experiment_from_flags(
    flag_values: flags.FlagValues = flags.FLAGS,
    base: Optional[config_lib.ExperimentConfig] = None
) -> config_lib.ExperimentConfig:
  """The ``ExperimentConfig`` the (parsed) flags describe.

  Args:
    flag_values: parsed flags defined by ``define_flags``.
    base: the config whose values unset ``scaled`` sizes scale (default:
      the papers').

  Raises:
    ValueError: a value outside its field's choices or range, or a list
      that is not integers; the message starts with the field's name.
  """
  base = base or config_lib.ExperimentConfig()
  values, explicit = {}, []
  for section, field in config_lib.fields():
    value = flag_values[field.name].value
    kind = _base_type(config_lib.field_type(section, field.name))
    if field.metadata['scaled']:
      if value is None:
        continue
      explicit.append(field.name)
    if typing.get_origin(kind) is tuple:
      value = _int_tuple(field.name, value)
    values[field.name] = value
  return base.replace(**values).scaled(explicit=tuple(explicit))
