"""Tests of inpaint_tf.training and tools/train.py.

The MirroredStrategy and resume-equality tests, which need a fresh process,
are in test_training_distributed.py.
"""

import concurrent.futures
import csv
import glob
import io
import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import traceback
from unittest import mock

import numpy as np
import pytest
import tensorflow as tf
from tensorflow.python.framework import ops as tf_ops
from tensorboard.backend.event_processing import plugin_event_accumulator

from inpaint_tf import config as config_lib
from inpaint_tf import data as data_lib
from inpaint_tf import demo_images
from inpaint_tf import losses
from inpaint_tf import run_dir
from inpaint_tf import training
from inpaint_tf.keras_api import keras
import training_testutil as util

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _events(log_dir):
  """{tag: [(step, value)]} of the scalar and image summaries in tb/."""
  out = {}
  for path in sorted(glob.glob(os.path.join(log_dir, 'tb', 'events.*'))):
    for event in tf.compat.v1.train.summary_iterator(path):
      for value in event.summary.value:
        if value.metadata.plugin_data.plugin_name == 'images':
          item = 'image'
        else:
          item = float(tf.make_ndarray(value.tensor))
        out.setdefault(value.tag, []).append((event.step, item))
  return out


def _variables(model):
  return [v.numpy() for v in model.weights]


class DatasetFnTest(util.TrainingTestCase):

  def test_start_continues_the_stream(self):
    batches = list(self.dataset_fn(0).take(4))
    later = list(self.dataset_fn(2).take(2))
    for a, b in zip(batches[2:], later):
      self.assertAllEqual(a['image'], b['image'])
      self.assertAllEqual(a['mask'], b['mask'])
    first = batches[0]
    self.assertEqual(first['image'].shape, (2, 32, 32, 3))
    self.assertEqual(first['mask'].shape, (2, 32, 32, 1))
    # Square holes of 12..16 pixels a side.
    sides = np.sqrt(np.sum(first['mask'].numpy(), axis=(1, 2, 3)))
    self.assertTrue(np.all((sides >= 12) & (sides <= 16)), sides)

  def test_bad_data(self):
    with self.assertRaisesRegex(ValueError, r'^data: .*not found'):
      data_lib.make_dataset_fn(util.tiny_config(
          data=os.path.join(self.root, 'missing')))
    empty = os.path.join(self.root, 'empty')
    os.makedirs(empty, exist_ok=True)
    with self.assertRaisesRegex(ValueError, r'^data: '):
      data_lib.make_dataset_fn(util.tiny_config(data=empty))
    with self.assertRaisesRegex(ValueError, r'^mask_dir: '):
      data_lib.make_dataset_fn(util.tiny_config(data=self.images,
                                                mask_type='folder'))
    with self.assertRaisesRegex(ValueError, r'^mask_dir: '):
      data_lib.make_dataset_fn(util.tiny_config(data=self.images,
                                                mask_dir=self.images))

  def test_skimage_demo_crops(self):
    dataset_fn = data_lib.make_dataset_fn(util.tiny_config(
        data=demo_images.SKIMAGE_DATA, batch_size=3, seed=1))
    batch = next(iter(dataset_fn(0)))
    self.assertEqual(batch['image'].shape, (3, 32, 32, 3))
    self.assertBetween(float(tf.reduce_min(batch['image'])), -1.0, 1.0)


class TrainLoopTest(util.TrainingTestCase):
  """A GEPE-Net run of three steps: one pretraining, two adversarial."""

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    cls.log_dir = os.path.join(cls.root, 'run')
    cls.config = util.tiny_config(n_critic=2, pretrain_steps=1, image_every=2,
                                  checkpoint_every=2)
    cls.progress = io.StringIO()
    keras.utils.set_random_seed(0)
    cls.trainer = training.Trainer(cls.log_dir, cls.dataset_fn, cls.config,
                                   progress_stream=cls.progress)
    cls.last = cls.trainer.train(3)
    cls.events = _events(cls.log_dir)

  def test_counters_and_checkpoints(self):
    # 1 batch for the pretraining step, n_critic + 1 for each other step.
    self.assertEqual(int(self.trainer.step.numpy()), 3)
    self.assertEqual(int(self.trainer.batches.numpy()), 1 + 2 * 3)
    self.assertEqual(
        sorted(os.path.basename(p) for p in
               glob.glob(os.path.join(self.log_dir, 'ckpt', '*.index'))),
        ['ckpt-2.index', 'ckpt-3.index'])
    self.assertTrue(os.path.isfile(os.path.join(self.log_dir,
                                                'generator.json')))
    self.assertEqual(run_dir.load_config(self.log_dir), self.config)

  def test_generator_total_is_eq10(self):
    last = self.last
    loss = config_lib.LossConfig()
    expected = (loss.gamma_svw * last['svw'] + loss.gamma_igl * last['igl'] +
                loss.gamma_adv * (last['adv_local'] + last['adv_global']))
    self.assertAllClose(last['g_total'], expected, rtol=1e-5)
    self.assertAllClose(last['igl/weight'], loss.gamma_igl)
    expected_d = (last['d_local'] + last['d_global'] + loss.theta_gp *
                  (last['gp_local'] + last['gp_global']))
    self.assertAllClose(last['d_total'], expected_d, rtol=1e-5)

  def test_tensorboard(self):
    events = self.events
    for term in ('svw', 'igl', 'adv_local', 'adv_global', 'd_local',
                 'd_global', 'gp_local', 'gp_global', 'g_total', 'd_total'):
      self.assertIn(f'loss/{term}', events)
    # Raw and weighted values of every term; pretraining has no critics.
    self.assertEqual([s for s, _ in events['loss/svw']], [1, 2, 3])
    self.assertEqual([s for s, _ in events['loss/adv_local']], [2, 3])
    step, gp = events['loss/gp_global'][-1]
    self.assertAllClose(dict(events['weighted/gp_global'])[step], 10.0 * gp,
                        rtol=1e-5)
    self.assertAllClose(dict(events['weight/igl'])[3], 0.08)
    self.assertIn('perf/images_per_sec', events)
    self.assertIn('grad/g_grad_norm', events)
    self.assertEqual([s for s, _ in events['masked|output|completed|truth']],
                     [2, 3])

  def test_progress_bar(self):
    text = self.progress.getvalue()
    self.assertIn('3/3', text)
    self.assertIn('img/s', text)
    self.assertIn('ETA', text)
    self.assertIn('svw', text)

  def test_restore_in_new_trainer(self):
    resumed = training.Trainer(self.log_dir, self.dataset_fn, self.config,
                               progress_stream=False)
    self.assertTrue(resumed.restored_from.endswith('ckpt-3'))
    self.assertEqual(resumed.config_changes, [])
    self.assertEqual(int(resumed.step.numpy()), 3)
    self.assertEqual(int(resumed.batches.numpy()), 7)
    for a, b in zip(_variables(self.trainer.task.generator),
                    _variables(resumed.task.generator)):
      self.assertAllEqual(a, b)
    for a, b in zip(self.trainer.steps.g_optimizer.variables,
                    resumed.steps.g_optimizer.variables):
      self.assertAllEqual(a, b)
    self.assertEqual(resumed.train(3), {})  # Nothing left to do.

  def test_resume_with_other_model_or_losses_is_refused(self):
    config_path = os.path.join(self.log_dir, 'config.json')
    with open(config_path) as f:
      saved = f.read()
    for name, value in (('variant', 'snet'), ('gamma_adv', 0.5),
                        ('cnum', 8), ('svw_normalization', 'image')):
      with self.assertRaisesRegex(
          ValueError, rf"^{name}: expected the value of the run in .*"
          rf"\({re.escape(repr(self.config.value(name)))} -> "
          rf"{re.escape(repr(value))}\)"):
        training.Trainer(self.log_dir, self.dataset_fn,
                         self.config.replace(**{name: value}),
                         progress_stream=False)
    with open(config_path) as f:
      self.assertEqual(f.read(), saved)  # Nothing rewritten.


def _nan_after(dataset_fn, first_bad):
  """Wraps a DatasetFn: images become NaN from batch ``first_bad`` on."""

  def wrapped(start):
    # Not converted by AutoGraph (no tensor-dependent Python control flow):
    # its cache of converted functions once handed this closure another
    # function's code in a long test session on TensorFlow 2.21.
    @tf.autograph.experimental.do_not_convert
    def poison(index, batch):
      nan = tf.fill(tf.shape(batch['image']), np.float32(np.nan))
      image = tf.where(index >= first_bad, nan, batch['image'])
      return {'image': image, 'mask': batch['mask']}
    return dataset_fn(start).enumerate(start).map(poison)

  return wrapped


class StepsTest(util.TrainingTestCase):
  """Single updates of an S-Net trainer against independent computations."""

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    cls.log_dir = os.path.join(cls.root, 'steps')
    config = util.tiny_config(variant='snet', pretrain_steps=100,
                              checkpoint_every=1)
    keras.utils.set_random_seed(1)
    cls.trainer = training.Trainer(
        cls.log_dir, _nan_after(cls.dataset_fn, first_bad=1), config,
        progress_stream=False)
    cls.batch = next(iter(cls.dataset_fn(0)))

  def test_steps(self):
    trainer, batch = self.trainer, self.batch
    images, masks = batch['image'], batch['mask']
    generator = trainer.task.generator
    loss_config = trainer.config.losses
    opt = trainer.config.optimizer

    # Gradient of Eq. 10 without IGL and critics (S-Net, pretraining),
    # written out with the losses module.
    with tf.GradientTape() as tape:
      pred = generator((images * (1.0 - masks), masks))
      weights = losses.spatial_variant_weights(
          masks, size=loss_config.svw_size, sigma=loss_config.svw_sigma,
          iterations=loss_config.svw_iterations)
      loss = loss_config.gamma_svw * losses.svw_reconstruction_loss(
          images, pred, weights, masks,
          normalization=loss_config.svw_normalization)
    grads = tape.gradient(loss, generator.trainable_variables)
    before = [v.numpy() for v in generator.trainable_variables]
    critics = _variables(trainer.task.local_critic) + _variables(
        trainer.task.global_critic)

    scalars = trainer.generator_step(batch, adversarial=False)
    self.assertAllClose(scalars['svw'], loss / loss_config.gamma_svw)
    self.assertNotIn('adv_local', scalars)
    # Adam's first step (Keras: epsilon added to the uncorrected sqrt(v)):
    # lr * g / (|g| + eps / sqrt(1 - beta_2)).
    eps = trainer.steps.g_optimizer.epsilon / np.sqrt(1.0 - opt.beta_2)
    # The step's gradient comes from another kernel schedule than this
    # tape's (graph vs eager, oneDNN's summation order): elements with |g|
    # near eps turn its rounding into up to ~0.2% of the rate.
    for v, b, g in zip(generator.trainable_variables, before, grads):
      g = g.numpy()
      expected = b - opt.learning_rate * g / (np.abs(g) + eps)
      self.assertAllClose(v.numpy(), expected, atol=opt.learning_rate * 3e-3,
                          rtol=0)
    for a, b in zip(critics, _variables(trainer.task.local_critic) +
                    _variables(trainer.task.global_critic)):
      self.assertAllEqual(a, b)  # Critics untouched by the generator step.

    generator_now = _variables(generator)
    scalars = trainer.critic_step(batch)
    for key in ('d_local', 'd_global', 'gp_local', 'gp_global', 'd_total',
                'd_grad_norm'):
      self.assertTrue(np.isfinite(scalars[key].numpy()), key)
    for a, b in zip(generator_now, _variables(generator)):
      self.assertAllEqual(a, b)  # Generator untouched by the critic step.
    for old, v in zip(critics, trainer.task.local_critic.weights +
                      trainer.task.global_critic.weights):
      # The WGAN loss and the penalty do not depend on the output bias.
      if 'kernel' in v.name:
        self.assertNotAllClose(old, v.numpy(), msg=v.name)

    # Training: batch 0 is fine (checkpointed), batch 1 is NaN.
    trainer.train(1)
    with self.assertRaises(training.NonFiniteLossError) as ctx:
      trainer.train(5)
    self.assertEqual(ctx.exception.term, 'svw')
    self.assertEqual(ctx.exception.step, 2)
    self.assertIn("'svw'", str(ctx.exception))
    self.assertIn('ckpt-1', str(ctx.exception))
    self.assertIn('non-finite loss term', str(ctx.exception))
    self.assertIn("non-finite gradient norm 'g_grad_norm'", str(
        training.NonFiniteLossError('g_grad_norm', math.nan, 3, None)))
    self.assertEqual(
        [os.path.basename(p) for p in
         glob.glob(os.path.join(self.log_dir, 'ckpt', '*.index'))],
        ['ckpt-1.index'])


class ResumeHygieneTest(util.TrainingTestCase):
  """What a killed run leaves behind, cleaned up by the resume."""

  def test_stale_temporaries_and_tensorboard_overlap(self):
    log_dir = os.path.join(self.root, 'hygiene')
    ckpt = os.path.join(log_dir, 'ckpt')
    config = util.tiny_config(variant='snet', pretrain_steps=2,
                              checkpoint_every=2)
    first = training.Trainer(log_dir, self.dataset_fn, config,
                             progress_stream=False)
    first.train(2)
    at_two = os.path.join(self.root, 'ckpt_at_2')
    shutil.copytree(ckpt, at_two)
    first.train(4)  # Steps 3 and 4 are logged, then "lost" with ckpt-4.
    first.logs.writer.flush()
    shutil.rmtree(ckpt)
    shutil.copytree(at_two, ckpt)
    # What a kill during a save leaves.
    os.makedirs(os.path.join(ckpt, 'ckpt-4_temp'))
    with open(os.path.join(ckpt, 'checkpoint.tmp1a2b'), 'w') as f:
      f.write('model_checkpoint_path: "ckpt-4"')

    resumed = training.Trainer(log_dir, self.dataset_fn, config,
                               progress_stream=False)
    self.assertEqual(int(resumed.step.numpy()), 2)
    self.assertCountEqual(os.listdir(ckpt), os.listdir(at_two))
    resumed.train(4)
    resumed.logs.writer.flush()
    tb = plugin_event_accumulator.EventAccumulator(os.path.join(log_dir, 'tb'))
    tb.Reload()
    tags = tb.Tags()['tensors']
    self.assertIn('loss/svw', tags)
    self.assertEqual([e.step for e in tb.Tensors('loss/svw')], [1, 2, 3, 4])
    self.assertEqual([e.step for e in tb.Tensors('loss/adv_local')], [3, 4])
    for tag in tags:  # Each step once, in order.
      steps = [e.step for e in tb.Tensors(tag)]
      self.assertEqual(steps, sorted(set(steps)), msg=tag)


class AuxiliaryLossTest(util.TrainingTestCase):

  def test_awa_weights_logged(self):
    log_dir = os.path.join(self.root, 'awa')
    config = util.tiny_config(variant='snet', pretrain_steps=100,
                              aux_losses='tpl_tsl', reweight='awa',
                              guidance='mae', vgg_weights=None)
    keras.utils.set_random_seed(2)
    trainer = training.Trainer(log_dir, self.dataset_fn, config,
                               progress_stream=False)
    self.assertTrue(trainer.needs_guidance)
    last = trainer.train(2)
    # Batch and guidance batch per step.
    self.assertEqual(int(trainer.batches.numpy()), 4)
    awa = config_lib.AWAConfig()
    total = last['svw'] + sum(last[f'{n}/weight'] * last[n] for n in (
        'perc_1', 'perc_2', 'perc_3', 'style_1', 'style_2', 'style_3'))
    self.assertAllClose(last['g_total'], total, rtol=1e-4)
    with open(os.path.join(log_dir, 'weights.csv')) as f:
      rows = list(csv.reader(f))
    self.assertEqual(rows[0], ['step', 'w_perc_1', 'w_perc_2', 'w_perc_3',
                               'w_style_1', 'w_style_2', 'w_style_3'])
    self.assertEqual([r[0] for r in rows[1:]], ['1', '2'])
    weights = np.array(rows[2][1:], np.float64)
    self.assertAllClose(weights[:3], [awa.perceptual_base] * 3, rtol=0.05)
    self.assertAllClose(weights[3:], [awa.style_base] * 3, rtol=0.05)
    self.assertFalse(np.allclose(weights[:3], awa.perceptual_base, rtol=1e-7))
    self.assertAllClose(weights, [last[f'{n}/weight'] for n in (
        'perc_1', 'perc_2', 'perc_3', 'style_1', 'style_2', 'style_3')])
    self.assertIn('aux_weight/w_style_3', _events(log_dir))
    self.assertIn('reweight/guidance', last)

  def test_weights_log_truncates_rows_after_checkpoint(self):
    path = os.path.join(self.root, 'weights.csv')
    log = training.WeightsLog(path, ['w_a', 'w_b'])
    for step in (1, 2, 3):
      log.append(step, [0.5 * step, 1.0])
    log.truncate_after(2)
    log.append(3, [9.0, 9.0])
    with open(path) as f:
      rows = list(csv.reader(f))
    self.assertEqual(rows, [['step', 'w_a', 'w_b'], ['1', '0.5', '1'],
                            ['2', '1', '1'], ['3', '9', '9']])


class DeviceReadsTest(util.TrainingTestCase):
  """Steps do not wait for the device: values are read per log window."""

  def _count_reads(self, fn):
    """Tensor reads during ``fn()``, but those of TensorBoard's writers
    (they write host values, one per logged step and scalar)."""
    calls = []
    # pylint: disable=protected-access
    tensor_type = tf_ops._EagerTensorBase
    original = tensor_type._numpy

    def counting(tensor):
      if not any('summary' in frame.filename
                 for frame in traceback.extract_stack()):
        calls.append(tensor.shape)
      return original(tensor)

    with mock.patch.object(tensor_type, '_numpy', counting):
      fn()
    return len(calls)

  def test_reads_do_not_grow_with_the_steps(self):
    # S-Net with AWA: critic and generator updates, the reweighter's
    # scalars and weights.csv rows.
    config = util.tiny_config(variant='snet', pretrain_steps=0, n_critic=1,
                              log_every=100, aux_losses='tpl_tsl',
                              reweight='awa', guidance='mae', vgg_weights=None)
    trainer = training.Trainer(os.path.join(self.root, 'reads'),
                               self.dataset_fn, config, progress_stream=False)
    trainer.train(1)  # Traces the steps, makes the stream.
    stream = trainer.iterator()
    trainer.train_step(stream, 1)  # Builds the new stream's dataset.
    self.assertEqual(
        self._count_reads(lambda: trainer.train_step(stream, 2)), 0)
    few = self._count_reads(lambda: trainer.train(5))
    many = self._count_reads(lambda: trainer.train(9))
    self.assertEqual(few, many)
    self.assertEqual(int(trainer.step.numpy()), 9)


class JitCompileTest(util.TrainingTestCase):

  def test_compiled_steps_equal_uncompiled(self):
    results = []
    for jit in (False, True):
      config = util.tiny_config(variant='gepenet', n_critic=1,
                                pretrain_steps=0, jit_compile=jit)
      keras.utils.set_random_seed(0)
      trainer = training.Trainer(os.path.join(self.root, f'jit_{jit}'),
                                 self.dataset_fn, config,
                                 progress_stream=False)
      batch = next(iter(self.dataset_fn(0)))
      critic = trainer.critic_step(batch)
      generator = trainer.generator_step(batch, adversarial=True)
      results.append({k: float(v) for k, v in {**critic, **generator}.items()})
    plain, compiled = results
    self.assertEqual(sorted(plain), sorted(compiled))
    for name, value in plain.items():
      self.assertAllClose(compiled[name], value, rtol=1e-4, atol=1e-6,
                          msg=name)
    self.assertGreater(plain['gp_local'], 0.0)

  def test_what_xla_cannot_compile(self):
    log_dir = os.path.join(self.root, 'jit_refused')
    with self.assertRaisesRegex(
        ValueError, r'^jit_compile: XLA cannot compile the hole-only '
        r'attention of p3 \(1156 positions\), p4 \(1156 positions\) at '
        r'image_size 272: .*'
        '--attention_hole_only=false'):
      training.Trainer(log_dir, self.dataset_fn,
                       util.tiny_config(image_size=272, jit_compile=True),
                       progress_stream=False)
    self.assertFalse(os.path.exists(log_dir))
    with self.assertLogs('absl', 'WARNING') as logs:
      training.Trainer(
          os.path.join(self.root, 'jit_awa'), self.dataset_fn,
          util.tiny_config(variant='snet', jit_compile=True,
                           aux_losses='tpl_tsl', reweight='awa',
                           guidance='mae', vgg_weights=None),
          progress_stream=False)
    self.assertLen(logs.output, 1)
    self.assertIn("generator step of reweighter 'awa' runs without XLA",
                  logs.output[0])


class MixedPrecisionTest(util.TrainingTestCase):

  def test_gepenet_in_float16_with_loss_scaling(self):
    config = util.tiny_config(variant='gepenet', n_critic=1, pretrain_steps=0,
                              mixed_precision=True)
    keras.utils.set_random_seed(0)
    trainer = training.Trainer(os.path.join(self.root, 'mixed'),
                               self.dataset_fn, config, progress_stream=False)
    self.assertEqual(trainer.task.generator.compute_dtype, 'float16')
    self.assertEqual(trainer.task.global_critic.compute_dtype, 'float16')
    self.assertEqual(trainer.task.generator.weights[0].dtype, tf.float32)
    self.assertEqual(keras.mixed_precision.global_policy().name,
                     'float32')  # The global policy is left as it was.
    self.assertIsInstance(trainer.steps.g_optimizer,
                          keras.mixed_precision.LossScaleOptimizer)
    # The float16 generator (attention, ASPC, guidance targets) computes
    # what the float32 one computes, to float16 rounding.
    reference = training.Trainer(
        os.path.join(self.root, 'float32'), self.dataset_fn,
        config.replace(mixed_precision=False), progress_stream=False)
    trainer.task.generator.set_weights(reference.task.generator.get_weights())
    batch = next(iter(self.dataset_fn(0)))
    inputs = (batch['image'] * (1.0 - batch['mask']), batch['mask'])
    half = tf.cast(trainer.task.generator(inputs), tf.float32)
    full = reference.task.generator(inputs)
    self.assertAllClose(half, full, atol=1e-2)
    self.assertGreater(float(tf.reduce_max(tf.abs(full))), 0.1)
    # Updates change the weights unless their gradients overflow; an
    # overflow skips the update and halves the scale (the gradient
    # penalty's inner gradient is taken at the critic optimiser's scale).
    moved = 0
    for step in range(1, 5):
      before = [_variables(trainer.task.generator),
                _variables(trainer.task.local_critic)]
      scales = [float(o.loss_scale) for o in (trainer.steps.g_optimizer,
                                              trainer.steps.d_optimizer)]
      last = trainer.train(step)
      for key in ('svw', 'igl', 'adv_local', 'adv_global', 'gp_local',
                  'gp_global', 'd_total'):
        self.assertTrue(np.isfinite(last[key]), f'{key} at step {step}')
      for model, optimizer, scale, old in zip(
          (trainer.task.generator, trainer.task.local_critic),
          (trainer.steps.g_optimizer, trainer.steps.d_optimizer), scales,
          before):
        new_scale = float(optimizer.loss_scale)
        changed = any(not np.array_equal(a, b)
                      for a, b in zip(old, _variables(model)))
        if new_scale < scale:
          self.assertEqual(new_scale, scale / 2)
          self.assertFalse(changed, f'{model.name} at step {step}')
          moved += 1
        else:
          self.assertTrue(changed, f'{model.name} at step {step}')
    self.assertGreater(moved, 0)

  def test_reweighters_are_refused(self):
    with self.assertRaisesRegex(ValueError, '^mixed_precision: not supported '
                                "with aux_losses 'tpl_tsl'"):
      training.Trainer(os.path.join(self.root, 'mixed_awa'), self.dataset_fn,
                       util.tiny_config(mixed_precision=True,
                                        aux_losses='tpl_tsl', reweight='awa',
                                        guidance='mae', vgg_weights=None),
                       progress_stream=False)


class LearningRateTest(util.TrainingTestCase):

  def test_schedule_and_resume_with_another_rate(self):
    log_dir = os.path.join(self.root, 'rates')
    config = util.tiny_config(
        variant='snet', pretrain_steps=2, n_critic=1, learning_rate=1e-3,
        adversarial_learning_rate=1e-4, lr_half_life=4)
    trainer = training.Trainer(log_dir, self.dataset_fn, config,
                               progress_stream=False)
    self.assertAllClose(trainer.learning_rate(0), 1e-3)
    self.assertAllClose(trainer.learning_rate(1), 1e-3 * 0.5 ** 0.25)
    self.assertAllClose(trainer.learning_rate(2), 1e-4 * 0.5 ** 0.5)
    self.assertAllClose(trainer.learning_rate(8), 1e-4 * 0.25)
    last = trainer.train(3)  # Steps 0, 1 (pretraining) and 2.
    self.assertAllClose(last['opt/learning_rate'], 1e-4 * 0.5 ** 0.5)
    for optimizer in (trainer.steps.g_optimizer, trainer.steps.d_optimizer):
      self.assertAllClose(float(optimizer.learning_rate.numpy()),
                          1e-4 * 0.5 ** 0.5)
    self.assertEqual([s for s, _ in _events(log_dir)['opt/learning_rate']],
                     [1, 2, 3])
    # A resumed run takes its own rate, not the restored optimiser's.
    resumed = training.Trainer(
        log_dir, self.dataset_fn,
        config.replace(learning_rate=1e-2, adversarial_learning_rate=None,
                       lr_half_life=0), progress_stream=False)
    self.assertEqual(int(resumed.step.numpy()), 3)
    self.assertEqual(resumed.config_changes, [
        'learning_rate: 0.001 -> 0.01',
        'adversarial_learning_rate: 0.0001 -> None',
        'lr_half_life: 4 -> 0'])
    self.assertEqual(run_dir.load_config(log_dir).optimizer.learning_rate,
                     1e-2)
    before = _variables(resumed.task.generator)
    resumed.train(4)
    for optimizer in (resumed.steps.g_optimizer, resumed.steps.d_optimizer):
      self.assertAllClose(float(optimizer.learning_rate.numpy()), 1e-2)
    # Adam moves each weight by at most about the rate: some by more than
    # the old rate allowed.
    moved = max(np.abs(a - b).max()
                for a, b in zip(before, _variables(resumed.task.generator)))
    self.assertGreater(moved, 2e-4)
    self.assertLess(moved, 1e-2 * 1.5)

  def test_awa_lookahead_follows_the_schedule_across_a_resume(self):
    log_dir = os.path.join(self.root, 'awa_rates')
    config = util.tiny_config(
        variant='snet', pretrain_steps=1, n_critic=1, learning_rate=1e-3,
        adversarial_learning_rate=1e-4, lr_half_life=4,
        aux_losses='tpl_tsl', reweight='awa', guidance='mae',
        vgg_weights=None)
    trainer = training.Trainer(log_dir, self.dataset_fn, config,
                               progress_stream=False)
    self.assertAllClose(trainer.train(1)['reweight/lookahead_lr'], 1e-3)
    last = trainer.train(2)  # Step 1 trains the critics: the other rate.
    self.assertAllClose(last['reweight/lookahead_lr'], 1e-4 * 0.5 ** 0.25)
    self.assertAllClose(last['reweight/lookahead_lr'],
                        last['opt/learning_rate'])
    resumed = training.Trainer(
        log_dir, self.dataset_fn,
        config.replace(adversarial_learning_rate=3e-4, lr_half_life=2),
        progress_stream=False)
    self.assertEqual(int(resumed.step.numpy()), 2)
    last = resumed.train(3)
    self.assertAllClose(last['reweight/lookahead_lr'], 3e-4 * 0.5)
    self.assertAllClose(float(resumed.steps.g_optimizer.learning_rate.numpy()),
                        3e-4 * 0.5)

  def test_bad_rates(self):
    for field, value, pattern in (
        ('learning_rate', 0.0, '^learning_rate: expected > 0'),
        ('adversarial_learning_rate', -1.0,
         '^adversarial_learning_rate: expected > 0'),
        ('lr_half_life', -3, '^lr_half_life: expected >= 0')):
      with self.assertRaisesRegex(ValueError, pattern):
        training.Trainer(os.path.join(self.root, 'bad_rate'), self.dataset_fn,
                         util.tiny_config(**{field: value}),
                         progress_stream=False)
    self.assertFalse(os.path.exists(os.path.join(self.root, 'bad_rate')))


class ProgressBarTest(tf.test.TestCase):

  def test_line(self):
    stream = io.StringIO()
    bar = training.ProgressBar(100, stream=stream, every=50)
    for step in (1, 50, 51, 100):
      bar.update(step, {'svw': 0.123456, 'g_total': 2.0}, 12.34, 3725.0)
    bar.close()
    lines = stream.getvalue().splitlines()
    self.assertLen(lines, 2)  # Not a terminal: every 50 steps and the end.
    self.assertEqual(
        lines[0], '[##########..........] 50/100 svw 0.1235 g_total 2 | '
        '12.3 img/s | ETA 1:02:05')
    self.assertIn('100/100', lines[1])


_TINY_RUN = ('--flagfile=flags/demo.cfg', '--image_size=32', '--eval_every=0',
             '--cnum=4', '--batch_size=2', '--local_filters=4,4,4,4',
             '--global_filters=4,4,4,4')


class ToolTest(util.TrainingTestCase):

  def _run(self, *args):
    return subprocess.run([sys.executable, '-m', 'tools.train', *args],
                          cwd=_ROOT, capture_output=True, text=True,
                          timeout=600, check=False)

  def _interrupt(self, signum, log_dir, after_step):
    """Starts a long run, sends ``signum`` once it passed ``after_step``."""
    proc = subprocess.Popen(
        [sys.executable, '-m', 'tools.train', *_TINY_RUN, *self._resumable,
         f'--data={self.images}', f'--log_dir={log_dir}', '--max_steps=100000'],
        cwd=_ROOT, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL,
        text=True)
    lines = []
    timer = threading.Timer(300, proc.kill)  # Never hangs the suite.
    timer.start()
    try:
      for line in proc.stderr:
        lines.append(line)
        if f' {after_step}/100000 ' in line:
          proc.send_signal(signum)
          break
      lines.extend(proc.stderr)
      proc.wait()
    finally:
      timer.cancel()
    return proc.returncode, lines

  # S-Net, adversarial from the first step: both optimisers and critics are
  # in the checkpoint, and one phase is traced.
  _resumable = ('--variant=snet', '--pretrain_steps=0',
                '--checkpoint_every=1000', '--log_every=1', '--deterministic')

  @pytest.mark.slow
  def test_signals_checkpoint_and_the_rerun_continues_exactly(self):
    runs = {signal.SIGTERM: os.path.join(self.root, 'term'),
            signal.SIGINT: os.path.join(self.root, 'int')}
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
      stopped = dict(zip(runs, pool.map(
          lambda item: self._interrupt(item[0], item[1], after_step=4),
          runs.items())))
    steps = {}
    for signum, (status, lines) in stopped.items():
      text = ''.join(lines)
      self.assertEqual(status, 128 + signum, text[-3000:])
      last = lines[-1]
      match = re.match(rf'^stopped by {signal.Signals(signum).name} at step '
                       r'(\d+); checkpoint \S+ckpt-(\d+) written, the same '
                       r'command continues the run; 0 unreadable image', last)
      self.assertIsNotNone(match, last)
      self.assertEqual(match.group(1), match.group(2))
      steps[signum] = int(match.group(1))
      self.assertGreaterEqual(steps[signum], 4)
      self.assertNotIn('Traceback', text)
      self.assertEqual(tf.train.latest_checkpoint(
          os.path.join(runs[signum], 'ckpt')),
                       os.path.join(runs[signum], 'ckpt',
                                    f'ckpt-{steps[signum]}'))
    target = max(steps.values()) + 3
    reference = os.path.join(self.root, 'reference')
    common = (*_TINY_RUN, *self._resumable, f'--data={self.images}',
              f'--max_steps={target}')
    with concurrent.futures.ThreadPoolExecutor(3) as pool:
      finished = list(pool.map(lambda log_dir: self._run(
          *common, f'--log_dir={log_dir}'), [reference, *runs.values()]))
    for proc in finished:
      self.assertEqual(proc.returncode, 0, proc.stderr[-3000:])
    expected = util.checkpoint_values(os.path.join(reference, 'ckpt'))
    self.assertIn('step', ' '.join(expected))
    for signum, log_dir in runs.items():
      resumed = util.checkpoint_values(os.path.join(log_dir, 'ckpt'))
      self.assertCountEqual(resumed, expected)
      for name, value in expected.items():
        self.assertAllEqual(resumed[name], value,
                            msg=f'{signal.Signals(signum).name}: {name}')

  @pytest.mark.slow
  def test_demo_flagfile_with_overrides(self):
    log_dir = os.path.join(self.root, 'tool_run')
    proc = self._run(
        '--flagfile=flags/demo.cfg', f'--data={self.images}',
        f'--log_dir={log_dir}', '--max_steps=2', '--image_size=32',
        '--eval_every=0',
        '--cnum=4', '--batch_size=2', '--pretrain_steps=1',
        '--local_filters=4,4,4,4', '--global_filters=4,4,4,4')
    self.assertEqual(proc.returncode, 0, proc.stderr[-3000:])
    self.assertIn('2/2', proc.stderr)
    self.assertTrue(os.path.isfile(os.path.join(log_dir, 'ckpt',
                                                'ckpt-2.index')))
    with open(os.path.join(log_dir, 'generator.json')) as f:
      self.assertEqual(json.load(f)['cnum'], 4)
    config = run_dir.load_config(log_dir)
    # 32x32 images: the paper's sizes (at 256) scaled by 32/256 where the
    # flagfile does not set them, its own values where it does.
    paper = config_lib.ExperimentConfig()
    for name in ('hole_size', 'max_delta', 'margin', 'local_size',
                 'svw_size'):
      self.assertEqual(config.value(name),
                       round(paper.value(name) * 32 / 256), msg=name)
    self.assertEqual((config.masks.hole_size, config.masks.max_delta,
                      config.critics.local_size, config.losses.svw_size),
                     (16, 4, 16, 8))
    self.assertEqual((config.masks.ff_max_length,
                      config.masks.ff_max_brush_width), (20, 10))
    self.assertEqual(config.optimizer.learning_rate, 3e-4)  # The flagfile's.
    self.assertEqual(config.optimizer.pretrain_steps, 1)  # The override's.
    self.assertEqual(config.model.cnum, 4)

  def test_missing_or_unreadable_data(self):
    # PNGs with intact signatures and end markers but garbage inside: only
    # the decoder can tell, and the tool must still stop (not hang).
    corrupt = os.path.join(self.root, 'corrupt')
    os.makedirs(corrupt, exist_ok=True)
    source = bytearray(open(os.path.join(self.images, sorted(
        os.listdir(self.images))[0]), 'rb').read())
    source[40:-20] = b'\x00' * (len(source) - 60)
    for i in range(3):
      with open(os.path.join(corrupt, f'{i}.png'), 'wb') as f:
        f.write(bytes(source))
    cases = [(os.path.join(self.root, 'nothing'),
              r"^error: --data: expected an existing folder .*nothing' "
              r"\(not found\)$"),
             (corrupt, r'^error: --data: expected readable images, got .*'
              r'corrupt.* 3 unreadable files of 3\)$')]
    log_dirs = [os.path.join(self.root, f'bad_run{k}') for k in range(2)]
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
      procs = list(pool.map(
          lambda c: self._run(*_TINY_RUN, f'--data={c[0][0]}',
                              f'--log_dir={c[1]}'), zip(cases, log_dirs)))
    for (_, pattern), log_dir, proc in zip(cases, log_dirs, procs):
      self.assertEqual(proc.returncode, 1, proc.stderr[-3000:])
      lines = [l for l in proc.stderr.strip().splitlines()
               if 'Skipping unreadable image' not in l]
      self.assertLen(lines, 1, proc.stderr)
      self.assertRegex(lines[0], pattern)
      self.assertFalse(os.path.exists(log_dir))


if __name__ == '__main__':
  tf.test.main()
