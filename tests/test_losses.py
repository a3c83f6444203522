"""Tests of inpaint_tf.losses against GMCNN reference arrays and numpy."""

import importlib.util
import os
import unittest

import numpy as np
import tensorflow as tf

from inpaint_tf import config as config_lib
from inpaint_tf import losses
from inpaint_tf.keras_api import keras
from inpaint_tf.models import critics
import numpy_conv

_GOLDEN = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'data',
                       'golden_tf1_reference.npz')


def _numpy_priority_mask(mask, kernel, iterations):
  """GMCNN's priority_loss_mask written with the numpy convolution."""
  known = 1.0 - mask
  confidence = known
  for _ in range(iterations):
    weights = numpy_conv.conv2d(confidence, kernel[:, :, None, None]) * mask
    confidence = weights + known
  return weights


class SpatialVariantWeightsTest(tf.test.TestCase):

  def setUp(self):
    super().setUp()
    self.golden = np.load(_GOLDEN)

  def test_gauss_kernel_matches_original(self):
    cfg = config_lib.LossConfig()
    kernel = losses.gauss_kernel(cfg.svw_size, cfg.svw_sigma)
    self.assertEqual(kernel.dtype, np.float32)
    self.assertEqual(kernel.shape, (64, 64))
    self.assertLess(np.abs(kernel - self.golden['gauss64']).max(), 1e-9)
    self.assertAllClose(kernel.sum(), 1.0)

  def test_priority_mask_matches_original(self):
    mask = self.golden['svw0_mask']
    weights = losses.spatial_variant_weights(tf.constant(mask)).numpy()
    # The arrays were made with oneDNN's convolution (TF_ENABLE_ONEDNN_OPTS=1
    # reproduces them bit for bit); TF's default CPU kernel sums the 64x64
    # window in another order, and the reference itself is ~1.1e-5 away from
    # a float64 evaluation of the same recurrence.
    self.assertLess(np.abs(weights - self.golden['svw0_weight']).max(), 2e-5)
    cfg = config_lib.LossConfig()
    exact = mask.astype(np.float64)
    known = 1.0 - exact
    confidence = known
    kernel = tf.constant(losses.gauss_kernel()[:, :, None, None], tf.float64)
    for _ in range(cfg.svw_iterations):
      exact_weights = tf.nn.conv2d(confidence, kernel, 1, 'SAME') * exact
      confidence = exact_weights + known
    self.assertLess(np.abs(weights - exact_weights.numpy()).max(), 1e-6)
    self.assertAllEqual(weights[mask == 0], np.zeros(int((mask == 0).sum())))
    self.assertGreater(weights[mask == 1].min(), 0.0)

  def test_matches_numpy_on_border_and_non_square_masks(self):
    mask = np.zeros((2, 20, 28, 1), np.float32)
    mask[0, 0:9, 5:20] = 1  # touches the top border
    mask[1, 6:20, 10:28] = 1  # bottom-right corner
    mask[1, 2:4, 2:4] = 1  # second, small hole
    kernel = losses.gauss_kernel(8, 1 / 40)
    expected = _numpy_priority_mask(mask.astype(np.float64), kernel, 3)
    weights = losses.spatial_variant_weights(
        tf.constant(mask), size=8, iterations=3)
    self.assertAllClose(weights, expected, atol=1e-6)
    self.assertAllEqual(weights.numpy()[mask == 0], expected[mask == 0])

  def test_bad_mask(self):
    with self.assertRaisesRegex(ValueError, r'mask: expected \[B,H,W,1\]'):
      losses.spatial_variant_weights(tf.zeros([1, 8, 8, 3]))
    with self.assertRaisesRegex(ValueError, 'mask'):
      losses.spatial_variant_weights(tf.zeros([1, 8, 8, 1], tf.int32))


class ReconstructionLossTest(tf.test.TestCase):

  def test_svw_and_known_region(self):
    rng = np.random.default_rng(0)
    gt = rng.uniform(-1, 1, (2, 8, 8, 3)).astype(np.float32)
    pred = rng.uniform(-1, 1, (2, 8, 8, 3)).astype(np.float32)
    weights = rng.uniform(0, 1, (2, 8, 8, 1)).astype(np.float32)
    mask = np.zeros((1, 8, 8, 1), np.float32)
    mask[:, 2:6, 1:5] = 1
    # GMCNN's normalisation: the mean over each sample's hole bounding box.
    masks = np.zeros((2, 8, 8, 1), np.float32)
    masks[0, 2:6, 1:5] = 1
    masks[1, 0:2, 3:8] = 1
    masks[1, 5, 7] = 1  # The box of sample 1 is rows 0..5, columns 3..7.
    weighted = np.abs(gt - pred) * weights
    expected = np.mean([weighted[0, 2:6, 1:5].mean(),
                        weighted[1, 0:6, 3:8].mean()])
    self.assertAllClose(
        losses.svw_reconstruction_loss(gt, pred, weights, masks,
                                       normalization='hole_bbox'), expected)
    self.assertAllClose(
        losses.svw_reconstruction_loss(gt, pred, weights,
                                       normalization='image'),
        weighted.mean())
    with self.assertRaisesRegex(ValueError, "^mask: .*'hole_bbox'"):
      losses.svw_reconstruction_loss(gt, pred, weights,
                                     normalization='hole_bbox')
    with self.assertRaisesRegex(ValueError, '^normalization: expected one of'):
      losses.svw_reconstruction_loss(gt, pred, weights, masks,
                                     normalization='hole')
    known = np.broadcast_to(1 - mask, (2, 8, 8, 1))
    expected = np.mean(np.abs(gt - pred) * known) / np.mean(known)
    self.assertAllClose(losses.known_region_loss(gt, pred, mask), expected)
    self.assertAllClose(
        losses.known_region_loss(gt, pred, np.ones_like(mask)), 0.0)


class IterativeGuidanceLossTest(tf.test.TestCase):

  def test_value_and_stop_gradient(self):
    rng = np.random.default_rng(1)
    shapes = [(2, 8, 8, 4), (2, 4, 4, 8), (2, 2, 2, 8)]
    feats = [tf.constant(rng.standard_normal(s), tf.float32) for s in shapes]
    targs = [tf.Variable(rng.standard_normal(s), dtype=tf.float32)
             for s in shapes]
    expected = sum(np.mean(np.abs(f.numpy() - t.numpy()))
                   for f, t in zip(feats, targs))
    for stop in (True, False):
      with tf.GradientTape() as tape:
        value = losses.iterative_guidance_loss(feats, targs,
                                               stop_gradient=stop)
      self.assertAllClose(value, expected)
      grads = tape.gradient(value, targs)
      if stop:
        self.assertTrue(all(g is None for g in grads))
      else:
        self.assertAllClose(grads[0], -np.sign(feats[0] - targs[0]) /
                            np.prod(shapes[0]))
    self.assertEqual(config_lib.LossConfig().igl_stop_gradient, False)
    self.assertAllClose(losses.iterative_guidance_loss((), ()), 0.0)

  def test_mismatch(self):
    with self.assertRaisesRegex(ValueError, 'equal length'):
      losses.iterative_guidance_loss([tf.zeros([1, 2, 2, 1])], [])
    with self.assertRaisesRegex(ValueError, r'targets\[0\]'):
      losses.iterative_guidance_loss([tf.zeros([1, 2, 2, 1])],
                                     [tf.zeros([1, 2, 2, 2])])


class WassersteinTest(tf.test.TestCase):

  def test_critic_and_generator_losses(self):
    real = tf.constant([[1.0], [3.0]])
    fake = tf.constant([[-2.0], [0.5]])
    self.assertAllClose(losses.wgan_critic_loss(real, fake), -0.75 - 2.0)
    self.assertAllClose(losses.wgan_generator_loss(fake), 0.75)

  def _critic(self, dtype='float32'):
    critic = critics.LocalCritic(filters=(2, 3), dtype=dtype)
    critic(tf.zeros([1, 8, 8, 3], dtype))
    return critic

  def test_penalty_matches_finite_differences(self):
    keras.utils.set_random_seed(3)
    critic = self._critic('float64')
    rng = np.random.default_rng(3)
    real = rng.uniform(-1, 1, (2, 8, 8, 3))
    fake = rng.uniform(-1, 1, (2, 8, 8, 3))
    alpha = np.array([0.25, 0.8])
    mask = np.zeros((2, 8, 8, 1))
    mask[0, 2:6, 2:6] = 1
    mask[1, 0:3, 4:8] = 1
    penalty = losses.masked_gradient_penalty(
        critic, tf.constant(real), tf.constant(fake), tf.constant(mask),
        alpha=tf.constant(alpha))

    interpolates = real + alpha[:, None, None, None] * (fake - real)
    n = 8 * 8 * 3
    step = 1e-6
    basis = np.eye(n).reshape(n, 8, 8, 3) * step
    grads = []
    for x in interpolates:
      plus = critic(tf.constant(x + basis)).numpy()[:, 0]
      minus = critic(tf.constant(x - basis)).numpy()[:, 0]
      grads.append(((plus - minus) / (2 * step)).reshape(8, 8, 3))
    grads = np.stack(grads)
    slopes = np.sqrt(np.sum(grads ** 2 * mask, axis=(1, 2, 3)) + 1e-10)
    expected = np.mean((slopes - 1.0) ** 2)
    self.assertAllClose(penalty, expected, rtol=1e-6, atol=1e-9)

  @unittest.skipIf(importlib.util.find_spec('tensorflow_gan') is None,
                   'TF-GAN is only on the pinned stack (requirements.txt)')
  def test_penalty_matches_tfgan_unmasked(self):
    import tensorflow_gan as tfgan  # pylint: disable=g-import-not-at-top
    keras.utils.set_random_seed(4)
    critic = self._critic()
    real = tf.random.uniform([3, 8, 8, 3], -1, 1, seed=4)

    @tf.function
    def both(x):
      # fake == real makes the interpolates independent of the random alpha.
      ours = losses.masked_gradient_penalty(
          critic, x, x, tf.ones_like(x[..., :1]))
      theirs = tfgan.losses.wargs.wasserstein_gradient_penalty(
          x, x, None, lambda inputs, _: critic(inputs), 'critic')
      unmasked = losses.masked_gradient_penalty(critic, x, x, None)
      return ours, theirs, unmasked

    ours, theirs, unmasked = both(real)
    self.assertAllClose(ours, theirs, rtol=1e-5)
    self.assertAllClose(unmasked, theirs, rtol=1e-5)

  def test_penalty_is_differentiable_in_critic_weights(self):
    critic = self._critic()
    real = tf.random.uniform([2, 8, 8, 3], -1, 1, seed=5)
    fake = tf.random.uniform([2, 8, 8, 3], -1, 1, seed=6)
    mask = tf.ones([1, 8, 8, 1])
    with tf.GradientTape() as tape:
      penalty = losses.masked_gradient_penalty(critic, real, fake, mask)
    grads = tape.gradient(penalty, critic.trainable_variables)
    self.assertIsNotNone(grads[0])
    self.assertGreater(float(tf.reduce_sum(tf.abs(grads[0]))), 0.0)
    # An empty mask gives slope sqrt(eps): the penalty is ~1.
    empty = losses.masked_gradient_penalty(critic, real, fake,
                                           tf.zeros([1, 8, 8, 1]))
    self.assertAllClose(empty, 1.0, atol=1e-4)

  def test_float16_critic_with_gradient_scale(self):
    # The same critic in float32 and in float16 (mixed precision): the
    # scaled inner gradient gives the float32 penalty and weight gradients
    # to float16 rounding, whatever the scale.
    keras.utils.set_random_seed(7)
    critics_ = []
    for dtype in ('float32', 'mixed_float16'):
      critic = critics.LocalCritic(filters=(8, 8, 8, 8), dtype=dtype)
      critic.build([None, 32, 32, 3])
      critics_.append(critic)
    full, half = critics_
    half.set_weights(full.get_weights())
    real = tf.random.stateless_uniform([2, 32, 32, 3], [7, 1], -1, 1)
    fake = tf.random.stateless_uniform([2, 32, 32, 3], [7, 2], -1, 1)
    mask = tf.ones([1, 32, 32, 1])
    alpha = tf.constant([0.25, 0.75])

    def penalty(critic, scale):
      score = lambda x: tf.cast(critic(x), tf.float32)
      with tf.GradientTape() as tape:
        value = losses.masked_gradient_penalty(
            score, real, fake, mask, alpha=alpha, gradient_scale=scale)
      return value, tape.gradient(value, critic.trainable_variables)

    want, want_grads = penalty(full, None)
    for scale in (1.0, 1024.0, 32768.0):
      got, grads = penalty(half, tf.constant(scale))
      self.assertEqual(got.dtype, tf.float32)
      self.assertAllClose(got, want, rtol=1e-2, msg=scale)
      for g, w in zip(grads, want_grads):
        if w is None:  # The output bias does not move the slope.
          self.assertIsNone(g)
          continue
        # float16 rounding through four layers and back: a few percent of
        # the gradient's norm.
        self.assertLessEqual(float(tf.norm(g - w)),
                             0.05 * float(tf.norm(w)) + 1e-6,
                             msg=(scale, w.shape))

  def test_penalty_bad_input(self):
    critic = self._critic()
    with self.assertRaisesRegex(ValueError, 'fake: expected shape'):
      losses.masked_gradient_penalty(critic, tf.zeros([2, 8, 8, 3]),
                                     tf.zeros([2, 4, 8, 3]), None)
    with self.assertRaisesRegex(ValueError, r'real: expected \[B,H,W,C\]'):
      losses.masked_gradient_penalty(critic, tf.zeros([8, 8, 3]),
                                     tf.zeros([8, 8, 3]), None)


if __name__ == '__main__':
  tf.test.main()
