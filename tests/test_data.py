"""Tests of inpaint_tf.data, data_augment and image_io (tf.data pipeline)."""

import dataclasses
import os
import tempfile

import cv2
import numpy as np
import tensorflow as tf

from inpaint_tf import config as config_lib
from inpaint_tf import data as data_lib
from inpaint_tf import data_augment
from inpaint_tf import demo_images
from inpaint_tf import image_io
from inpaint_tf import masks as masks_lib

SQUARE = config_lib.MaskConfig(hole_size=8, max_delta=4)
# The file order once, without augmentation.
EVALUATION = data_augment.PipelineOptions(training=False, repeat=False)


def _random_image(seed, height, width):
  return np.random.default_rng(seed).integers(0, 256, (height, width, 3),
                                              dtype=np.uint8)


def _write_rgb(path, rgb):
  """Writes an RGB array with OpenCV (which expects BGR)."""
  assert cv2.imwrite(path, rgb[..., ::-1])


def _batches(ds, n):
  return [{k: v.numpy() for k, v in b.items()} for b in ds.take(n)]


class ListImagesTest(tf.test.TestCase):

  def test_folder_walk(self):
    root = tempfile.mkdtemp(dir=self.get_temp_dir())
    os.makedirs(os.path.join(root, 'sub', 'deeper'))
    os.makedirs(os.path.join(root, '.hidden'))
    for name in ('b.PNG', 'a.jpg', 'sub/c.JpEg', 'sub/deeper/d.bmp',
                 'sub/e.gif', 'notes.txt', '._a.jpg', '.hidden/f.png',
                 'sub/g.webp'):
      open(os.path.join(root, name), 'wb').close()
    self.assertEqual(image_io.list_images(root), [
        os.path.join(root, p) for p in
        ('a.jpg', 'b.PNG', 'sub/c.JpEg', 'sub/deeper/d.bmp', 'sub/e.gif')])

  def test_file_list(self):
    root = tempfile.mkdtemp(dir=self.get_temp_dir())
    for name in ('x.png', 'y.png'):
      open(os.path.join(root, name), 'wb').close()
    listing = os.path.join(root, 'list.txt')
    with open(listing, 'w') as f:
      f.write(f'# training files\ny.png\n\n{os.path.join(root, "x.png")}\n'
              'gone.png\n')
    with self.assertLogs('absl', 'WARNING') as logs:
      files = image_io.list_images(listing)
    self.assertEqual(files, [os.path.join(root, 'y.png'),
                             os.path.join(root, 'x.png')])
    self.assertIn('gone.png', logs.output[0])

  def test_missing_and_empty(self):
    root = tempfile.mkdtemp(dir=self.get_temp_dir())
    with self.assertRaisesRegex(ValueError, 'path_or_filelist.*nope'):
      image_io.list_images(os.path.join(root, 'nope'))
    open(os.path.join(root, 'readme.txt'), 'w').close()
    with self.assertRaisesRegex(ValueError, 'folder.*with none'):
      image_io.list_images(root)
    empty_list = os.path.join(root, 'empty.lst')
    with open(empty_list, 'w') as f:
      f.write('# nothing\n')
    with self.assertRaisesRegex(ValueError, 'file list.*empty.lst'):
      image_io.list_images(empty_list)


class ImageStatusTest(tf.test.TestCase):

  def test_formats_and_truncation(self):
    image = cv2.GaussianBlur(_random_image(0, 20, 24), (5, 5), 2)
    encoded = {ext: cv2.imencode(ext, image)[1].tobytes()
               for ext in ('.jpg', '.png', '.bmp')}
    ok, unknown, truncated = (image_io.STATUS_OK,
                              image_io.STATUS_UNKNOWN_FORMAT,
                              image_io.STATUS_TRUNCATED)
    cases = [
        (encoded['.jpg'], ok), (encoded['.png'], ok), (encoded['.bmp'], ok),
        (b'GIF89a' + b'\x00' * 20, ok),
        (encoded['.jpg'] + b'\x00' * 10, ok),  # Padding after the end marker.
        (encoded['.jpg'] + b'\x01' * 5000, ok),  # Data appended (motion photo).
        (encoded['.png'] + b'\x01' * 5000, ok),
        (encoded['.jpg'][:-1], truncated), (encoded['.png'][:-1], truncated),
        (encoded['.png'][:len(encoded['.png']) // 2], truncated),
        (b'', unknown), (b'hello world', unknown), (b'<html>', unknown),
    ]
    fn = tf.function(image_io.image_status)
    for contents, expected in cases:
      self.assertEqual(int(fn(tf.constant(contents))), expected)
      # Every case flagged ok must decode; every other must fail to.
      try:
        tf.io.decode_image(contents, channels=3, expand_animations=False)
        decodes = True
      except tf.errors.OpError:
        decodes = False
      if expected == ok and not contents.startswith(b'GIF'):
        self.assertTrue(decodes)
      if expected != ok:
        self.assertFalse(decodes)


class LoadTest(tf.test.TestCase):

  def setUp(self):
    super().setUp()
    self.dir = tempfile.mkdtemp(dir=self.get_temp_dir())

  def test_load_image_rgb_grey_and_errors(self):
    rgb = _random_image(1, 12, 16)
    path = os.path.join(self.dir, 'im.png')
    _write_rgb(path, rgb)
    np.testing.assert_array_equal(image_io.load_image(path), rgb)
    grey = rgb[..., 0]
    cv2.imwrite(os.path.join(self.dir, 'grey.png'), grey)
    loaded = image_io.load_image(os.path.join(self.dir, 'grey.png'))
    np.testing.assert_array_equal(loaded, np.stack([grey] * 3, axis=-1))
    flat = np.full((8, 6, 3), 77, np.uint8)
    _write_rgb(os.path.join(self.dir, 'flat.png'), flat)
    resized = image_io.load_image(os.path.join(self.dir, 'flat.png'), (5, 9))
    np.testing.assert_array_equal(resized, np.full((5, 9, 3), 77, np.uint8))
    bad = os.path.join(self.dir, 'bad.png')
    with open(bad, 'w') as f:
      f.write('not an image')
    with self.assertRaisesRegex(ValueError, 'bad.png'):
      image_io.load_image(bad)
    with self.assertRaisesRegex(ValueError, 'missing.png'):
      image_io.load_image(os.path.join(self.dir, 'missing.png'))

  def test_load_mask(self):
    plane = np.zeros((6, 8), np.uint8)
    plane[1:3, 2:5] = 255
    plane[5, 7] = 1  # Any non-zero value is a hole.
    path = os.path.join(self.dir, 'm.png')
    cv2.imwrite(path, plane)
    expected = (plane != 0).astype(np.float32)[..., None]
    np.testing.assert_array_equal(image_io.load_mask(path), expected)
    np.testing.assert_array_equal(image_io.load_mask(path, invert=True),
                                  1. - expected)
    # Colour with an opaque alpha channel: alpha is ignored.
    rgba = np.zeros((6, 8, 4), np.uint8)
    rgba[..., 3] = 255
    rgba[1:3, 2:5, 2] = 200
    cv2.imwrite(os.path.join(self.dir, 'rgba.png'), rgba)
    loaded = image_io.load_mask(os.path.join(self.dir, 'rgba.png'))
    self.assertEqual(loaded.sum(), 6)
    big = image_io.load_mask(path, size=(12, 16))
    np.testing.assert_array_equal(big, np.repeat(np.repeat(expected, 2, 0), 2,
                                                 1))


  def test_load_mask_every_bit_depth_and_layout(self):
    # One hole pattern, stored with a value of 1 (a hole by "non-zero") at
    # 8 and 16 bits, as grey, grey + alpha, RGB and RGBA (the hole in one
    # colour channel only; alpha opaque everywhere).
    hole = np.zeros((7, 9), bool)
    hole[1:4, 2:6] = True
    hole[6, 8] = True
    for dtype in (np.uint8, np.uint16):
      for channels in (1, 2, 3, 4):
        image = np.zeros((7, 9, channels), dtype)
        image[..., min(channels - 1, 1) if channels != 2 else 0][hole] = 1
        if channels in (2, 4):
          image[..., -1] = np.iinfo(dtype).max
        path = os.path.join(self.dir, f'm{channels}_{dtype.__name__}.png')
        with open(path, 'wb') as f:
          f.write(tf.io.encode_png(image).numpy())
        with self.subTest(dtype=dtype.__name__, channels=channels):
          np.testing.assert_array_equal(image_io.load_mask(path)[..., 0],
                                        hole.astype(np.float32))

  def test_load_mask_jpeg_threshold(self):
    # A JPEG of a white-on-black mask has ringing of small non-zero values
    # around the hole; the hole is what lies above half the range.
    plane = np.zeros((32, 32), np.uint8)
    plane[8:20, 5:27] = 255
    path = os.path.join(self.dir, 'm.jpg')
    cv2.imwrite(path, plane, [cv2.IMWRITE_JPEG_QUALITY, 60])
    noisy = cv2.imread(path, cv2.IMREAD_GRAYSCALE)
    self.assertTrue(((noisy > 0) & (plane == 0)).any())  # There is noise.
    np.testing.assert_array_equal(image_io.load_mask(path)[..., 0],
                                  (plane > 0).astype(np.float32))
    np.testing.assert_array_equal(
        image_io.load_mask(path)[..., 0],
        (noisy > 255 * image_io.LOSSY_MASK_THRESHOLD).astype(np.float32))


class MakeDatasetTest(tf.test.TestCase):

  def setUp(self):
    super().setUp()
    self.dir = tempfile.mkdtemp(dir=self.get_temp_dir())
    self.images = {}
    for i in range(5):
      path = os.path.join(self.dir, f'im{i}.png')
      self.images[path] = _random_image(i, 16, 16)
      _write_rgb(path, self.images[path])
    self.good = sorted(self.images)

  def _add_bad_files(self):
    with open(os.path.join(self.dir, 'text.jpg'), 'w') as f:
      f.write('this is a text file with an image extension')
    encoded = open(self.good[0], 'rb').read()
    with open(os.path.join(self.dir, 'cut.png'), 'wb') as f:
      f.write(encoded[:len(encoded) // 2])

  def test_values_in_eval_mode(self):
    # Images already at the training size: the pipeline must return their
    # pixels, in RGB order, scaled to [-1, 1], in file order.
    ds = data_lib.make_dataset(self.good, 16, 2, SQUARE, seed=0,
                               options=data_augment.PipelineOptions(
                                   training=False, repeat=False,
                                   include_path=True))
    batches = _batches(ds, 10)
    self.assertEqual([len(b['image']) for b in batches], [2, 2, 1])
    paths = [p.decode() for b in batches for p in b['path']]
    self.assertEqual(paths, self.good)
    images = np.concatenate([b['image'] for b in batches])
    expected = np.stack([self.images[p] for p in self.good]) / 127.5 - 1.
    self.assertAllClose(images, expected, atol=1e-6)
    self.assertEqual(images.dtype, np.float32)
    for b in batches:
      self.assertEqual(b['mask'].shape[1:], (16, 16, 1))
      self.assertEqual(b['mask'].dtype, np.float32)

  def test_masks_follow_the_mask_fn_with_per_element_seeds(self):
    ds = data_lib.make_dataset(self.good, 16, 5, SQUARE, seed=9,
                               options=EVALUATION)
    masks = _batches(ds, 1)[0]['mask']
    for n, mask in enumerate(masks):
      np.testing.assert_array_equal(mask, masks_lib.random_square_mask(
          16, 16, 8, 0, 4, np.random.default_rng([9, n])))

  def test_resize_and_celeba_crop(self):
    rows = np.repeat(np.arange(218, dtype=np.uint8)[:, None], 178, axis=1)
    path = os.path.join(self.dir, 'face.png')
    _write_rgb(path, np.stack([rows] * 3, axis=-1))
    ds = data_lib.make_dataset([path], (178, 178), 1, SQUARE, seed=0,
                               options=data_augment.PipelineOptions(
                                   training=False, celeba_crop=True))
    image = _batches(ds, 1)[0]['image'][0]
    expected = rows[20:198] / 127.5 - 1.  # Centre 178 of 218 rows.
    self.assertAllClose(image[..., 1], expected, atol=1e-6)
    ds = data_lib.make_dataset([path], (109, 89), 1, SQUARE, seed=0,
                               options=data_augment.PipelineOptions(
                                   training=False))
    image = _batches(ds, 1)[0]['image'][0]
    resized = tf.image.resize(np.stack([rows] * 3, -1)[None].astype(
        np.float32), (109, 89), 'bilinear', antialias=True)[0]
    self.assertAllClose(image, resized / 127.5 - 1., atol=1e-5)

  def test_flip_and_random_crop(self):
    ds = data_lib.make_dataset(self.good, 8, 1, config_lib.MaskConfig(
        hole_size=4, max_delta=0), seed=1, options=data_augment.PipelineOptions(
            random_crop=True, include_path=True))
    flipped = 0
    for b in _batches(ds, 20):
      source = self.images[b['path'][0].decode()] / 127.5 - 1.
      out = b['image'][0]
      windows = [(source[y:y + 8, x:x + 8], False) for y in range(9)
                 for x in range(9)]
      windows += [(w[:, ::-1], True) for w, _ in windows]
      matches = [f for w, f in windows if np.allclose(w, out, atol=1e-6)]
      self.assertTrue(matches)
      flipped += matches[0]
    self.assertBetween(flipped, 1, 19)
    ds = data_lib.make_dataset(self.good[:1], 8, 1, config_lib.MaskConfig(
        hole_size=4, max_delta=0), seed=1, options=data_augment.PipelineOptions(
            random_crop=True, training=False))
    centre = _batches(ds, 1)[0]['image'][0]
    self.assertAllClose(centre, self.images[self.good[0]][4:12, 4:12] / 127.5
                        - 1., atol=1e-6)

  def test_rotations_and_crop_scales(self):
    # Rotations: the same crop as without them (same seeds), turned by a
    # multiple of 90 degrees.
    holes = config_lib.MaskConfig(hole_size=4, max_delta=0)
    crops = data_augment.PipelineOptions(random_crop=True, flip=False)
    run = lambda files, size, batch, **options: data_lib.make_dataset(
        files, size, batch, holes, seed=2,
        options=dataclasses.replace(crops, **options))
    plain = _batches(run(self.good, 8, 10), 2)
    turned = _batches(run(self.good, 8, 10, rotate90=True), 2)
    turns = []
    for a, b in zip(plain, turned):
      for x, y in zip(a['image'], b['image']):
        found = [k for k in range(4)
                 if np.allclose(np.rot90(x, k), y, atol=1e-6)]
        self.assertNotEmpty(found)
        turns.append(found[0])
    self.assertGreater(len(set(turns)), 2)
    # Crop scales: a 16x16 image at scale s in [0.5, 1] is cropped from
    # its resized self; at most one of 20 crops is a window of the original.
    scaled = _batches(run(self.good[:1], 8, 1, min_crop_scale=0.5), 20)
    source = self.images[self.good[0]] / 127.5 - 1.
    windows = [source[y:y + 8, x:x + 8] for y in range(9) for x in range(9)]
    same = sum(any(np.allclose(w, b['image'][0], atol=1e-6) for w in windows)
               for b in scaled)
    self.assertLessEqual(same, 1)
    with self.assertRaisesRegex(ValueError, r'^min_crop_scale: expected a '
                                r'value in \(0, 1\]'):
      run(self.good, 8, 1, min_crop_scale=0.0)
    with self.assertRaisesRegex(ValueError, '^rotate90: expected a square'):
      run(self.good, (8, 6), 1, rotate90=True)

  def test_deterministic_under_seed(self):
    def run(seed):
      cfg = config_lib.MaskConfig(mask_type='free_form', ff_parts=2)
      ds = data_lib.make_dataset(self.dir, 16, 3, cfg, seed=seed)
      return _batches(ds, 4)

    a, b, c = run(5), run(5), run(6)
    for x, y in zip(a, b):
      np.testing.assert_array_equal(x['image'], y['image'])
      np.testing.assert_array_equal(x['mask'], y['mask'])
    self.assertFalse(all(np.array_equal(x['image'], y['image'])
                         and np.array_equal(x['mask'], y['mask'])
                         for x, y in zip(a, c)))
    # Repeating reshuffles: the first two epochs are different orders of
    # the same 5 images.
    ds = data_lib.make_dataset(self.good, 16, 5, SQUARE, seed=3,
                               options=data_augment.PipelineOptions(flip=False))
    epochs = [b['image'] for b in _batches(ds, 2)]
    keys = [sorted(im.tobytes() for im in e) for e in epochs]
    self.assertEqual(keys[0], keys[1])

  def test_bad_files_are_skipped_counted_and_warned_once(self):
    self._add_bad_files()
    counter = data_lib.SkipCounter()
    with self.assertLogs('absl', 'WARNING') as logs:
      ds = data_lib.make_dataset(self.dir, 16, 2, SQUARE, seed=0,
                                 skip_counter=counter)
      batches = _batches(ds, 8)  # 16 images: more than three epochs.
    self.assertLen(batches, 8)
    self.assertEqual(counter.count, 2)
    self.assertEqual(set(counter.skipped),
                     {os.path.join(self.dir, 'text.jpg'),
                      os.path.join(self.dir, 'cut.png')})
    self.assertLen([line for line in logs.output if 'Skipping' in line], 2)
    good = {self.images[p].tobytes() for p in self.good}
    for b in batches:
      for image in b['image']:
        pixels = np.round((image + 1.) * 127.5).astype(np.uint8)
        self.assertTrue(pixels.tobytes() in good
                        or pixels[:, ::-1].tobytes() in good)

  def _write_corrupt_body(self, path):
    # Valid signature and end marker, garbage in between: only the decoder
    # can tell.
    encoded = bytearray(open(self.good[0], 'rb').read())
    encoded[40:-20] = b'\x00' * (len(encoded) - 60)
    with open(path, 'wb') as f:
      f.write(bytes(encoded))
    return path

  def test_corrupt_body_is_skipped_and_counted(self):
    corrupt = self._write_corrupt_body(os.path.join(self.dir, 'zz_bad.png'))
    files = image_io.list_images(self.dir)
    counter = data_lib.SkipCounter()
    ds = data_lib.make_dataset(files, 16, 1, SQUARE, seed=0,
                               options=EVALUATION, skip_counter=counter)
    self.assertLen(_batches(ds, 10), 5)
    self.assertEqual(counter.skipped, {
        corrupt: image_io.STATUS_MESSAGES[image_io.STATUS_UNDECODABLE]})
    self.assertEqual(counter.summary(), '1 unreadable image file(s) skipped')

  def test_all_files_bad_fails_instead_of_looping(self):
    text = os.path.join(self.dir, 'only.jpg')
    with open(text, 'w') as f:
      f.write('text')
    corrupt = [self._write_corrupt_body(os.path.join(self.dir, f'c{i}.png'))
               for i in range(2)]
    for files in ([text], corrupt):
      ds = data_lib.make_dataset(files, 16, 1, SQUARE, seed=0)
      with self.assertRaisesRegex(Exception, 'at least one readable image'):
        _batches(ds, 1)

  def test_bad_arguments(self):
    with self.assertRaisesRegex(ValueError, 'files'):
      data_lib.make_dataset([], 16, 1, SQUARE, seed=0)
    with self.assertRaisesRegex(ValueError, 'batch_size'):
      data_lib.make_dataset(self.good, 16, 0, SQUARE, seed=0)
    with self.assertRaisesRegex(ValueError, 'seed'):
      data_lib.make_dataset(self.good, 16, 1, SQUARE, seed=-1)
    with self.assertRaisesRegex(ValueError, 'image_size'):
      data_lib.make_dataset(self.good, (16,), 1, SQUARE, seed=0)
    with self.assertRaisesRegex(ValueError, 'hole_size'):
      data_lib.make_dataset(self.good, 16, 1, config_lib.MaskConfig(), seed=0)
    with self.assertRaisesRegex(ValueError, r'mask_fn_or_config.*\[16,16,1\]'):
      data_lib.make_dataset(self.good, 16, 1,
                            lambda rng: np.zeros((8, 8, 1), np.float32), seed=0)
    with self.assertRaisesRegex(ValueError, 'path_or_filelist'):
      data_lib.make_dataset(os.path.join(self.dir, 'nope'), 16, 1, SQUARE,
                            seed=0)


class DemoImagesTest(tf.test.TestCase):

  def test_bundled_images(self):
    files = demo_images.skimage_demo_files()
    self.assertEqual([n for n, _ in files],
                     [n for n, _ in demo_images.DEMO_IMAGES])
    images = demo_images.skimage_demo_images()
    self.assertLen(images, len(demo_images.DEMO_IMAGES))
    for name, image in images:
      self.assertEqual(image.dtype, np.uint8, msg=name)
      self.assertEqual(image.ndim, 3, msg=name)
      self.assertEqual(image.shape[-1], 3, msg=name)
      self.assertGreaterEqual(min(image.shape[:2]), 128, msg=name)
    astronaut = dict(images)['astronaut']
    self.assertEqual(astronaut.shape, (512, 512, 3))
    self.assertGreater(astronaut[..., 0].mean(), astronaut[..., 2].mean())
    camera = dict(images)['camera']
    np.testing.assert_array_equal(camera[..., 0], camera[..., 2])
    split = demo_images.split_demo_images(images)
    self.assertEqual([n for n, _ in split.validation],
                     list(demo_images.DEMO_VALIDATION))
    self.assertEqual([n for n, _ in split.test], list(demo_images.DEMO_TEST))
    names = [[n for n, _ in part] for part in split]
    self.assertCountEqual(sum(names, []), [n for n, _ in images])
    self.assertLen(split.train, len(images) - 6)
    with self.assertRaisesRegex(ValueError, "validation: .*'lena'"):
      demo_images.split_demo_images(images, validation=('lena',))
    with self.assertRaisesRegex(ValueError, "test: .*disjoint.*'brick'"):
      demo_images.split_demo_images(images, validation=('brick',))
    with self.assertRaisesRegex(ValueError, 'leave images for training'):
      demo_images.split_demo_images(images, validation=[n for n, _ in images],
                                    test=())


if __name__ == '__main__':
  tf.test.main()
