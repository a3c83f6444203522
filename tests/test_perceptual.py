"""Tests of inpaint_tf.perceptual: VGG features, TPL/TSL terms and weights."""

import math
import os
import subprocess
import sys
from unittest import mock

import numpy as np
import tensorflow as tf

from inpaint_tf import perceptual
from inpaint_tf import reweighting
from inpaint_tf import vgg as vgg_lib
from inpaint_tf import weights as weights_lib
from inpaint_tf.config import AWAConfig
from inpaint_tf.keras_api import keras
import make_vgg_reference

REFERENCE = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'data',
                         'vgg16_torchvision_reference.npz')


def _images(seed, shape=(2, 32, 32)):
  rng = np.random.default_rng(seed)
  gt = rng.uniform(-1, 1, shape + (3,)).astype(np.float32)
  pred = np.clip(gt + rng.normal(0, 0.3, gt.shape), -1, 1).astype(np.float32)
  mask = np.zeros(shape + (1,), np.float32)
  mask[:, 8:24, 4:20] = 1.0
  return tf.constant(pred), tf.constant(gt), tf.constant(mask)


def _np_gram(f):
  b, h, w, c = f.shape
  flat = f.reshape(b, h * w, c).astype(np.float64)
  return np.einsum('bnc,bnd->bcd', flat, flat) / (c * h * w)


class VGGFeaturesTest(tf.test.TestCase):

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    keras.utils.set_random_seed(1)
    cls.vgg = vgg_lib.VGGFeatures(weights=None)

  def test_loads_keras_weights_file_and_matches_keras_vgg16(self):
    keras_vgg = keras.applications.VGG16(
        include_top=False, weights=None, input_shape=(None, None, 3))
    path = os.path.join(self.get_temp_dir(), 'vgg16_notop.h5')
    keras_vgg.save_weights(path)
    vgg = vgg_lib.VGGFeatures(weights=path, convention='keras_caffe')
    pred, _, _ = _images(0, (2, 32, 48))
    reference = keras.Model(
        keras_vgg.input,
        [keras_vgg.get_layer(n).output for n in vgg_lib.FEATURE_LAYERS])(
            keras.applications.vgg16.preprocess_input((pred + 1.0) * 127.5))
    got = vgg(pred)
    for g, r, c, s in zip(got, reference, (64, 128, 256), (2, 4, 8)):
      self.assertEqual(g.shape, (2, 32 // s, 48 // s, c))
      self.assertAllClose(g, r, rtol=1e-5, atol=1e-4)
    self.assertEqual(vgg.trainable_weights, [])

  def test_missing_weights_raise_one_clear_error(self):
    root = self.get_temp_dir()
    keras_home = os.path.join(root, 'keras_home')
    home = os.path.join(root, 'home')
    fallback = os.path.join(root, 'fallback')
    with mock.patch.dict(os.environ, {'KERAS_HOME': keras_home,
                                      'HOME': home}), \
         mock.patch.object(weights_lib, 'KERAS_FALLBACK_DIR', fallback):
      folders = [os.path.join(d, 'models')
                 for d in (keras_home, os.path.join(home, '.keras'),
                           fallback)]
      self.assertEqual(weights_lib.keras_cache_dirs(), folders)
      with self.assertRaises(weights_lib.WeightsNotFoundError) as ctx:
        vgg_lib.VGGFeatures(convention='keras_caffe')
      message = str(ctx.exception)
      self.assertIsInstance(ctx.exception, FileNotFoundError)
      self.assertIsInstance(ctx.exception, ValueError)
      self.assertTrue(message.startswith(
          "vgg_weights: expected Keras' VGG-16"), message)
      for folder in folders:
        self.assertIn(folder, message)
      self.assertIn(vgg_lib.VGG16_NOTOP_URL, message)
      self.assertNotIn('\n', message)
      # The default convention asks for the converted torchvision file.
      with self.assertRaisesRegex(
          weights_lib.WeightsNotFoundError,
          '^vgg_weights: expected torchvision VGG-16 .*'
          f'{vgg_lib.TORCHVISION_FILE}.*tools.convert_vgg'):
        vgg_lib.VGGFeatures()
      # A weights file in the fallback cache is found, then one in
      # KERAS_HOME, which is searched first.
      keras_vgg = keras.applications.VGG16(
          include_top=False, weights=None, input_shape=(None, None, 3))
      for folder in (folders[2], folders[0]):
        os.makedirs(folder)
        keras_vgg.save_weights(os.path.join(folder, vgg_lib.VGG16_NOTOP_FILE))
        self.assertEqual(weights_lib.cached(vgg_lib.VGG16_NOTOP_FILE),
                         os.path.join(folder, vgg_lib.VGG16_NOTOP_FILE))
      loaded = vgg_lib.VGGFeatures(convention='keras_caffe')
      pred, _, _ = _images(3)
      want = keras.Model(keras_vgg.input,
                         keras_vgg.get_layer('block1_pool').output)(
                             keras.applications.vgg16.preprocess_input(
                                 (pred + 1.0) * 127.5))
      self.assertAllClose(loaded(pred)[0], want, rtol=1e-5, atol=1e-4)
    with self.assertRaisesRegex(FileNotFoundError,
                                "^vgg_weights: expected .*'/nonexistent/"
                                r"vgg.h5' \(no such file\)"):
      vgg_lib.VGGFeatures(weights='/nonexistent/vgg.h5')

  def test_weights_file_without_vgg_layers_is_rejected(self):
    path = os.path.join(self.get_temp_dir(), 'other.h5')
    model = keras.Sequential([keras.layers.Dense(2, name='dense')])
    model.build((None, 3))
    model.save_weights(path)
    with self.assertRaisesRegex(ValueError, 'lacks VGG-16 layers'):
      vgg_lib.VGGFeatures(weights=path, convention='keras_caffe')

  def test_file_of_the_other_convention_is_rejected(self):
    keras_file = os.path.join(self.get_temp_dir(), 'keras_vgg.h5')
    vgg_lib.network(3, 'vgg').save_weights(keras_file)
    with self.assertRaisesRegex(
        ValueError, "^vgg_weights: expected torchvision VGG-16 .* got Keras' "
        'HDF5 weights .* --vgg_convention=keras_caffe'):
      vgg_lib.VGGFeatures(weights=keras_file)
    npz = os.path.join(self.get_temp_dir(), 'torchvision_vgg.npz')
    np.savez(npz, **vgg_lib.torchvision_arrays(
        make_vgg_reference.random_state_dict(), num_blocks=3))
    with self.assertRaisesRegex(
        ValueError, "^vgg_weights: expected Keras' VGG-16 .* got the .npz "
        '.* --vgg_convention=torchvision'):
      vgg_lib.VGGFeatures(weights=npz, convention='keras_caffe')
    with self.assertRaisesRegex(ValueError,
                                '^vgg_convention: expected one of'):
      vgg_lib.VGGFeatures(weights=None, convention='caffe')

  def test_torchvision_file_with_missing_or_misshapen_layers(self):
    arrays = vgg_lib.torchvision_arrays(
        make_vgg_reference.random_state_dict(), num_blocks=3)
    for name, change in (('block3_conv3_kernel', None),
                         ('block2_conv1_bias', np.zeros(7, np.float32))):
      broken = dict(arrays)
      if change is None:
        del broken[name]
      else:
        broken[name] = change
      path = os.path.join(self.get_temp_dir(), f'broken_{name}.npz')
      np.savez(path, **broken)
      with self.assertRaisesRegex(
          ValueError, f"^vgg_weights: .* array '{name}' expected shape .*, "
          'got .*tools.convert_vgg'):
        vgg_lib.VGGFeatures(weights=path)
    state = make_vgg_reference.random_state_dict()
    del state['features.12.bias']
    with self.assertRaisesRegex(ValueError, r'^input: missing features\.12'
                                r'\.bias \(VGG-16 layer block3_conv2\)'):
      vgg_lib.torchvision_arrays(state, num_blocks=3, argument='input')

  def test_config_round_trip(self):
    config = self.vgg.get_config()
    self.assertIsNone(config['weights'])
    self.assertEqual(config['convention'], 'torchvision')
    clone = vgg_lib.VGGFeatures.from_config(config)
    self.assertEqual(clone.get_config(), config)

  def test_bad_input_names_argument(self):
    with self.assertRaisesRegex(ValueError, 'images: expected'):
      self.vgg(tf.zeros([1, 16, 16, 4]))
    pred, gt, mask = _images(1)
    with self.assertRaisesRegex(ValueError, 'mask: expected'):
      perceptual.perceptual_style_terms(self.vgg, pred, gt, mask[..., 0])

  def test_gram_matrix_matches_numpy(self):
    f = np.random.default_rng(2).normal(size=(2, 3, 5, 4)).astype(np.float32)
    self.assertAllClose(perceptual.gram_matrix(tf.constant(f)), _np_gram(f),
                        rtol=1e-5, atol=1e-6)

  def test_terms_match_independent_computation(self):
    pred, gt, mask = _images(3)
    terms = perceptual.perceptual_style_terms(self.vgg, pred, gt, mask)
    self.assertLen(terms, 6)
    m = mask.numpy()
    comp = pred.numpy() * m + gt.numpy() * (1 - m)
    f_out = [f.numpy().astype(np.float64) for f in self.vgg(pred)]
    f_comp = [f.numpy().astype(np.float64) for f in self.vgg(comp)]
    f_gt = [f.numpy().astype(np.float64) for f in self.vgg(gt)]
    expected = []
    for a, b, c in zip(f_out, f_comp, f_gt):
      expected.append(np.abs(a - c).mean() + np.abs(b - c).mean())
    for a, b, c in zip(f_out, f_comp, f_gt):
      expected.append(np.abs(_np_gram(a) - _np_gram(c)).mean() +
                      np.abs(_np_gram(b) - _np_gram(c)).mean())
    self.assertAllClose(tf.stack(terms), expected, rtol=1e-4)

  def test_directional_derivatives_match_reverse_mode(self):
    pred, gt, mask = _images(4)
    tangent = tf.random.stateless_normal(pred.shape, seed=[4, 2])
    keras.utils.set_random_seed(4)
    caffe = vgg_lib.VGGFeatures(weights=None, convention='keras_caffe')
    for features in (self.vgg, caffe):
      with tf.GradientTape(persistent=True) as tape:
        tape.watch(pred)
        terms = perceptual.perceptual_style_terms(features, pred, gt, mask)
      expected = [tf.reduce_sum(tape.gradient(t, pred) * tangent)
                  for t in terms]
      got = terms.directional_derivatives(tangent)
      scale = max(float(tf.reduce_max(tf.abs(expected))), 1e-12)
      self.assertAllClose(got / scale, tf.stack(expected) / scale, atol=1e-4,
                          msg=features.convention)
      self.assertIs(terms.pred, pred)


class TorchvisionReferenceTest(tf.test.TestCase):
  """``VGGFeatures`` against PyTorch's features (tests/make_vgg_reference.py).

  The reference holds what torchvision's ``vgg16().features[:17]`` gives on
  [-1, 1] images with random weights; the test rebuilds those weights in
  torchvision's layout and passes them through the project's converter.
  """

  def test_converted_weights_give_pytorch_features(self):
    state = make_vgg_reference.random_state_dict()
    with np.load(REFERENCE) as data:
      reference = {k: data[k] for k in data.files}
    self.assertAllClose(
        [v.astype(np.float64).sum() for v in state.values()],
        reference['weight_sums'], rtol=1e-12, atol=0)
    path = os.path.join(self.get_temp_dir(), 'vgg16_torchvision.npz')
    np.savez(path, **vgg_lib.torchvision_arrays(state, num_blocks=3))
    features = vgg_lib.VGGFeatures(weights=path)
    self.assertEqual(features.convention, 'torchvision')
    got = features(tf.constant(reference['images']))
    for name, g in zip(('pool1', 'pool2', 'pool3'), got):
      self.assertEqual(g.shape, reference[name].shape)
      self.assertGreater(np.abs(reference[name]).max(), 1.0)
      self.assertAllClose(g, reference[name], rtol=1e-5, atol=1e-5, msg=name)
    # The Caffe convention on the same weights is another function.
    caffe = vgg_lib.VGGFeatures(weights=None, convention='keras_caffe')
    vgg_lib.set_arrays(caffe._network,  # pylint: disable=protected-access
                       vgg_lib.torchvision_arrays(state, num_blocks=3), 3)
    other = caffe(tf.constant(reference['images']))[0]
    self.assertGreater(np.abs(other - reference['pool1']).max(), 1.0)


class CompareVGGToolTest(tf.test.TestCase):
  """tools/compare_vgg.py on weight files of both conventions."""

  def test_prints_both_conventions_and_their_ratio(self):
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    npz = os.path.join(self.get_temp_dir(), 'torchvision.npz')
    np.savez(npz, **vgg_lib.torchvision_arrays(
        make_vgg_reference.random_state_dict(), num_blocks=3))
    h5 = os.path.join(self.get_temp_dir(), 'keras.h5')
    keras.utils.set_random_seed(3)
    vgg_lib.network(3, 'vgg').save_weights(h5)
    run = lambda *flags: subprocess.run(
        [sys.executable, '-m', 'tools.compare_vgg', '--image_size=32',
         *flags], cwd=root, capture_output=True, text=True, timeout=300,
        check=False)
    proc = run(f'--torchvision_weights={npz}', f'--keras_weights={h5}')
    self.assertEqual(proc.returncode, 0, proc.stderr)
    rows = [line.split() for line in proc.stdout.splitlines()
            if line.split() and line.split()[0] in perceptual.TERM_NAMES]
    self.assertEqual([r[0] for r in rows], list(perceptual.TERM_NAMES))
    for _, a, b, ratio in rows:
      self.assertGreater(float(a), 0.0)
      self.assertAllClose(float(ratio), float(b) / float(a), rtol=1e-3)
    proc = run(f'--torchvision_weights={h5}', f'--keras_weights={h5}')
    self.assertEqual(proc.returncode, 1)
    self.assertRegex(proc.stderr, "^error: --torchvision_weights: expected "
                     "torchvision VGG-16 weights .* got Keras' HDF5")
    self.assertEqual(len(proc.stderr.strip().splitlines()), 1)


class TunableWeightsTest(tf.test.TestCase):

  def test_tpl_tsl_start_at_standard_weights_and_are_bounded(self):
    config = AWAConfig()
    weights = reweighting.tpl_tsl_weights(config)
    base = [config.perceptual_base] * 3 + [config.style_base] * 3
    scale = [config.perceptual_scale] * 3 + [config.style_scale] * 3
    self.assertAllClose(weights(), base, rtol=1e-6)
    self.assertAllClose(weights.phi[:3], [config.phi_init[0]] * 3)
    self.assertAllClose(weights.phi[3:], [config.phi_init[1]] * 3)
    self.assertEqual(weights.names, perceptual.TERM_NAMES)
    weights.phi.assign([50.0] * 6)
    self.assertAllClose(weights(), np.multiply(base, scale), rtol=1e-6)
    weights.phi.assign([-50.0] * 6)
    self.assertAllClose(weights(), np.zeros(6), atol=1e-12)
    # sigmoid(-log(s - 1)) = 1 / s for the generic form too.
    generic = reweighting.TunableWeights([2.0], [5.0])
    self.assertAllClose(generic.phi, [-math.log(4.0)])
    self.assertEqual(generic.names, ('term_1',))

  def test_bad_arguments(self):
    with self.assertRaisesRegex(ValueError, 'scale: expected values > 1'):
      reweighting.TunableWeights([1.0, 1.0], [3.0, 1.0])
    with self.assertRaisesRegex(ValueError, 'scale: expected 2 values'):
      reweighting.TunableWeights([1.0, 1.0], [3.0])

  def test_tunable_loss_is_weighted_sum(self):
    vgg = vgg_lib.VGGFeatures(weights=None)
    loss = perceptual.TunableAuxiliaryLoss(reweighting.tpl_tsl_weights(),
                                           features=vgg)
    pred, gt, mask = _images(5)
    terms = tf.stack(loss.terms(pred, gt, mask))
    config = AWAConfig()
    standard = (config.perceptual_base * tf.reduce_sum(terms[:3]) +
                config.style_base * tf.reduce_sum(terms[3:]))
    self.assertAllClose(loss(pred, gt, mask), standard, rtol=1e-5)
    self.assertAllClose(loss(pred, gt, mask, weights=tf.ones(6)),
                        tf.reduce_sum(terms), rtol=1e-5)


if __name__ == '__main__':
  tf.test.main()
