"""Tests of inpaint_tf.lpips against an independent numpy LPIPS in the
PyTorch layout (NCHW tensors, [Cout,Cin,kh,kw] kernels), fed with random
torch-shaped state dicts through the same conversion as tools/convert_lpips.
"""

import importlib.util
import os
import subprocess
import sys

import numpy as np
import tensorflow as tf

from inpaint_tf import lpips

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# torchvision vgg16().features: conv indices and where LPIPS taps a ReLU.
_CONV_INDICES = (0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28)
_TAPS_AFTER = (2, 7, 14, 21, 28)
_POOL_BEFORE = (5, 10, 17, 24)
_WIDTHS = (64, 64, 128, 128, 256, 256, 256, 512, 512, 512, 512, 512, 512)


def _torch_state_dicts(seed):
  rng = np.random.default_rng(seed)
  backbone, cin = {}, 3
  for index, cout in zip(_CONV_INDICES, _WIDTHS):
    std = np.sqrt(2.0 / (9 * cin))
    backbone[f'features.{index}.weight'] = rng.normal(
        0, std, (cout, cin, 3, 3)).astype(np.float32)
    backbone[f'features.{index}.bias'] = rng.normal(
        0, 0.05, (cout,)).astype(np.float32)
    cin = cout
  heads = {f'lin{k}.model.1.weight': rng.uniform(
      0, 1, (1, c, 1, 1)).astype(np.float32)
           for k, c in enumerate(lpips.CHANNELS)}
  return heads, backbone


def _np_conv_nchw(x, w, b):
  """Cross-correlation with padding 1 (torch.nn.Conv2d(k=3, padding=1))."""
  n, _, h, wd = x.shape
  xp = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
  out = np.zeros((n, w.shape[0], h, wd))
  for i in range(3):
    for j in range(3):
      out += np.einsum('nchw,oc->nohw', xp[:, :, i:i + h, j:j + wd],
                       w[:, :, i, j])
  return out + b[None, :, None, None]


def _np_lpips(heads, backbone, x0, x1):
  """LPIPS v0.1 (VGG) of NHWC images in [-1, 1], computed in NCHW float64."""
  shift = np.array(lpips.SHIFT)[None, :, None, None]
  scale = np.array(lpips.SCALE)[None, :, None, None]

  def taps(x):
    h = (x.transpose(0, 3, 1, 2).astype(np.float64) - shift) / scale
    out = []
    for index in _CONV_INDICES:
      if index in _POOL_BEFORE:
        n, c, hh, ww = h.shape
        h = h[:, :, :hh // 2 * 2, :ww // 2 * 2].reshape(
            n, c, hh // 2, 2, ww // 2, 2).max(axis=(3, 5))
      h = np.maximum(_np_conv_nchw(
          h, backbone[f'features.{index}.weight'].astype(np.float64),
          backbone[f'features.{index}.bias'].astype(np.float64)), 0)
      if index in _TAPS_AFTER:
        out.append(h)
    return out

  total = 0.0
  for k, (f0, f1) in enumerate(zip(taps(x0), taps(x1))):
    n0 = f0 / (np.sqrt((f0 ** 2).sum(1, keepdims=True)) + 1e-10)
    n1 = f1 / (np.sqrt((f1 ** 2).sum(1, keepdims=True)) + 1e-10)
    lin = heads[f'lin{k}.model.1.weight'].astype(np.float64)[0, :, 0, 0]
    total = total + np.einsum('nchw,c->nhw', (n0 - n1) ** 2, lin).mean((1, 2))
  return total


class LPIPSTest(tf.test.TestCase):

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    cls.heads, cls.backbone = _torch_state_dicts(0)
    cls.path = os.path.join(tf.compat.v1.test.get_temp_dir(), 'lpips_vgg.npz')
    np.savez(cls.path, **lpips.arrays_from_torch(cls.heads, cls.backbone))
    cls.lpips = lpips.LPIPS(weights=cls.path)

  def test_matches_numpy_reference(self):
    rng = np.random.default_rng(1)
    x0 = rng.uniform(-1, 1, (2, 32, 48, 3)).astype(np.float32)
    x1 = np.clip(x0 + rng.normal(0, 0.3, x0.shape), -1, 1).astype(np.float32)
    got = self.lpips(tf.constant(x0), tf.constant(x1))
    self.assertEqual(got.shape, (2,))
    self.assertAllClose(got, _np_lpips(self.heads, self.backbone, x0, x1),
                        rtol=2e-4)

  def test_identical_images_give_zero_and_finite_gradient(self):
    x = tf.random.stateless_uniform([1, 16, 16, 3], seed=[1, 2],
                                    minval=-1, maxval=1)
    # A flat image: many all-zero feature vectors, where a plain norm's
    # gradient would be NaN.
    flat = tf.concat([x, -tf.ones_like(x)], axis=0)
    with tf.GradientTape() as tape:
      tape.watch(flat)
      d = self.lpips(flat, tf.stop_gradient(flat))
      total = tf.reduce_sum(d)
    self.assertAllClose(d, [0.0, 0.0])
    grad = tape.gradient(total, flat)
    self.assertTrue(np.all(np.isfinite(grad.numpy())))

  def test_config_round_trip_and_frozen(self):
    config = self.lpips.get_config()
    self.assertEqual(config['weights'], self.path)
    clone = lpips.LPIPS.from_config(config)
    self.assertEqual(clone.get_config(), config)
    self.assertEqual(self.lpips.trainable_weights, [])

  def test_missing_or_malformed_weights(self):
    with self.assertRaisesRegex(ValueError, 'convert_lpips'):
      lpips.LPIPS()
    with self.assertRaisesRegex(FileNotFoundError, 'no such file'):
      lpips.LPIPS(weights='/nonexistent/lpips.npz')
    arrays = lpips.arrays_from_torch(self.heads, self.backbone)
    arrays['lin_2'] = arrays['lin_2'][:10]
    bad = os.path.join(self.get_temp_dir(), 'bad.npz')
    np.savez(bad, **arrays)
    with self.assertRaisesRegex(ValueError, "'lin_2' expected shape"):
      lpips.LPIPS(weights=bad)

  def test_conversion_errors_name_the_entry(self):
    heads = dict(self.heads)
    del heads['lin3.model.1.weight']
    with self.assertRaisesRegex(ValueError, 'lin3'):
      lpips.arrays_from_torch(heads, self.backbone)
    backbone = dict(self.backbone)
    del backbone['features.19.bias']
    with self.assertRaisesRegex(ValueError, r'features\.19\.bias'):
      lpips.arrays_from_torch(self.heads, backbone)
    # A full LPIPS state dict (net.sliceN.i.*) converts like torchvision's.
    renamed = {k.replace('features.', 'net.slice1.'): v
               for k, v in self.backbone.items()}
    a = lpips.arrays_from_torch(self.heads, renamed)
    b = lpips.arrays_from_torch(self.heads, self.backbone)
    self.assertAllEqual(a['block4_conv2_kernel'], b['block4_conv2_kernel'])

  def test_bad_input_names_argument(self):
    with self.assertRaisesRegex(ValueError, 'reference: expected'):
      self.lpips(tf.zeros([1, 16, 16, 3]), tf.zeros([1, 16, 16, 1]))


  def test_converter_without_torch_says_what_is_missing(self):
    if importlib.util.find_spec('torch') is not None:
      self.skipTest('PyTorch is installed')
    proc = subprocess.run(
        [sys.executable, '-m', 'tools.convert_lpips', '--input=vgg.pth',
         f'--output={os.path.join(self.get_temp_dir(), "out.npz")}'],
        cwd=ROOT, env=dict(os.environ, PYTHONPATH=ROOT), capture_output=True,
        text=True, timeout=300, check=False)
    self.assertEqual(proc.returncode, 1)
    self.assertRegex(proc.stderr, 'error: this converter needs PyTorch')


if __name__ == '__main__':
  tf.test.main()
