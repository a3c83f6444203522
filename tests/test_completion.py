"""Tests of inpaint_tf.completion and inpaint_tf.inpainter: padding,
compositing, HD strategies, the file and folder API."""

import dataclasses
import io
import os
import tempfile
from unittest import mock

from absl.testing import parameterized
import numpy as np
import tensorflow as tf

from inpaint_tf import image_io
from inpaint_tf import completion
from inpaint_tf import inpainter
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
    out = completion.pad_to_multiple(tf.constant(x), 16, 'reflect').numpy()
    ph, pw = -(-h // 16) * 16, -(-w // 16) * 16
    # numpy repeats the reflection for pads larger than the axis.
    expected = np.pad(x, [(0, 0), (0, ph - h), (0, pw - w), (0, 0)],
                      mode='reflect')
    self.assertAllEqual(out, expected)

  def test_constant_and_dynamic_shape(self):
    fn = tf.function(
        lambda x: completion.pad_to_multiple(x, 16, 'constant', 7.),
        input_signature=[tf.TensorSpec([None, None, None, 1], tf.float32)])
    out = fn(tf.ones([1, 18, 5, 1])).numpy()
    self.assertEqual(out.shape, (1, 32, 16, 1))
    self.assertAllEqual(out[0, :18, :5], np.ones((18, 5, 1)))
    self.assertEqual(out.sum(), 18 * 5 + 7 * (32 * 16 - 18 * 5))

  def test_bad_mode(self):
    with self.assertRaisesRegex(ValueError, 'pad_mode'):
      completion.pad_to_multiple(tf.zeros([1, 4, 4, 1]), 16, 'wrap')


class InpaintTest(tf.test.TestCase, parameterized.TestCase):

  @parameterized.parameters('reflect', 'constant')
  def test_pads_runs_crops_and_composites(self, pad_mode):
    n, h, w = 2, 19, 35
    image = util.random_image(h, w)[None].repeat(n, 0)
    mask = util.box_mask(h, w, 3, 4, 9, 20)[None].repeat(n, 0)
    mask[1, 0:2, :] = 1  # Any non-zero value is a hole.
    calls = []
    out = util.inpaint(_pattern_generator(calls), image, mask, pad_mode,
                       hd_strategy='original')

    # One call per image.
    self.assertLen(calls, n)
    masked, m = (np.concatenate(parts) for parts in zip(*calls))
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

    out = util.inpaint(fail, image, np.zeros((10, 12), np.uint8))
    self.assertAllEqual(out, image)
    self.assertIsNot(out, image)

  def test_shapes_and_broadcast_mask(self):
    image = util.random_image(16, 20)
    calls = []
    out = util.inpaint(_pattern_generator(calls), image,
                            np.eye(16, 20, dtype=bool))
    self.assertEqual(out.shape, (16, 20, 3))
    batch = np.stack([image, image[::-1]])
    out = util.inpaint(_pattern_generator(calls), batch,
                            util.box_mask(16, 20, 0, 0, 4, 4)[None])
    self.assertEqual(out.shape, (2, 16, 20, 3))
    self.assertAllEqual(out[1, 4:], batch[1, 4:])

  def test_bad_input(self):
    image = util.random_image(16, 20)
    gen = _pattern_generator([])
    with self.assertRaisesRegex(ValueError, r'mask: expected \[16,20\]'):
      util.inpaint(gen, image, np.ones((16, 21, 1)))
    with self.assertRaisesRegex(ValueError, 'image: expected uint8'):
      util.inpaint(gen, image.astype(np.float32), np.ones((16, 20, 1)))
    with self.assertRaisesRegex(ValueError, r'image: expected \[H,W,3\]'):
      util.inpaint(gen, image[..., :2], np.ones((16, 20, 1)))
    with self.assertRaisesRegex(ValueError, 'generator'):
      util.inpaint(42, image, np.ones((16, 20, 1)))
    with self.assertRaisesRegex(ValueError, 'pad_mode'):
      util.inpaint(gen, image, np.ones((16, 20, 1)), pad_mode='edge')


class GeneratorInpaintTest(tf.test.TestCase):
  """With a real (tiny) generator, against a NumPy re-computation."""

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    cls.gen = util.make_generator()
    cls.tmp = tempfile.mkdtemp()
    cls.run_dir = util.make_run_dir(os.path.join(cls.tmp, 'run'), cls.gen)
    cls.load = staticmethod(
        lambda: inpainter.load_inpainter(checkpoint_dir=cls.run_dir))

  def test_matches_numpy_padding_and_compositing(self):
    h, w = 21, 27
    image = util.random_image(h, w, seed=1)
    mask = util.box_mask(h, w, 5, 6, 10, 12)
    out = util.inpaint(self.gen, image, mask)

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
    result = inpainter.inpaint_file(self.load, image_path, mask_path,
                                    out_path, grid_path=grid_path)
    hole = rgba[..., :1] != 0
    self.assertAllEqual(result, util.inpaint(self.gen, image, hole))
    self.assertAllEqual(image_io.load_image(out_path), result)
    self.assertEqual(image_io.load_image(grid_path).shape,
                     (h, 3 * w + 2 * plots.GRID_GUTTER, 3))

    # A mask without holes: the input comes back, the model is not loaded.
    empty = util.write_png(os.path.join(folder, 'empty.png'),
                           np.zeros((h, w, 1), np.uint8))
    same = inpainter.inpaint_file(
        lambda: inpainter.load_inpainter(checkpoint_dir='/nonexistent'),
        image_path, empty, os.path.join(folder, 'same.png'))
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
            inpainter.inpaint_file(self.load, paths['image'], paths['mask'],
                                   os.path.join(folder, 'bad.png'))
    with self.assertRaisesRegex(ValueError, r'^mask: expected a 20x26 mask'):
      inpainter.inpaint_file(self.load, image_path, small,
                             os.path.join(folder, 'bad.png'))
    for output, grid, name in ((folder, None, 'output'),
                               (out_path, os.path.join(folder, 'sub'),
                                'grid')):
      with self.assertRaisesRegex(ValueError,
                                  f'^{name}: expected a file name, got the '
                                  'directory'):
        inpainter.inpaint_file(self.load, image_path, mask_path, output,
                               grid_path=grid)
    with self.assertRaisesRegex(ValueError, 'output: expected a .png'):
      inpainter.inpaint_file(self.load, image_path, mask_path,
                             os.path.join(folder, 'bad.tif'))
    with self.assertRaisesRegex(ValueError, 'exactly one'):
      inpainter.inpaint_file(inpainter.load_inpainter, image_path, mask_path,
                             out_path)
    self.assertEqual(sorted(os.listdir(folder)), before)


if __name__ == '__main__':
  tf.test.main()


def _numpy_regions(hole, cell):
  """Boxes of the 8-connected components of hole cells (scipy)."""
  from scipy import ndimage  # pylint: disable=g-import-not-at-top
  h, w = hole.shape
  rows, cols = -(-h // cell), -(-w // cell)
  padded = np.zeros((rows * cell, cols * cell), bool)
  padded[:h, :w] = hole
  cells = padded.reshape(rows, cell, cols, cell).any(axis=(1, 3))
  labels, count = ndimage.label(cells, structure=np.ones((3, 3)))
  boxes = []
  for k in range(1, count + 1):
    ys, xs = np.nonzero(labels == k)
    boxes.append((ys.min() * cell, xs.min() * cell,
                  min((ys.max() + 1) * cell, h), min((xs.max() + 1) * cell, w)))
  return sorted(boxes)


class HDStrategyTest(tf.test.TestCase):

  def setUp(self):
    super().setUp()
    self.image = util.random_image(60, 90, seed=3)
    self.mask = np.zeros((60, 90, 1), np.uint8)
    self.mask[5:15, 10:30] = 1        # region A
    self.mask[14:20, 31:33] = 1       # touches A's cells: joins A
    self.mask[40:55, 60:85] = 1       # region B
    self.mask[50, 2] = 1              # a single pixel: region C

  def test_regions_match_scipy_labels(self):
    for cell in (1, 4, 8):
      boxes, owner = completion.hole_regions(
          tf.constant(self.mask[..., 0] > 0), cell)
      self.assertEqual(sorted(map(tuple, boxes.numpy().tolist())),
                       _numpy_regions(self.mask[..., 0] > 0, cell))
      owner = owner.numpy()
      hole = self.mask[..., 0] > 0
      self.assertTrue(np.all(owner[hole] >= 0))
      # Every hole pixel lies in its own region's box.
      for k, (top, left, bottom, right) in enumerate(boxes.numpy()):
        ys, xs = np.nonzero(hole & (owner == k))
        self.assertTrue(np.all((ys >= top) & (ys < bottom) &
                               (xs >= left) & (xs < right)))

  def test_original_equals_whole_batch_completion(self):
    gen = util.make_generator(variant='gepenet')
    fn = lambda masked, m: gen((masked, m), training=False)
    images = np.stack([self.image, self.image[::-1]])
    masks = np.stack([self.mask, self.mask[:, ::-1]])
    expected = completion.complete_uint8(fn, tf.constant(images),
                                         tf.constant(masks)).numpy()
    got = completion.complete_hd(fn, tf.constant(images), tf.constant(masks),
                                 'original', 0, 16).numpy()
    self.assertAllEqual(got, expected)

  def test_crop_completes_each_region_in_its_box(self):
    """Each region's pixels equal the completion of its box + margin."""
    calls = []
    margin = 6
    out = util.inpaint(_pattern_generator(calls), self.image, self.mask,
                       hd_strategy='crop', hd_crop_margin=margin,
                       hd_resize_limit=512)
    hole = self.mask[..., 0] > 0
    self.assertAllEqual(out[~hole], self.image[~hole])
    boxes, owner = completion.hole_regions(tf.constant(hole))
    self.assertLen(calls, 3)  # A, B and C; one network run each.
    for k, (top, left, bottom, right) in enumerate(boxes.numpy()):
      top, left = max(top - margin, 0), max(left - margin, 0)
      bottom, right = min(bottom + margin, 60), min(right + margin, 90)
      # The pattern generator's fill depends on the crop's position.
      crop = util.inpaint(_pattern_generator([]),
                          self.image[top:bottom, left:right],
                          self.mask[top:bottom, left:right],
                          hd_strategy='original')
      own = (owner.numpy() == k) & hole
      self.assertTrue(own.any())
      self.assertAllEqual(out[own], crop[own[top:bottom, left:right]])

  def test_resize_limits_network_input_and_keeps_known_pixels(self):
    for strategy in ('resize', 'crop'):
      calls = []
      out = util.inpaint(_pattern_generator(calls), self.image, self.mask,
                         hd_strategy=strategy, hd_crop_margin=40,
                         hd_resize_limit=32)
      hole = self.mask[..., 0] > 0
      self.assertAllEqual(out[~hole], self.image[~hole])
      self.assertTrue(np.any(out[hole] != self.image[hole]))
      for masked, _ in calls:  # The longer side is scaled to 32 (+ padding).
        self.assertEqual(max(masked.shape[1:3]), 32)
    # An image within the limit is not scaled: 'resize' is 'original'.
    self.assertAllEqual(
        util.inpaint(_pattern_generator([]), self.image, self.mask,
                     hd_strategy='resize', hd_resize_limit=90),
        util.inpaint(_pattern_generator([]), self.image, self.mask,
                     hd_strategy='original'))

  def test_bad_options(self):
    for kwargs, pattern in (
        (dict(hd_strategy='tile'), 'hd_strategy: expected one of'),
        (dict(hd_crop_margin=-1), 'hd_crop_margin: expected an int >= 0'),
        (dict(hd_resize_limit=8), 'hd_resize_limit: expected an int >= 16'),
        (dict(pad_mode='edge'), 'pad_mode: expected one of')):
      with self.assertRaisesRegex(ValueError, pattern):
        completion.CompletionOptions(**kwargs)
    with self.assertRaisesRegex(tf.errors.InvalidArgumentError,
                                'hd_strategy: expected one of'):
      completion.complete_hd(_pattern_generator([]),
                             tf.constant(self.image[None]),
                             tf.constant(self.mask[None]), 'tile', 0, 64)

  def test_original_that_does_not_fit_suggests_crop(self):
    model = inpainter.Inpainter.from_generator(
        util.make_generator(), completion.CompletionOptions(
            hd_strategy='original'))
    with mock.patch.object(inpainter, '_available_memory',
                           return_value=0.5e9):
      with self.assertRaisesRegex(ValueError,
                                  "hd_strategy: with 'original' the 90x60 "
                                  'image needs about .* GB.*use '
                                  '--hd_strategy=crop'):
        model(self.image, self.mask)
      # Crop is not limited by the estimate.
      model(self.image, self.mask, dataclasses.replace(
          model.options, hd_strategy='crop'))


class FolderTest(tf.test.TestCase):

  def test_inpaint_folder(self):
    gen = util.make_generator()
    run = util.make_run_dir(os.path.join(self.get_temp_dir(), 'run'), gen)
    load = lambda: inpainter.load_inpainter(checkpoint_dir=run)
    root = tempfile.mkdtemp(dir=self.get_temp_dir())
    images, masks = os.path.join(root, 'images'), os.path.join(root, 'masks')
    os.makedirs(images)
    os.makedirs(masks)
    pairs = {}
    for i, name in enumerate(('a', 'b')):
      image = util.random_image(20 + i, 30, seed=i)
      mask = util.box_mask(20 + i, 30, 2, 3, 8, 9)
      util.write_png(os.path.join(images, f'{name}.png'), image)
      util.write_png(os.path.join(masks, f'{name}.png'), mask)
      pairs[name] = (image, mask)
    util.write_png(os.path.join(images, 'c.png'), util.random_image(20, 30))
    with open(os.path.join(masks, 'c.png'), 'w') as f:
      f.write('not an image')
    util.write_png(os.path.join(images, 'lonely.png'),
                   util.random_image(20, 30))
    out = os.path.join(root, 'out')
    stream = io.StringIO()
    report = inpainter.inpaint_folder(load, images, masks, out,
                                      progress_stream=stream)
    self.assertEqual(sorted(os.listdir(out)), ['a.png', 'b.png'])
    self.assertEqual(list(report.skipped), ['c'])
    self.assertIn('2/2', stream.getvalue())
    for name, (image, mask) in pairs.items():
      self.assertAllEqual(image_io.load_image(os.path.join(out, f'{name}.png')),
                          util.inpaint(gen, image, mask))
    # A mask of another size stops everything before anything is written.
    util.write_png(os.path.join(masks, 'a.png'),
                   util.box_mask(21, 30, 2, 3, 8, 9))
    out2 = os.path.join(root, 'out2')
    with self.assertRaisesRegex(ValueError, 'mask_dir: expected a 20x30 mask'):
      inpainter.inpaint_folder(load, images, masks, out2)
    self.assertFalse(os.path.exists(out2))
    other = os.path.join(root, 'other')
    os.makedirs(other)
    util.write_png(os.path.join(other, 'x.png'), util.box_mask(20, 30, 2, 3,
                                                               8, 9))
    with self.assertRaisesRegex(ValueError, 'mask_dir: expected masks named'):
      inpainter.inpaint_folder(load, images, other, out2)
    with self.assertRaisesRegex(ValueError, 'image_dir: expected a folder'):
      inpainter.inpaint_folder(load, os.path.join(root, 'none'), masks, out2)
