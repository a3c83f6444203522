"""GradSim (Du et al.): drop a term whose gradient opposes the main loss."""

from __future__ import annotations

from typing import Optional, Sequence

import tensorflow as tf

from inpaint_tf.config import AWAConfig
from inpaint_tf.keras_api import keras
from inpaint_tf.reweighting import base
from inpaint_tf.reweighting.tunable import TunableWeights


class GradSimReweighter(base.Reweighter):
  """GradSim: drop a term whose gradient opposes the main loss's."""

  needs_term_gradients = True

  def __init__(self, tunable: TunableWeights, generator: keras.Model,
               variables: Sequence[tf.Variable],
               config: AWAConfig = AWAConfig(), name: Optional[str] = None):
    super().__init__(tunable, generator, variables, config, name=name)
    self.gates = tf.Variable(tf.ones([self.num_terms]), trainable=False,
                             name='gates')

  def weights(self) -> tf.Tensor:
    return self.tunable() * self.gates

  def _adapt(self, forward: base.ForwardPass):
    g_main, g_terms = base.per_term_gradients(
        forward.tape, forward.main, forward.terms, self.selected_variables())
    n_main = base.norm(g_main)
    cosines = tf.stack([
        base.dot(g_main, g) / tf.maximum(n_main * base.norm(g), base.EPS)
        for g in g_terms])
    self.gates.assign(tf.cast(cosines >= 0.0, tf.float32))
    return {f'cos_{name}': cosines[j]
            for j, name in enumerate(self.tunable.names)}
