"""Runs the trainer under op determinism and reports weight differences.

Run as a script (``python tests/training_determinism_main.py IMAGE_DIR
WORK_DIR [fast]``) by ``tests/test_training_distributed.py``: the two
logical CPU devices that MirroredStrategy needs must be configured before
TensorFlow runs any op, and op determinism is process-wide, so neither can
happen in the pytest process. Prints one JSON object:

* ``mirrored_max_diff``: largest |difference| between the generator and
  critic weights after two steps on two replicas and on one device (same
  global batch, seed and data);
* ``mirrored_loss_diff``: largest |difference| of the reported losses;
* ``moved``: largest change of a weight on one device (the steps did move
  them);
* ``awa_max_diff``, ``awa_scalar_rel_diff``: the same comparison of one
  step with TPL/TSL reweighted by AWA (weights and phi; logged values).

With ``fast``, one step of S-Net instead of two of GEPE-Net, and no AWA
(the two-replica run that every stack's CI runs).
"""

import json
import os
import sys

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

# pylint: disable=g-import-not-at-top,wrong-import-position
import numpy as np
import tensorflow as tf

_CPU = tf.config.list_physical_devices('CPU')[0]
tf.config.set_logical_device_configuration(
    _CPU, [tf.config.LogicalDeviceConfiguration()] * 2)

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from inpaint_tf import data as data_lib
from inpaint_tf import training
from inpaint_tf.keras_api import keras
import training_testutil as util

BATCH = 4
SEED = 3


def make_trainer(log_dir, dataset_fn, strategy, variant):
  # Same initial weights for every trainer.
  keras.utils.set_random_seed(SEED)
  # A larger step than the paper's makes differences easier to see.
  return training.Trainer(
      log_dir, dataset_fn,
      util.tiny_config(variant=variant, batch_size=BATCH, seed=SEED,
                       learning_rate=1e-3, n_critic=1, pretrain_steps=0),
      strategy=strategy, progress_stream=False)


def model_weights(trainer):
  task = trainer.task
  return [v.numpy() for v in task.generator.weights +
          task.local_critic.weights + task.global_critic.weights]


def max_diff(a, b):
  return max(float(np.max(np.abs(np.asarray(x, np.float64) -
                                 np.asarray(y, np.float64))))
             if np.size(x) else 0.0 for x, y in zip(a, b))


def main(image_dir, work_dir, fast=False):
  training.configure_determinism(SEED, deterministic=True)
  dataset_fn = data_lib.make_dataset_fn(
      util.tiny_config(data=image_dir, batch_size=BATCH, seed=SEED))
  variant, steps = ('snet', 1) if fast else ('gepenet', 2)

  # One device.
  single = make_trainer(os.path.join(work_dir, 'single'), dataset_fn,
                        tf.distribute.get_strategy(), variant)
  initial_weights = model_weights(single)
  single_scalars = single.train(steps)
  single_weights = model_weights(single)

  # The same steps on two replicas.
  # One strategy object for the process (like a training run).
  two_replicas = tf.distribute.MirroredStrategy(['/cpu:0', '/cpu:1'])
  mirrored = make_trainer(os.path.join(work_dir, 'mirrored'), dataset_fn,
                          two_replicas, variant)
  assert mirrored.strategy.num_replicas_in_sync == 2
  mirrored_scalars = mirrored.train(steps)
  keys = [k for k in single_scalars if not k.startswith('perf/')]
  result = {
      'replicas': mirrored.strategy.num_replicas_in_sync,
      'moved': max_diff(initial_weights, single_weights),
      'mirrored_max_diff': max_diff(single_weights, model_weights(mirrored)),
      'mirrored_loss_diff': max(abs(single_scalars[k] - mirrored_scalars[k])
                                for k in keys),
  }
  if fast:
    print(json.dumps(result))
    return

  # AWA (MAE guidance, random VGG): one step on one device and on two
  # replicas; the reweighter sums its statistics over replicas.
  awa_scalars, awa_weights = [], []
  for name, strategy in (('awa_single', tf.distribute.get_strategy()),
                         ('awa_mirrored', two_replicas)):
    keras.utils.set_random_seed(SEED)
    trainer = training.Trainer(
        os.path.join(work_dir, name), dataset_fn,
        util.tiny_config(variant='snet', batch_size=BATCH, seed=SEED,
                         pretrain_steps=1, aux_losses='tpl_tsl',
                         reweight='awa', vgg_weights=None, guidance='mae'),
        strategy=strategy, progress_stream=False)
    awa_scalars.append(trainer.train(1))
    awa_weights.append(model_weights(trainer) +
                       [trainer.task.auxiliary.tunable.phi.numpy()])
  awa_keys = [k for k in awa_scalars[0] if not k.startswith('perf/')]

  result.update({
      'awa_max_diff': max_diff(*awa_weights),
      'awa_scalar_rel_diff': max(
          abs(awa_scalars[0][k] - awa_scalars[1][k]) /
          max(1.0, abs(awa_scalars[0][k])) for k in awa_keys),
  })
  print(json.dumps(result))


if __name__ == '__main__':
  main(sys.argv[1], sys.argv[2], fast=sys.argv[3:] == ['fast'])
