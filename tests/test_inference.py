"""Tests of inpaint_tf.inference: padding, compositing, file-level API."""

import os
import tempfile

from absl.testing import parameterized
import numpy as np
import tensorflow as tf

from inpaint_tf import image_io
from inpaint_tf import inference
from inpaint_tf import inpainting
from inpaint_tf import plots
import serving_testutil as util


def _pattern_generator(calls):
  """A stand-in generator: records its inputs, returns a position pattern."""

  def fn(masked, mask):
    calls.append((masked.numpy(), mask.numpy()))
    shape = tf.shape(masked)
    y = tf.cast(tf.range(shape[1]), tf.float32)[None, :, None, None]
    x = tf.cast(tf.range(shape[2]), tf.float32)[None, None, :, None]
    c = tf.constant([0., 1., 2.])[None, None, None, :]
    pattern = tf.sin(0.3 * y + 0.7 * x + c)
    return tf.broadcast_to(pattern, tf.shape(masked))

  return fn


def _np_pattern(n, h, w):
  y, x = np.mgrid[0:h, 0:w].astype(np.float32)
  p = np.sin(0.3 * y[..., None] + 0.7 * x[..., None] +
             np.array([0., 1., 2.], np.float32))
  u8 = np.clip(np.round((p + 1.) * 127.5), 0, 255).astype(np.uint8)
  return np.broadcast_to(u8, (n, h, w, 3))


class PadTest(tf.test.TestCase, parameterized.TestCase):

  @parameterized.parameters((5, 7), (16, 16), (17, 3), (1, 1), (20, 33))
  def test_reflect_matches_numpy(self, h, w):
    x = np.random.default_rng(0).normal(size=(2, h, w, 3)).astype(np.float32)
    out = inference.pad_to_multiple(tf.constant(x), 16, 'reflect').numpy()
    ph, pw = -(-h // 16) * 16, -(-w // 16) * 16
    # numpy repeats the reflection for pads larger than the axis.
    expected = np.pad(x, [(0, 0), (0, ph - h), (0, pw - w), (0, 0)],
                      mode='reflect')
    self.assertAllEqual(out, expected)

  def test_constant_and_dynamic_shape(self):
    fn = tf.function(
        lambda x: inference.pad_to_multiple(x, 16, 'constant', 7.),
        input_signature=[tf.TensorSpec([None, None, None, 1], tf.float32)])
    out = fn(tf.ones([1, 18, 5, 1])).numpy()
    self.assertEqual(out.shape, (1, 32, 16, 1))
    self.assertAllEqual(out[0, :18, :5], np.ones((18, 5, 1)))
    self.assertEqual(out.sum(), 18 * 5 + 7 * (32 * 16 - 18 * 5))

  def test_bad_mode(self):
    with self.assertRaisesRegex(ValueError, 'pad_mode'):
      inference.pad_to_multiple(tf.zeros([1, 4, 4, 1]), 16, 'wrap')


class InpaintTest(tf.test.TestCase, parameterized.TestCase):

  @parameterized.parameters('reflect', 'constant')
  def test_pads_runs_crops_and_composites(self, pad_mode):
    n, h, w = 2, 19, 35
    image = util.random_image(h, w)[None].repeat(n, 0)
    mask = util.box_mask(h, w, 3, 4, 9, 20)[None].repeat(n, 0)
    mask[1, 0:2, :] = 1  # Any non-zero value is a hole.
    calls = []
    out = inference.inpaint(_pattern_generator(calls), image, mask, pad_mode)

    masked, m = calls[0]
    self.assertEqual(masked.shape, (n, 32, 48, 3))
    self.assertEqual(m.shape, (n, 32, 48, 1))
    self.assertAllEqual(np.unique(m), [0., 1.])
    hole = mask != 0
    self.assertAllEqual(m[:, :h, :w], hole.astype(np.float32))
    self.assertAllEqual(masked[:, :h, :w] * hole, np.zeros_like(masked[:, :h,
                                                                       :w]))
    if pad_mode == 'constant':
      self.assertTrue(np.all(m[:, h:] == 1) and np.all(m[:, :, w:] == 1))
    else:  # Mirrored about the last row: padded row h + k is row h - 2 - k.
      self.assertAllEqual(m[:, h:h + 3, :w], m[:, h - 2:h - 5:-1, :w])

    expected = np.where(hole, _np_pattern(n, h, w), image)
    self.assertAllEqual(out, expected)

  def test_all_known_mask_returns_input_without_running(self):
    image = util.random_image(10, 12)

    def fail(masked, mask):
      raise AssertionError('generator called')

    out = inference.inpaint(fail, image, np.zeros((10, 12), np.uint8))
    self.assertAllEqual(out, image)
    self.assertIsNot(out, image)

  def test_shapes_and_broadcast_mask(self):
    image = util.random_image(16, 20)
    calls = []
    out = inference.inpaint(_pattern_generator(calls), image,
                            np.eye(16, 20, dtype=bool))
    self.assertEqual(out.shape, (16, 20, 3))
    batch = np.stack([image, image[::-1]])
    out = inference.inpaint(_pattern_generator(calls), batch,
                            util.box_mask(16, 20, 0, 0, 4, 4)[None])
    self.assertEqual(out.shape, (2, 16, 20, 3))
    self.assertAllEqual(out[1, 4:], batch[1, 4:])

  def test_bad_input(self):
    image = util.random_image(16, 20)
    gen = _pattern_generator([])
    with self.assertRaisesRegex(ValueError, r'mask: expected \[16,20\]'):
      inference.inpaint(gen, image, np.ones((16, 21, 1)))
    with self.assertRaisesRegex(ValueError, 'image: expected uint8'):
      inference.inpaint(gen, image.astype(np.float32), np.ones((16, 20, 1)))
    with self.assertRaisesRegex(ValueError, r'image: expected \[H,W,3\]'):
      inference.inpaint(gen, image[..., :2], np.ones((16, 20, 1)))
    with self.assertRaisesRegex(ValueError, 'generator'):
      inference.inpaint(42, image, np.ones((16, 20, 1)))
    with self.assertRaisesRegex(ValueError, 'pad_mode'):
      inference.inpaint(gen, image, np.ones((16, 20, 1)), pad_mode='edge')


class GeneratorInpaintTest(tf.test.TestCase):
  """With a real (tiny) generator, against a NumPy re-computation."""

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    cls.gen = util.make_generator()
    cls.tmp = tempfile.mkdtemp()
    cls.run_dir = util.make_run_dir(os.path.join(cls.tmp, 'run'), cls.gen)

  def test_matches_numpy_padding_and_compositing(self):
    h, w = 21, 27
    image = util.random_image(h, w, seed=1)
    mask = util.box_mask(h, w, 5, 6, 10, 12)
    out = inference.inpaint(self.gen, image, mask)

    x = image.astype(np.float32) / 127.5 - 1.
    m = (mask != 0).astype(np.float32)
    pad = [(0, 32 - h), (0, 32 - w), (0, 0)]
    xp, mp = np.pad(x, pad, 'reflect'), np.pad(m, pad, 'reflect')
    pred = self.gen((tf.constant((xp * (1 - mp))[None]),
                     tf.constant(mp[None])), training=False).numpy()[0]
    pred = np.clip(np.round((pred[:h, :w] + 1.) * 127.5), 0, 255)
    expected = np.where(mask != 0, pred.astype(np.uint8), image)
    self.assertAllEqual(out, expected)
    self.assertTrue(np.any(out[mask[..., 0] != 0] != image[mask[..., 0] != 0]))

  def test_inpaint_files(self):
    h, w = 20, 26
    image = util.random_image(h, w, seed=2)
    folder = tempfile.mkdtemp(dir=self.tmp)
    image_path = util.write_png(os.path.join(folder, 'in.png'), image)
    rgba = np.zeros((h, w, 4), np.uint8)
    rgba[..., 3] = 255  # Opaque alpha is not a hole.
    rgba[4:12, 5:15, 0] = 200
    mask_path = os.path.join(folder, 'mask.png')
    with open(mask_path, 'wb') as f:
      f.write(tf.io.encode_png(rgba).numpy())
    out_path = os.path.join(folder, 'sub', 'out.png')
    grid_path = os.path.join(folder, 'grid.jpg')
    result = inpainting.inpaint_files(image_path, mask_path, out_path,
                                      checkpoint_dir=self.run_dir,
                                      grid_path=grid_path)
    hole = rgba[..., :1] != 0
    self.assertAllEqual(result, inference.inpaint(self.gen, image, hole))
    self.assertAllEqual(image_io.load_image(out_path), result)
    self.assertEqual(image_io.load_image(grid_path).shape,
                     (h, 3 * w + 2 * plots.GRID_GUTTER, 3))

    # A mask without holes: the input comes back, the model is not loaded.
    empty = util.write_png(os.path.join(folder, 'empty.png'),
                           np.zeros((h, w, 1), np.uint8))
    same = inpainting.inpaint_files(image_path, empty,
                                    os.path.join(folder, 'same.png'),
                                    checkpoint_dir='/nonexistent')
    self.assertAllEqual(same, image)

    # Bad input: one ValueError, nothing written.
    small = util.write_png(os.path.join(folder, 'small.png'),
                           np.zeros((h, w - 1, 1), np.uint8))
    text = os.path.join(folder, 'mask.txt')
    with open(text, 'w') as f:
      f.write('not an image')
    empty_file = os.path.join(folder, 'empty_file.png')
    open(empty_file, 'wb').close()
    truncated = os.path.join(folder, 'truncated.png')
    with open(image_path, 'rb') as f, open(truncated, 'wb') as g:
      g.write(f.read()[:100])
    bad_files = ((os.path.join(folder, 'missing.png'), 'No such file'),
                 (empty_file, 'an empty file'),
                 (truncated, 'truncated'),
                 (text, 'not a JPEG, PNG'),
                 (os.path.join(folder, 'sub'), 'Is a directory'))
    before = sorted(os.listdir(folder))
    # Each message starts with the argument at fault.
    for bad, reason in bad_files:
      for name in ('image', 'mask'):
        with self.subTest(file=os.path.basename(bad), argument=name):
          paths = {'image': image_path, 'mask': mask_path, name: bad}
          with self.assertRaisesRegex(ValueError,
                                      f'^{name}: expected .*{reason}'):
            inpainting.inpaint_files(paths['image'], paths['mask'],
                                     os.path.join(folder, 'bad.png'),
                                     checkpoint_dir=self.run_dir)
    with self.assertRaisesRegex(ValueError, r'^mask: expected a 20x26 mask'):
      inpainting.inpaint_files(image_path, small,
                               os.path.join(folder, 'bad.png'),
                               checkpoint_dir=self.run_dir)
    for output, grid, name in ((folder, None, 'output'),
                               (out_path, os.path.join(folder, 'sub'),
                                'grid')):
      with self.assertRaisesRegex(ValueError,
                                  f'^{name}: expected a file name, got the '
                                  'directory'):
        inpainting.inpaint_files(image_path, mask_path, output,
                                 checkpoint_dir=self.run_dir, grid_path=grid)
    with self.assertRaisesRegex(ValueError, 'output: expected a .png'):
      inpainting.inpaint_files(image_path, mask_path,
                               os.path.join(folder, 'bad.tif'),
                               checkpoint_dir=self.run_dir)
    with self.assertRaisesRegex(ValueError, 'exactly one'):
      inpainting.inpaint_files(image_path, mask_path, out_path)
    self.assertEqual(sorted(os.listdir(folder)), before)


if __name__ == '__main__':
  tf.test.main()
