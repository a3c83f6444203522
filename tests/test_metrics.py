"""Tests of inpaint_tf.metrics against independent computations."""

import importlib.util
import os
import re
import tempfile
import unittest
from unittest import mock

import numpy as np
import scipy.linalg
from skimage import metrics as skmetrics
import tensorflow as tf

from inpaint_tf import metrics as metrics_lib
from inpaint_tf import weights as weights_lib
from inpaint_tf.keras_api import keras


def _pair(seed, shape=(3, 24, 30, 3), noise=40):
  rng = np.random.default_rng(seed)
  a = rng.integers(0, 256, shape).astype(np.uint8)
  b = np.clip(a.astype(int) + rng.integers(-noise, noise + 1, shape), 0, 255)
  return a, b.astype(np.uint8)


class PixelMetricsTest(tf.test.TestCase):

  def test_against_numpy(self):
    a, b = _pair(0)
    diff = a.astype(np.float64) - b.astype(np.float64)
    mae = np.abs(diff).reshape(3, -1).mean(axis=1)
    mse = (diff ** 2).reshape(3, -1).mean(axis=1)
    self.assertAllClose(metrics_lib.mae(a, b), mae)
    self.assertAllClose(metrics_lib.l1(a, b), mae / 255.)
    self.assertAllClose(metrics_lib.l1_percent(a, b), mae / 2.55)
    self.assertAllClose(metrics_lib.psnr(a, b), 20 * np.log10(255.)
                        - 10 * np.log10(mse))
    self.assertAllClose(metrics_lib.psnr(a, b),
                        tf.image.psnr(a, b, max_val=255).numpy(), atol=1e-4)
    single = metrics_lib.psnr(a[1], b[1])
    self.assertIsInstance(single, float)
    self.assertAllClose(single, metrics_lib.psnr(a, b)[1])

  def test_extremes(self):
    black = np.zeros((4, 4, 3), np.uint8)
    white = np.full((4, 4, 3), 255, np.uint8)
    self.assertEqual(metrics_lib.mae(black, white), 255.)
    self.assertEqual(metrics_lib.l1(black, white), 1.)
    self.assertEqual(metrics_lib.l1_percent(black, white), 100.)
    self.assertEqual(metrics_lib.psnr(black, white), 0.)
    self.assertEqual(metrics_lib.psnr(white, white), metrics_lib.PSNR_CAP)
    one_off = white.copy()
    one_off[0, 0, 0] = 254  # MSE 1/48: 10 log10(255^2 * 48) = 64.9 dB.
    self.assertAllClose(metrics_lib.psnr(one_off, white),
                        10 * np.log10(255. ** 2 * 48))

  def test_ssim_against_skimage(self):
    a, b = _pair(1)
    expected = [skmetrics.structural_similarity(
        a[i], b[i], gaussian_weights=True, sigma=1.5,
        use_sample_covariance=False, data_range=255, channel_axis=-1)
                for i in range(3)]
    self.assertAllClose(metrics_lib.ssim(a, b), expected, atol=1e-5)
    self.assertAllClose(metrics_lib.ssim(a[0], a[0]), 1., atol=1e-6)

  def test_bad_inputs(self):
    a, b = _pair(2)
    with self.assertRaisesRegex(ValueError, 'b: expected the shape'):
      metrics_lib.psnr(a, b[:2])
    with self.assertRaisesRegex(ValueError, r'a: expected uint8.*float'):
      metrics_lib.l1(a.astype(np.float32), b)
    with self.assertRaisesRegex(ValueError, 'at least 11x11'):
      metrics_lib.ssim(a[:, :8, :8], b[:, :8, :8])


class Cv2InpaintTest(tf.test.TestCase):

  def test_fills_holes_keeps_known(self):
    rng = np.random.default_rng(3)
    image = rng.integers(0, 256, (2, 20, 20, 3)).astype(np.uint8)
    image[1] = 90  # Flat image: any inpainting gives back the same value.
    mask = np.zeros((2, 20, 20, 1), np.float32)
    mask[:, 5:12, 6:15] = 1.
    for method in ('telea', 'ns'):
      out = metrics_lib.cv2_inpaint(image, mask, method=method)
      self.assertEqual(out.shape, image.shape)
      self.assertEqual(out.dtype, np.uint8)
      known = mask[..., 0] == 0
      np.testing.assert_array_equal(out[known], image[known])
      self.assertAllClose(out[1], image[1], atol=2)
      np.testing.assert_array_equal(
          out[0], metrics_lib.cv2_inpaint(image[0], mask[0, ..., 0] * 255,
                                          method=method))
      self.assertFalse(np.array_equal(out[0], image[0]))

  def test_bad_arguments(self):
    image = np.zeros((8, 8, 3), np.uint8)
    with self.assertRaisesRegex(ValueError, 'method'):
      metrics_lib.cv2_inpaint(image, np.zeros((8, 8)), method='patchmatch')
    with self.assertRaisesRegex(ValueError, 'mask'):
      metrics_lib.cv2_inpaint(image, np.zeros((4, 8)))


class FrechetDistanceTest(tf.test.TestCase):

  def test_against_scipy(self):
    rng = np.random.default_rng(4)
    x = rng.normal(size=(60, 6))
    y = rng.normal(size=(50, 6)) @ rng.normal(size=(6, 6)) * 0.5 + 0.3
    m1, m2 = x.mean(axis=0), y.mean(axis=0)
    c1, c2 = np.cov(x, rowvar=False), np.cov(y, rowvar=False)
    expected = (np.sum((m1 - m2) ** 2) + np.trace(c1 + c2)
                - 2 * np.trace(scipy.linalg.sqrtm(c1 @ c2).real))
    self.assertAllClose(metrics_lib.frechet_distance(x, y), expected,
                        rtol=1e-6)
    self.assertAllClose(metrics_lib.frechet_distance(x, x), 0., atol=1e-6)
    with self.assertRaisesRegex(ValueError, 'activations2'):
      metrics_lib.frechet_distance(x, y[:, :5])

  @unittest.skipIf(importlib.util.find_spec('tensorflow_gan') is None,
                   'TF-GAN is only on the pinned stack (requirements.txt)')
  def test_equals_tfgan(self):
    import tensorflow_gan as tfgan  # pylint: disable=g-import-not-at-top
    rng = np.random.default_rng(5)
    cases = {
        'more images than dimensions': (rng.normal(size=(60, 6)),
                                        rng.gamma(2., size=(50, 6))),
        'fewer images than dimensions': (rng.normal(size=(20, 64)),
                                         rng.normal(size=(30, 64)) + 0.1),
        'pool-feature scale': (rng.gamma(0.5, 0.4, size=(40, 256)),
                               rng.gamma(0.6, 0.3, size=(40, 256))),
    }
    for name, (x, y) in cases.items():
      theirs = float(tfgan.eval.frechet_classifier_distance_from_activations(
          tf.constant(x), tf.constant(y)))
      self.assertAllClose(metrics_lib.frechet_distance(x, y), theirs,
                          rtol=1e-6, atol=0, msg=name)


class InceptionFeaturesTest(tf.test.TestCase):

  def test_no_weights_is_a_clear_error(self):
    home = tempfile.mkdtemp(dir=self.get_temp_dir())
    fallback = os.path.join(home, 'fallback')
    with mock.patch.dict(os.environ, {'HOME': home}), \
         mock.patch.object(weights_lib, 'KERAS_FALLBACK_DIR', fallback):
      os.environ.pop('KERAS_HOME', None)
      self.assertIsNone(weights_lib.cached('no_such.h5'))
      with self.assertRaisesRegex(
          ValueError, r'^weights_path: expected InceptionV3 .* in the Keras '
          r'cache, got none: download inception.*to '
          + re.escape(os.path.join(home, '.keras', 'models'))):
        metrics_lib.InceptionFeatures()
    with self.assertRaisesRegex(ValueError, 'weights_path.*missing.h5'):
      metrics_lib.InceptionFeatures(os.path.join(home, 'missing.h5'))

  def test_loads_weights_from_a_path(self):
    # Random weights saved by the test itself, loaded through weights_path:
    # the features must be those of the saved network.
    keras.utils.set_random_seed(0)
    reference = keras.applications.InceptionV3(
        include_top=False, weights=None, pooling='avg', input_shape=(75, 75, 3))
    path = os.path.join(self.get_temp_dir(), 'inception.h5')
    reference.save_weights(path)
    features = metrics_lib.InceptionFeatures(path, input_size=75, batch_size=2,
                                             use_tf_function=False)
    images = np.random.default_rng(5).integers(
        0, 256, (3, 40, 50, 3)).astype(np.uint8)
    got = features(images)
    self.assertEqual(got.shape, (3, 2048))
    x = tf.image.resize(images.astype(np.float32), (75, 75), 'bilinear')
    expected = reference(x / 127.5 - 1., training=False).numpy()
    self.assertAllClose(got, expected, rtol=1e-4, atol=1e-5)
    self.assertAllClose(features(images[1]), expected[1], rtol=1e-4,
                        atol=1e-5)
    bogus = os.path.join(self.get_temp_dir(), 'bogus.h5')
    with open(bogus, 'w') as f:
      f.write('not hdf5')
    with self.assertRaisesRegex(ValueError, 'weights_path.*bogus.h5'):
      metrics_lib.InceptionFeatures(bogus, input_size=75)


if __name__ == '__main__':
  tf.test.main()
