"""GradNorm (Chen et al.): balance the weighted terms' gradient norms."""

from __future__ import annotations

from typing import Optional, Sequence

import tensorflow as tf

from inpaint_tf.config import AWAConfig
from inpaint_tf.keras_api import keras
from inpaint_tf.reweighting import base
from inpaint_tf.reweighting.tunable import TunableWeights


class GradNormReweighter(base.PhiOptimizerMixin, base.Reweighter):
  """GradNorm: balance the weighted terms' gradient norms (see module doc)."""

  needs_term_gradients = True

  def __init__(self, tunable: TunableWeights, generator: keras.Model,
               variables: Sequence[tf.Variable],
               config: AWAConfig = AWAConfig(), name: Optional[str] = None):
    super().__init__(tunable, generator, variables, config, name=name)
    self.alpha = float(config.gradnorm_alpha)
    self.initial_terms = tf.Variable(tf.zeros([self.num_terms]),
                                     trainable=False, name='initial_terms')
    self.initialized = tf.Variable(False, trainable=False, name='initialized')
    self._make_optimizer(config)

  def _adapt(self, forward: base.ForwardPass):
    g_main, g_terms = base.per_term_gradients(
        forward.tape, forward.main, forward.terms, self.selected_variables())
    values = base.sum_over_replicas(tf.stop_gradient(
        tf.stack([tf.cast(t, tf.float32) for t in forward.terms])))
    initial = tf.where(self.initialized, self.initial_terms, values)
    self.initial_terms.assign(initial)
    self.initialized.assign(True)
    ratios = values / tf.maximum(initial, base.EPS)
    rates = ratios / tf.maximum(tf.reduce_mean(ratios), base.EPS)
    norms = tf.stack([base.norm(g) for g in g_terms])
    with tf.GradientTape() as phi_tape:
      w = self.tunable()
      weighted = w * norms
      mean_norm = tf.stop_gradient(tf.reduce_mean(
          tf.concat([[base.norm(g_main)], weighted], axis=0)))
      target = mean_norm * rates ** self.alpha
      gradnorm_loss = tf.reduce_sum(tf.abs(weighted - target))
    grad = phi_tape.gradient(gradnorm_loss, self.tunable.phi)
    self._apply_phi_gradient(grad)
    out = {'gradnorm_loss': gradnorm_loss}
    out.update({f'dphi_{name}': grad[j]
                for j, name in enumerate(self.tunable.names)})
    return out
