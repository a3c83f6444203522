"""The reweighters by name: ``make_reweighter``."""

from __future__ import annotations

from typing import List, Optional

import tensorflow as tf

from inpaint_tf import lpips as lpips_lib
from inpaint_tf.config import AWAConfig
from inpaint_tf.config import REWEIGHTERS
from inpaint_tf.keras_api import keras
from inpaint_tf.reweighting.adaloss import AdaLossReweighter
from inpaint_tf.reweighting.awa import AWAReweighter
from inpaint_tf.reweighting.base import FixedReweighter
from inpaint_tf.reweighting.base import Reweighter
from inpaint_tf.reweighting.gradnorm import GradNormReweighter
from inpaint_tf.reweighting.gradsim import GradSimReweighter
from inpaint_tf.reweighting.tunable import TunableWeights


def selected_variables(generator: keras.Model,
                       all_parameters: bool = False) -> List[tf.Variable]:
  """The generator variables a reweighter differentiates over.

  Args:
    generator: a built generator.
    all_parameters: all its trainable variables instead of those of its
      ``output_layer`` (the authors' choice).

  Raises:
    ValueError: the generator has no built ``output_layer``.
  """
  if all_parameters:
    return list(generator.trainable_variables)
  layer = getattr(generator, 'output_layer', None)
  if layer is None or not layer.trainable_variables:
    raise ValueError('generator: expected an `output_layer` attribute with '
                     'trainable variables (built generator) for output-layer '
                     'mode; build the generator first or set '
                     'awa_all_parameters=True')
  return list(layer.trainable_variables)


_CLASSES = {
    'fixed': FixedReweighter,
    'awa': AWAReweighter,
    'adaloss': AdaLossReweighter,
    'gradnorm': GradNormReweighter,
    'gradsim': GradSimReweighter,
}
assert set(_CLASSES) == set(REWEIGHTERS)


def make_reweighter(name: str, tunable: TunableWeights,
                    generator: keras.Model,
                    config: AWAConfig = AWAConfig(), *,
                    lpips: Optional[lpips_lib.LPIPS] = None) -> Reweighter:
  """Builds the reweighter ``name`` (one of ``config.REWEIGHTERS``).

  Create it under the strategy's scope when training with one.

  Args:
    name: 'fixed', 'awa', 'adaloss', 'gradnorm' or 'gradsim'.
    tunable: the weights (``TunableAuxiliaryLoss.tunable``).
    generator: the (built) generator.
    config: ``AWAConfig``.
    lpips: LPIPS network for AWA's LPIPS guidance (default: built from
      ``config.lpips_weights``).

  Returns:
    A ``base.Reweighter``.
  """
  if name not in _CLASSES:
    raise ValueError(f'reweighter: expected one of {REWEIGHTERS}, got {name!r}')
  variables = selected_variables(generator, config.awa_all_parameters)
  if name != 'awa':
    return _CLASSES[name](tunable, generator, variables, config)
  if config.guidance == 'lpips' and lpips is None:
    lpips = lpips_lib.LPIPS(weights=config.lpips_weights)
  return AWAReweighter(tunable, generator, variables, config, lpips=lpips)
