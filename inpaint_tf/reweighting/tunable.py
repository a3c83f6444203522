"""Loss weights a reweighter adapts: ``w = base * scale * sigmoid(phi)``."""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np
import tensorflow as tf

from inpaint_tf import perceptual
from inpaint_tf import vgg
from inpaint_tf.config import AWAConfig


class TunableWeights(tf.Module):
  """Loss weights ``w = base * scale * sigmoid(phi)`` (TPL/TSL, Eqs. 4-5).

  ``phi`` starts at ``-log(scale - 1)``, where ``w = base``; ``w`` stays in
  ``(0, base * scale)``. Reweighters update ``phi``.

  Args:
    base: [N] base weights (the standard losses' weights).
    scale: [N] factors > 1; the largest weight is ``base * scale``.
    names: N term names (default ``perceptual.TERM_NAMES`` when N == 6).
  """

  def __init__(self, base: Sequence[float], scale: Sequence[float],
               names: Optional[Sequence[str]] = None,
               name: Optional[str] = None):
    super().__init__(name=name)
    base = np.asarray(base, np.float64).reshape(-1)
    scale = np.asarray(scale, np.float64).reshape(-1)
    if base.shape != scale.shape or base.size == 0:
      raise ValueError(f'scale: expected {base.size} values like base, got '
                       f'{scale.size}')
    if np.any(scale <= 1.0):
      raise ValueError(f'scale: expected values > 1, got {scale.tolist()}')
    if names is None:
      default = perceptual.TERM_NAMES
      names = default if base.size == len(default) else tuple(
          f'term_{i + 1}' for i in range(base.size))
    if len(names) != base.size:
      raise ValueError(f'names: expected {base.size} names, got {len(names)}')
    self.names = tuple(names)
    self.base = tf.constant(base, tf.float32)
    self.scale = tf.constant(scale, tf.float32)
    self.phi = tf.Variable((-np.log(scale - 1.0)).astype(np.float32),
                           trainable=True, name='phi')

  @property
  def num_terms(self) -> int:
    return int(self.base.shape[0])

  def __call__(self) -> tf.Tensor:
    """[N] float32 current weights."""
    return self.base * self.scale * tf.sigmoid(self.phi)


def tpl_tsl_weights(config: AWAConfig = AWAConfig()) -> TunableWeights:
  """The six TPL/TSL weights with the authors' bases and scales."""
  n = len(vgg.FEATURE_LAYERS)
  return TunableWeights(
      base=[config.perceptual_base] * n + [config.style_base] * n,
      scale=[config.perceptual_scale] * n + [config.style_scale] * n,
      names=perceptual.TERM_NAMES, name='tpl_tsl')
