"""AWA on one device vs. MirroredStrategy on two logical CPUs.

Run as a subprocess by tests/test_awa.py (logical devices must be set up
before TensorFlow runs any op). Trains a tiny generator for two AWA steps on
the same global batches both ways and prints, as JSON, the largest relative
difference of the logged phi gradients and the largest absolute difference
of the generator's variables.
"""

import json
import os
import sys

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '3')

# pylint: disable=g-import-not-at-top,wrong-import-position
import numpy as np
import tensorflow as tf

_CPU = tf.config.list_physical_devices('CPU')[0]
tf.config.set_logical_device_configuration(
    _CPU, [tf.config.LogicalDeviceConfiguration()] * 2)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
# pylint: disable=g-bad-import-order
from test_awa import main_loss, make_batch, make_tiny

from inpaint_tf import awa
from inpaint_tf import perceptual
from inpaint_tf.config import AWAConfig

BATCH = 4


def run(strategy, vgg_weights):
  with strategy.scope():
    gen = make_tiny(0)
    vgg = perceptual.VGGFeatures(weights=None)
    vgg.set_weights(vgg_weights)
    aux = perceptual.TunableAuxiliaryLoss(vgg=vgg)
    reweighter = awa.make_reweighter('awa', aux.tunable, gen,
                                     AWAConfig(guidance='mae'),
                                     lookahead_lr=1e-3)
    optimizer = tf.keras.optimizers.SGD(1e-3)

  def loss_fn(batch):
    images, masks = batch
    pred = gen((images * (1.0 - masks), masks), training=True)
    return main_loss(pred, images, masks), aux.terms(pred, images,
                                                     masks), pred

  def replica_step(batch, guidance_batch):
    result = reweighter.step(loss_fn, batch, guidance_batch)
    optimizer.apply_gradients(zip(result.gradients,
                                  gen.trainable_variables))
    return result.scalars

  @tf.function
  def step(batch, guidance_batch):
    out = strategy.run(replica_step, args=(batch, guidance_batch))
    return {k: strategy.reduce('MEAN', v, axis=None) for k, v in out.items()}

  replicas = strategy.num_replicas_in_sync

  def shard(batch):
    def value_fn(ctx):
      i, n = ctx.replica_id_in_sync_group, BATCH // replicas
      return tuple(x[i * n:(i + 1) * n] for x in batch)
    return strategy.experimental_distribute_values_from_function(value_fn)

  for seed in range(2):
    scalars = step(shard(make_batch(seed, BATCH)),
                   shard(make_batch(10 + seed, BATCH)))
  return ({k: float(v) for k, v in scalars.items()},
          [v.numpy() for v in gen.trainable_variables])


def main():
  weights = perceptual.VGGFeatures(weights=None).get_weights()
  one, vars_one = run(tf.distribute.get_strategy(), weights)
  two, vars_two = run(tf.distribute.MirroredStrategy(['/cpu:0', '/cpu:1']),
                      weights)
  scale = max(abs(v) for k, v in one.items() if k.startswith('dphi_'))
  print(json.dumps({
      'scalars': max(abs(one[k] - two[k]) / scale
                     for k in one if k.startswith('dphi_')),
      'guidance': abs(one['guidance'] - two['guidance']),
      'variables': max(float(np.max(np.abs(a - b)))
                       for a, b in zip(vars_one, vars_two)),
      'phi_scale': scale,
  }))


if __name__ == '__main__':
  main()
