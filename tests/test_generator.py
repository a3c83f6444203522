"""Tests of inpaint_tf.models.generator (SPEC 4.2, GEPE-Net Figs. 1, 3, 4)."""

import json
import os

from absl.testing import parameterized
import numpy as np
import tensorflow as tf

from inpaint_tf import config as config_lib
from inpaint_tf import losses
from inpaint_tf import ops
from inpaint_tf import run_dir as run_dir_lib
from inpaint_tf.keras_api import keras
from inpaint_tf.layers import ASPC
from inpaint_tf.layers import ContextualAttention
from inpaint_tf.models import generator as generator_lib
import numpy_conv

VARIANTS = config_lib.GENERATOR_VARIANTS


def _inputs(batch=2, height=64, width=64, seed=0):
  rng = np.random.default_rng(seed)
  gt = rng.uniform(-1, 1, (batch, height, width, 3)).astype(np.float32)
  mask = np.zeros((batch, height, width, 1), np.float32)
  mask[0, height // 4:height // 2, width // 4:3 * width // 4] = 1
  mask[-1, height // 2:, :width // 2] = 1
  return tf.constant(gt), tf.constant(mask), tf.constant(gt * (1 - mask))


def _count(gen, cls):
  return sum(isinstance(m, cls) for m in gen.submodules)


class GeneratorShapeTest(tf.test.TestCase, parameterized.TestCase):

  def test_paper_size_all_variants(self):
    _, mask, masked = _inputs(batch=1, height=256, width=256)
    for variant in VARIANTS:
      gen = generator_lib.build_generator(variant)  # cnum from the config
      pred = gen((masked, mask)).numpy()
      self.assertEqual(pred.shape, (1, 256, 256, 3), variant)
      self.assertTrue(np.all(np.abs(pred) <= 1.0), variant)
      self.assertEqual(gen.e1.kernel.shape[-1],
                       2 * config_lib.GeneratorConfig.cnum)

  @parameterized.parameters(*VARIANTS)
  def test_small_variant(self, variant):
    gt, mask, masked = _inputs(height=48, width=64)
    gen = generator_lib.build_generator(variant, cnum=4)
    out = gen((masked, mask), ground_truth=gt, structured=True)
    self.assertEqual(out.image.shape, (2, 48, 64, 3))
    self.assertTrue(np.all(np.abs(out.image.numpy()) <= 1.0))
    expected = [(2, 12, 16, 16), (2, 6, 8, 32), (2, 3, 4, 32)]
    has_p = variant != 'snet'
    self.assertEqual([f.shape for f in out.features],
                     expected if has_p else [])
    self.assertEqual([t.shape for t in out.targets],
                     expected if variant == 'gepenet' else [])
    self.assertEqual(_count(gen, ContextualAttention), 3 if has_p else 0)
    self.assertEqual(_count(gen, ASPC), 1 if has_p else 0)
    self.assertAllClose(gen((masked, mask)), out.image)
    self.assertEqual(gen.variant, variant)
    self.assertEqual(gen.output_layer.kernel.shape, (3, 3, 8, 3))
    self.assertLen(gen.output_layer.trainable_variables, 2)

  def test_aspc_switch_and_attention_rates(self):
    gen = generator_lib.build_generator('gepenet', cnum=2, aspc=False)
    _, mask, masked = _inputs(batch=1, height=32, width=32)
    gen((masked, mask))
    self.assertEqual(_count(gen, ASPC), 0)
    self.assertEqual([p.rate for p in gen.perception],
                     list(config_lib.GeneratorConfig.attention_rates))
    self.assertIsNone(generator_lib.build_generator('snet').aspc_layer)

  def test_shared_mask_and_dynamic_shape(self):
    gt, mask, _ = _inputs(batch=2, height=32, width=48)
    shared = mask[:1]
    gen = generator_lib.build_generator('gepenet', cnum=2)
    fn = tf.function(
        lambda masked, mask, truth: gen((masked, mask), ground_truth=truth,
                                        structured=True),
        input_signature=[
        tf.TensorSpec([None, None, None, 3]),
        tf.TensorSpec([None, None, None, 1]),
        tf.TensorSpec([None, None, None, 3])])
    eager = gen((gt * (1 - shared), shared), ground_truth=gt, structured=True)
    traced = fn(gt * (1 - shared), shared, gt)
    self.assertAllClose(traced.image, eager.image, atol=1e-5)
    self.assertAllClose(traced.targets[2], eager.targets[2], atol=1e-5)
    per_sample = gen((gt * (1 - shared), tf.concat([shared, shared], 0)))
    self.assertAllClose(per_sample, eager.image, atol=1e-6)


class GeneratorValueTest(tf.test.TestCase):

  def test_snet_matches_numpy(self):
    """Independent recomputation of the whole S-Net (wiring, skips, up)."""
    gt, mask, masked = _inputs(batch=1, height=16, width=16)
    gen = generator_lib.build_generator('snet', cnum=2)
    pred = gen((masked, mask)).numpy()

    def conv(layer, x, stride=1, act=True):
      kernel, bias = layer.get_weights()
      y = numpy_conv.conv2d(x, kernel, bias, stride=stride)
      return numpy_conv.elu(y) if act else y

    def up(x):
      return np.repeat(np.repeat(x, 2, axis=1), 2, axis=2)

    m = mask.numpy()
    x = np.concatenate([masked.numpy(), np.ones_like(m), m], -1)
    x1 = conv(gen.e1, x)
    x2 = conv(gen.e2, x1, 2)
    x3 = conv(gen.e3, x2, 2)
    x4 = conv(gen.e4, x3, 2)
    y = conv(gen.e5, x4, 2)
    for u, d, skip in ((gen.d4_up, gen.d4, x4), (gen.d3_up, gen.d3, x3),
                       (gen.d2_up, gen.d2, x2), (gen.d1_up, gen.d1, x1)):
      y = conv(d, np.concatenate([conv(u, up(y)), skip], -1))
    expected = np.clip(conv(gen.output_layer, y, act=False), -1, 1)
    self.assertAllClose(pred, expected, atol=1e-5)

  def test_perception_keeps_known_features(self):
    _, mask, masked = _inputs(batch=2, height=32, width=32)
    gen = generator_lib.build_generator('penet', cnum=2)
    out = gen((masked, mask), structured=True)
    ones = tf.ones_like(mask)
    x3 = gen.e3(gen.e2(gen.e1(tf.concat([masked, ones, mask], -1))))
    m3 = ops.resize_nearest(mask, [8, 8])
    filled = gen.perception[0](x3, x3, m3)
    self.assertAllClose(out.features[0], x3 * (1 - m3) + filled * m3)
    known = np.broadcast_to(m3.numpy() == 0, x3.shape)
    self.assertAllEqual(out.features[0].numpy()[known], x3.numpy()[known])

  def test_guidance_targets_are_the_same_encoder(self):
    gt, mask, masked = _inputs(batch=2, height=32, width=32)
    gen = generator_lib.build_generator('gepenet', cnum=2)
    no_hole = tf.zeros_like(mask)
    out = gen((gt, no_hole), ground_truth=gt, structured=True)
    for feature, target in zip(out.features, out.targets):
      self.assertAllClose(feature, target, atol=0, rtol=0)
    self.assertAllClose(
        losses.iterative_guidance_loss(out.features, out.targets), 0.0)
    holed = gen((masked, mask), ground_truth=gt, structured=True)
    for target, expected in zip(holed.targets, out.targets):
      self.assertAllClose(target, expected, atol=0, rtol=0)
    self.assertGreater(
        float(losses.iterative_guidance_loss(holed.features, holed.targets)),
        0.0)
    # Plain chain E3 -> E4 -> E5 on the ground truth (mask channel zero).
    zeros = tf.zeros_like(mask)
    x = tf.concat([gt, tf.ones_like(mask), zeros], -1)
    e3 = gen.e3(gen.e2(gen.e1(x)))
    self.assertAllClose(holed.targets[0], e3)
    self.assertAllClose(holed.targets[2], gen.e5(gen.e4(e3)))


class GeneratorInputTest(tf.test.TestCase):

  def setUp(self):
    super().setUp()
    self.gen = generator_lib.build_generator('snet', cnum=2)
    self.masked = tf.zeros([2, 32, 32, 3])
    self.mask = tf.zeros([2, 32, 32, 1])

  def test_bad_inputs(self):
    gen, masked, mask = self.gen, self.masked, self.mask
    cases = [
        ((tf.zeros([32, 32, 3]), mask), r'masked: expected \[B,H,W,3\]'),
        ((tf.zeros([2, 32, 32, 4]), mask), r'masked: expected \[B,H,W,3\]'),
        ((tf.zeros([2, 32, 32, 3], tf.int32), mask), 'masked.*int32'),
        ((masked, tf.zeros([2, 32, 32, 3])), r'mask: expected \[B,H,W,1\]'),
        ((masked, tf.zeros([2, 32, 32, 1], tf.uint8)), 'mask.*uint8'),
        ((masked, tf.zeros([3, 32, 32, 1])), r'mask: expected \[2,32,32,1\]'),
        ((masked, tf.zeros([2, 16, 32, 1])), r'mask: expected \[2,32,32,1\]'),
        ((tf.zeros([1, 40, 32, 3]), tf.zeros([1, 40, 32, 1])),
         'masked: expected .* divisible by 16.*H=40'),
    ]
    for inputs, pattern in cases:
      with self.assertRaisesRegex(ValueError, pattern):
        gen(inputs)
    with self.assertRaisesRegex(ValueError, 'ground_truth: expected shape'):
      gen((masked, mask), ground_truth=tf.zeros([2, 16, 16, 3]),
          structured=True)
    with self.assertRaisesRegex(ValueError, 'inputs: expected a tuple'):
      gen(masked)
    with self.assertRaisesRegex(ValueError, 'variant: expected one of'):
      generator_lib.build_generator('unet')


class UpsamplingTest(tf.test.TestCase):

  def test_phase_convolution_equals_upsample_then_conv(self):
    """``_up`` equals nearest 2x upsampling followed by the convolution."""
    rng = np.random.default_rng(8)
    x = tf.constant(rng.standard_normal((2, 5, 7, 3)).astype(np.float32))
    conv = keras.layers.Conv2D(4, 3, padding='same', activation='elu')
    conv.build(x.shape)
    conv.bias.assign(rng.standard_normal(4).astype(np.float32))
    up = np.repeat(np.repeat(x.numpy(), 2, axis=1), 2, axis=2)
    self.assertAllEqual(ops.resize_nearest(x, [10, 14]), up)
    self.assertAllClose(generator_lib.Generator._up(x, conv), conv(up),
                        atol=1e-5, rtol=0)


class HoleOnlyAttentionTest(tf.test.TestCase):

  def test_hole_only_equals_full_attention_with_gradients(self):
    """Computing p only in the hole changes neither output nor gradients."""
    rng = np.random.default_rng(7)
    truth = tf.constant(rng.uniform(-1, 1, (2, 64, 64, 3)).astype(np.float32))
    mask = np.zeros((2, 64, 64, 1), np.float32)
    mask[0, 16:48, 8:40] = 1
    mask[1, 40:64, 0:64] = 1
    mask = tf.constant(mask)
    keras.utils.set_random_seed(0)
    hole_only = generator_lib.build_generator('gepenet', cnum=4)
    full = generator_lib.build_generator('gepenet', cnum=4,
                                         attention_hole_only=False)
    hole_only.build()
    full.build()
    full.set_weights(hole_only.get_weights())

    # Unknown sizes: the layers take the chunked query path.
    spec = [tf.TensorSpec([2, None, None, c], tf.float32) for c in (3, 1)]

    @tf.function(input_signature=spec)
    def run_hole_only(truth, mask):
      return run(hole_only, truth, mask)

    def run(gen, truth, mask):
      with tf.GradientTape() as tape:
        out = gen((truth * (1. - mask), mask), ground_truth=truth,
                  structured=True)
        # Smooth terms: an |x| kink would turn rounding into sign flips.
        loss = tf.reduce_mean(tf.square(out.image - truth)) + tf.add_n(
            [tf.reduce_mean(tf.square(a - b))
             for a, b in zip(out.features, out.targets)])
      return out, tape.gradient(loss, gen.trainable_variables)

    (out_a, grads_a) = run_hole_only(truth, mask)
    (out_b, grads_b) = run(full, truth, mask)
    self.assertAllClose(out_a.image, out_b.image, atol=1e-5, rtol=0)
    for a, b in zip(out_a.features, out_b.features):
      self.assertAllClose(a, b, atol=1e-5, rtol=0)
    for a, b in zip(grads_a, grads_b):
      scale = float(tf.reduce_max(tf.abs(b)))
      self.assertGreater(scale, 0.)
      # float32 rounding accumulated through the whole network.
      self.assertAllClose(a / scale, b / scale, atol=5e-5, rtol=0)


class GeneratorSerializationTest(tf.test.TestCase):

  def test_config_round_trip(self):
    gen = generator_lib.build_generator('penet', cnum=3, aspc_rates=(1, 2),
                                        attention_softmax_scale=5.0,
                                        name='g')
    config = gen.get_config()
    self.assertEqual(json.loads(json.dumps(config)), config)
    clone = generator_lib.Generator.from_config(config)
    self.assertEqual(clone.get_config(), config)
    restored = keras.utils.deserialize_keras_object(
        keras.utils.serialize_keras_object(gen))
    self.assertIsInstance(restored, generator_lib.Generator)
    self.assertEqual(restored.get_config(), config)
    self.assertEqual(clone.perception[0].softmax_scale, 5.0)
    self.assertEqual(clone.aspc_layer.rates, (1, 2))

  def test_save_and_load_weights(self):
    _, mask, masked = _inputs(batch=1, height=32, width=32)
    gen = generator_lib.build_generator('gepenet', cnum=2)
    pred = gen((masked, mask))
    path = os.path.join(self.get_temp_dir(), 'weights')
    gen.save_weights(path)
    clone = generator_lib.Generator.from_config(gen.get_config())
    clone.build()
    self.assertNotAllClose(clone((masked, mask)), pred)
    clone.load_weights(path).assert_consumed()
    self.assertAllClose(clone((masked, mask)), pred)


class LoadGeneratorTest(tf.test.TestCase):

  def _run_dir(self, variant, cnum=2, aspc=True):
    """A run directory as training writes it (with an optimiser)."""
    run_dir = os.path.join(self.get_temp_dir(), f'{variant}_{cnum}_{aspc}')
    gen = generator_lib.build_generator(variant, cnum=cnum, aspc=aspc)
    _, mask, masked = _inputs(batch=1, height=32, width=32)
    optimizer = keras.optimizers.Adam(1e-3)
    with tf.GradientTape() as tape:
      loss = tf.reduce_mean(tf.abs(gen((masked, mask))))
    optimizer.apply_gradients(
        zip(tape.gradient(loss, gen.trainable_variables),
            gen.trainable_variables))
    run_dir_lib.save_generator_config(gen, run_dir)
    checkpoint = tf.train.Checkpoint(generator=gen, g_optimizer=optimizer,
                                     step=tf.Variable(1))
    tf.train.CheckpointManager(
        checkpoint, os.path.join(run_dir, 'ckpt'), max_to_keep=1).save()
    return run_dir, gen((masked, mask)), (masked, mask)

  def test_round_trip(self):
    run_dir, pred, inputs = self._run_dir('gepenet')
    self.assertFalse([f for f in os.listdir(run_dir) if '.tmp' in f])
    gen = run_dir_lib.load_generator(run_dir)
    self.assertEqual(gen.variant, 'gepenet')
    self.assertAllClose(gen(inputs), pred)

  def test_wrong_variant_and_missing_files(self):
    run_dir, _, _ = self._run_dir('penet')
    config_path = os.path.join(run_dir, 'generator.json')
    with open(config_path) as f:
      config = json.load(f)
    snet = dict(config, variant='snet')
    with open(config_path, 'w') as f:
      json.dump(snet, f)
    with self.assertRaisesRegex(
        ValueError, r"variant 'snet'.*with ASPC \('penet' or 'gepenet'\)"):
      run_dir_lib.load_generator(run_dir)
    with open(config_path, 'w') as f:
      json.dump(dict(config, cnum=3), f)
    with self.assertRaisesRegex(ValueError, 'cnum=3.*cnum=2'):
      run_dir_lib.load_generator(run_dir)

    with self.assertRaisesRegex(ValueError, 'not a directory'):
      run_dir_lib.load_generator(os.path.join(run_dir, 'nope'))
    empty = os.path.join(self.get_temp_dir(), 'empty')
    os.makedirs(empty)
    with self.assertRaisesRegex(ValueError, 'generator.json.*not found'):
      run_dir_lib.load_generator(empty)
    run_dir_lib.save_generator_config(
        generator_lib.build_generator('snet', cnum=2), empty)
    with self.assertRaisesRegex(ValueError, 'expected a checkpoint in'):
      run_dir_lib.load_generator(empty)


if __name__ == '__main__':
  tf.test.main()
