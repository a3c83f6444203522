"""AdaLoss (Hu et al.): weights inversely proportional to running means."""

from __future__ import annotations

from typing import Optional, Sequence

import tensorflow as tf

from inpaint_tf.config import AWAConfig
from inpaint_tf.keras_api import keras
from inpaint_tf.reweighting import base
from inpaint_tf.reweighting.tunable import TunableWeights


class AdaLossReweighter(base.Reweighter):
  """AdaLoss: weights inversely proportional to the terms' running means."""

  def __init__(self, tunable: TunableWeights, generator: keras.Model,
               variables: Sequence[tf.Variable],
               config: AWAConfig = AWAConfig(), name: Optional[str] = None):
    super().__init__(tunable, generator, variables, config, name=name)
    n = self.num_terms
    self.momentum = float(config.adaloss_momentum)
    self.count = tf.Variable(0.0, trainable=False, name='count')
    self.running_mean = tf.Variable(tf.zeros([n]), trainable=False,
                                    name='running_mean')
    self.constant = tf.Variable(0.0, trainable=False, name='constant')

  def weights(self) -> tf.Tensor:
    corrected = self.running_mean / (1.0 - self.momentum ** self.count)
    adaptive = self.constant / tf.maximum(corrected, base.EPS)
    return tf.where(self.count > 0, adaptive, self.tunable())

  def _adapt(self, forward: base.ForwardPass):
    values = base.sum_over_replicas(tf.stop_gradient(
        tf.stack([tf.cast(t, tf.float32) for t in forward.terms])))
    first = tf.equal(self.count, 0.0)
    self.constant.assign(tf.where(
        first, tf.reduce_mean(self.tunable() * values), self.constant))
    self.running_mean.assign(self.momentum * self.running_mean +
                             (1.0 - self.momentum) * values)
    self.count.assign_add(1.0)
    return {}
