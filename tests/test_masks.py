"""Tests of inpaint_tf.masks, masks_free_form and mask_folder (GMCNN
random_bbox/bbox2mask, free-form strokes, mask sets)."""

import os
import tempfile

import cv2
import numpy as np
import tensorflow as tf

from inpaint_tf import config as config_lib
from inpaint_tf import mask_folder
from inpaint_tf import masks as masks_lib
from inpaint_tf import masks_free_form


def _box(mask):
  """(top, left, height, width) of the hole, checking it is a full box."""
  rows = np.flatnonzero(mask[..., 0].any(axis=1))
  cols = np.flatnonzero(mask[..., 0].any(axis=0))
  top, left = rows[0], cols[0]
  h, w = rows[-1] - top + 1, cols[-1] - left + 1
  expected = np.zeros_like(mask)
  expected[top:top + h, left:left + w] = 1.
  np.testing.assert_array_equal(mask, expected)
  return top, left, h, w


class SquareMaskTest(tf.test.TestCase):

  def test_values_and_bounds(self):
    height, width, hole, margin, delta = 12, 14, (5, 6), (1, 2), (4, 2)
    tops, lefts, shrinks_h, shrinks_w = set(), set(), set(), set()
    for seed in range(300):
      mask = masks_lib.random_square_mask(height, width, hole, margin, delta,
                                          np.random.default_rng(seed))
      self.assertEqual(mask.shape, (height, width, 1))
      self.assertEqual(mask.dtype, np.float32)
      top, left, h, w = _box(mask)
      dh, dw = (hole[0] - h) // 2, (hole[1] - w) // 2
      self.assertEqual(h, hole[0] - 2 * dh)  # Both sides pulled in alike.
      self.assertEqual(w, hole[1] - 2 * dw)
      tops.add(top - dh)
      lefts.add(left - dw)
      shrinks_h.add(dh)
      shrinks_w.add(dw)
    # GMCNN: top uniform in [margin, H - margin - hole), shrink in
    # [0, max_delta // 2].
    self.assertEqual(tops, set(range(1, height - 1 - 5)))
    self.assertEqual(lefts, set(range(2, width - 2 - 6)))
    self.assertEqual(shrinks_h, {0, 1, 2})
    self.assertEqual(shrinks_w, {0, 1})

  def test_no_delta_gives_exact_hole(self):
    mask = masks_lib.random_square_mask(32, 32, 8, 0, 0,
                                        np.random.default_rng(1))
    self.assertEqual(_box(mask)[2:], (8, 8))

  def test_hole_filling_image_minus_margins(self):
    mask = masks_lib.random_square_mask(10, 10, 6, 2, 0,
                                        np.random.default_rng(0))
    self.assertEqual(_box(mask), (2, 2, 6, 6))

  def test_deterministic_given_seed(self):
    args = (64, 48, 16, 4, 8)
    a = masks_lib.random_square_mask(*args, np.random.default_rng(7))
    b = masks_lib.random_square_mask(*args, np.random.default_rng(7))
    np.testing.assert_array_equal(a, b)
    different = [
        not np.array_equal(
            a, masks_lib.random_square_mask(*args, np.random.default_rng(s)))
        for s in range(8, 14)
    ]
    self.assertTrue(any(different))

  def test_bbox_to_mask_matches_gmcnn_slicing(self):
    bbox = (3, 5, 10, 8)
    rng = np.random.default_rng(3)
    mask = masks_lib.bbox_to_mask(20, 20, bbox, (6, 4), rng)
    rng = np.random.default_rng(3)
    dh, dw = rng.integers(4), rng.integers(3)
    expected = np.zeros((20, 20, 1), np.float32)
    expected[3 + dh:3 + 10 - dh, 5 + dw:5 + 8 - dw] = 1.
    np.testing.assert_array_equal(mask, expected)

  def test_center(self):
    mask = masks_lib.center_square_mask(256, 256, 128)
    expected = np.zeros((256, 256, 1), np.float32)
    expected[64:192, 64:192] = 1.
    np.testing.assert_array_equal(mask, expected)
    self.assertEqual(_box(masks_lib.center_square_mask(9, 12, (3, 4))),
                     (3, 4, 3, 4))

  def test_bad_arguments(self):
    rng = np.random.default_rng(0)
    with self.assertRaisesRegex(ValueError, 'hole_size.*64'):
      masks_lib.random_square_mask(64, 64, 65, 0, 0, rng)
    with self.assertRaisesRegex(ValueError, 'hole_size'):
      masks_lib.random_square_mask(64, 64, 32, 17, 0, rng)
    with self.assertRaisesRegex(ValueError, 'max_delta'):
      masks_lib.random_square_mask(64, 64, 16, 0, 32, rng)
    with self.assertRaisesRegex(ValueError, 'margin'):
      masks_lib.random_square_mask(64, 64, 16, -1, 0, rng)
    with self.assertRaisesRegex(ValueError, 'height'):
      masks_lib.center_square_mask(0, 64, 16)


class FreeFormMaskTest(tf.test.TestCase):

  def test_binary_deterministic_nonempty(self):
    a = masks_free_form.free_form_mask(64, 80, np.random.default_rng(5))
    b = masks_free_form.free_form_mask(64, 80, np.random.default_rng(5))
    c = masks_free_form.free_form_mask(64, 80, np.random.default_rng(6))
    self.assertEqual(a.shape, (64, 80, 1))
    self.assertEqual(a.dtype, np.float32)
    self.assertAllEqual(np.unique(a), [0., 1.])
    np.testing.assert_array_equal(a, b)
    self.assertFalse(np.array_equal(a, c))

  def test_defaults_come_from_config(self):
    cfg = config_lib.MaskConfig()
    a = masks_free_form.free_form_mask(32, 32, np.random.default_rng(2))
    b = masks_free_form.free_form_mask(
        32, 32, np.random.default_rng(2), cfg.ff_max_vertex, cfg.ff_max_length,
        cfg.ff_max_brush_width, cfg.ff_max_angle, cfg.ff_parts)
    np.testing.assert_array_equal(a, b)

  def test_single_dot_is_a_disc_of_the_brush_width(self):
    # One stroke, one segment of length 0, brush 10: a disc of radius 5.
    mask = masks_free_form.free_form_mask(40, 40, np.random.default_rng(0),
                                          max_vertex=1, max_length=0,
                                          max_brush_width=10, parts=1)[..., 0]
    ys, xs = np.nonzero(mask)
    cy, cx = ys.mean(), xs.mean()
    inside = np.hypot(ys - cy, xs - cx)
    self.assertLessEqual(inside.max(), 5.5)
    self.assertAllClose(mask.sum(), np.pi * 25, rtol=0.2)

  def test_straight_stroke_geometry(self):
    # max_angle 0: the first segment goes straight down (+y) by `length`.
    for seed in range(5):
      mask = masks_free_form.free_form_mask(
          200, 200, np.random.default_rng(seed), max_vertex=1, max_length=60,
          max_brush_width=10, max_angle=0, parts=1)[..., 0]
      cols = np.flatnonzero(mask.any(axis=0))
      self.assertLessEqual(cols[-1] - cols[0] + 1, 11)
      rng = np.random.default_rng(seed)
      y = rng.integers(200)
      rng.integers(200)
      rng.integers(1, 2)
      rng.integers(1)
      length = rng.integers(61)
      rows = np.flatnonzero(mask.any(axis=1))
      self.assertEqual(rows[0], max(y - 5, 0))
      self.assertEqual(rows[-1], min(min(y + length, 199) + 5, 199))

  def test_more_parts_cover_more(self):
    few = [mask_folder.hole_ratio(masks_free_form.free_form_mask(
        64, 64, np.random.default_rng(s), parts=1)) for s in range(10)]
    many = [mask_folder.hole_ratio(masks_free_form.free_form_mask(
        64, 64, np.random.default_rng(s), parts=6)) for s in range(10)]
    self.assertGreater(np.mean(many), np.mean(few))

  def test_bad_arguments(self):
    with self.assertRaisesRegex(ValueError, 'max_brush_width'):
      masks_free_form.free_form_mask(32, 32, np.random.default_rng(0),
                                     max_brush_width=1)
    with self.assertRaisesRegex(ValueError, 'parts'):
      masks_free_form.free_form_mask(32, 32, np.random.default_rng(0), parts=0)


class HoleRatioBinTest(tf.test.TestCase):

  def test_edges_are_exact(self):
    def mask_with(holes):
      m = np.zeros((10, 10, 1), np.float32)
      m.reshape(-1)[:holes] = 1.
      return m

    expected = {0: 'other', 1: 'other', 2: '(0.01,0.1]', 10: '(0.01,0.1]',
                11: '(0.1,0.2]', 20: '(0.1,0.2]', 30: '(0.2,0.3]',
                31: '(0.3,0.4]', 50: '(0.4,0.5]', 51: '(0.5,0.6]',
                60: '(0.5,0.6]', 61: 'other', 100: 'other'}
    for holes, label in expected.items():
      self.assertEqual(mask_folder.hole_ratio_bin(mask_with(holes)), label,
                       msg=f'{holes} holes')
    self.assertEqual(mask_folder.HOLE_RATIO_LABELS,
                     ('(0.01,0.1]', '(0.1,0.2]', '(0.2,0.3]', '(0.3,0.4]',
                      '(0.4,0.5]', '(0.5,0.6]'))


class MaskFolderTest(tf.test.TestCase):

  def setUp(self):
    super().setUp()
    self.dir = tempfile.mkdtemp(dir=self.get_temp_dir())
    # 20x20 white-on-black masks whose hole ratios are 0.05, 0.15, 0.25, 0.35.
    self.ratios = {}
    for i, rows in enumerate((1, 3, 5, 7)):
      image = np.zeros((20, 20), np.uint8)
      image[:rows] = 255
      path = os.path.join(self.dir, f'm{i}.png')
      cv2.imwrite(path, image)
      self.ratios[path] = rows / 20
    with open(os.path.join(self.dir, 'broken.png'), 'wb') as f:
      f.write(b'\x89PNG\r\n\x1a\n not really')

  def test_bins_and_sampling(self):
    folder = mask_folder.MaskFolder(self.dir)
    self.assertLen(folder, 5)
    with self.assertLogs('absl', 'WARNING') as logs:
      ratios = folder.ratios()
    self.assertLen(logs.output, 1)
    self.assertIn('broken.png', logs.output[0])
    self.assertTrue(np.isnan(ratios[0]))  # broken.png sorts first.
    for seed in range(5):
      mask = folder.sample(np.random.default_rng(seed), 20, '(0.1,0.2]')
      self.assertAllClose(mask.mean(), 0.15)
    for seed in range(10):
      mask = folder.sample(np.random.default_rng(seed), 20, '(0.3,0.4]')
      self.assertAllClose(mask.mean(), 0.35)
    seen = set()
    for seed in range(40):
      mask = folder.sample(np.random.default_rng(seed), (20, 20))
      seen.add(round(float(mask.mean()), 2))
      np.testing.assert_array_equal(
          mask, folder.sample(np.random.default_rng(seed), (20, 20)))
    self.assertEqual(seen, {0.05, 0.15, 0.25, 0.35})
    with self.assertRaisesRegex(ValueError, 'ratio_bin'):
      folder.sample(np.random.default_rng(0), 20, '(0.5,0.6]x')
    with self.assertRaisesRegex(ValueError, 'readable mask in bin'):
      folder.sample(np.random.default_rng(0), 20, '(0.5,0.6]')

  def test_resize_nearest_and_invert(self):
    folder = mask_folder.MaskFolder(self.dir)
    mask = folder.load(3, (10, 40))  # m2.png: 5 of 20 rows.
    self.assertEqual(mask.shape, (10, 40, 1))
    expected = np.zeros((10, 40, 1), np.float32)
    # Output row i samples input row floor((i + 0.5) * 2): rows 1, 3 are holes.
    expected[:2] = 1.
    np.testing.assert_array_equal(mask, expected)
    inverted = mask_folder.MaskFolder(self.dir, invert=True).load(3)
    np.testing.assert_array_equal(inverted, 1. - folder.load(3))

  def test_bad_file_skipped_when_sampling(self):
    folder = mask_folder.MaskFolder(self.dir)
    with self.assertLogs('absl', 'WARNING') as logs:
      for seed in range(30):
        folder.sample(np.random.default_rng(seed), 20)
    self.assertLen(logs.output, 1)

  def test_missing_or_empty(self):
    with self.assertRaisesRegex(ValueError, 'nowhere'):
      mask_folder.MaskFolder(os.path.join(self.dir, 'nowhere'))
    empty = tempfile.mkdtemp(dir=self.get_temp_dir())
    with self.assertRaisesRegex(ValueError, 'with none'):
      mask_folder.MaskFolder(empty)
    # Errors name the setting that gave the folder.
    with self.assertRaisesRegex(ValueError, '^mask_dir: expected a folder '
                                'with at least one image'):
      mask_folder.MaskFolder(empty, argument='mask_dir')
    unreadable = tempfile.mkdtemp(dir=self.get_temp_dir())
    for name in ('a.png', 'b.png'):
      with open(os.path.join(unreadable, name), 'w') as f:
        f.write('not an image')
    folder = mask_folder.MaskFolder(unreadable, argument='mask_dir')
    with self.assertLogs('absl', 'WARNING'):
      with self.assertRaisesRegex(ValueError, '^mask_dir: expected at least '
                                  'one readable mask, got none in'):
        folder.sample(np.random.default_rng(0), 16)


class MakeMaskFnTest(tf.test.TestCase):

  def test_types(self):
    cfg = config_lib.MaskConfig(hole_size=16, margin=2, max_delta=4)
    fn = masks_lib.make_mask_fn(cfg, 32, 48)
    np.testing.assert_array_equal(
        fn(np.random.default_rng(3)),
        masks_lib.random_square_mask(32, 48, 16, 2, 4,
                                     np.random.default_rng(3)))
    fn = masks_lib.make_mask_fn(
        config_lib.MaskConfig(mask_type='center', hole_size=16), 32, 48)
    np.testing.assert_array_equal(fn(np.random.default_rng(0)),
                                  masks_lib.center_square_mask(32, 48, 16))
    cfg = config_lib.MaskConfig(mask_type='free_form', ff_parts=2,
                                ff_max_brush_width=12)
    fn = masks_lib.make_mask_fn(cfg, 32, 48)
    np.testing.assert_array_equal(
        fn(np.random.default_rng(4)),
        masks_free_form.free_form_mask(32, 48, np.random.default_rng(4),
                                       max_brush_width=12, parts=2))

  def test_mixed_draws_square_or_free_form(self):
    cfg = config_lib.MaskConfig(mask_type='mixed', hole_size=16, margin=2,
                                max_delta=4, ff_parts=2, ff_max_brush_width=12)
    fn = masks_lib.make_mask_fn(cfg, 32, 48)
    kinds = []
    for seed in range(40):
      # The first draw of the rng picks the type; the rest is the chosen
      # generator's, from the same rng.
      rng = np.random.default_rng(seed)
      square = rng.random() < 0.5
      if square:
        expected = masks_lib.random_square_mask(32, 48, 16, 2, 4, rng)
      else:
        expected = masks_free_form.free_form_mask(32, 48, rng,
                                                  max_brush_width=12, parts=2)
      np.testing.assert_array_equal(fn(np.random.default_rng(seed)), expected)
      kinds.append(square)
    self.assertBetween(np.mean(kinds), 0.2, 0.8)
    with self.assertRaisesRegex(ValueError, 'hole_size'):
      masks_lib.make_mask_fn(
          config_lib.MaskConfig(mask_type='mixed', hole_size=40), 32, 32)

  def test_folder(self):
    folder_dir = tempfile.mkdtemp(dir=self.get_temp_dir())
    image = np.zeros((8, 8), np.uint8)
    image[2:4] = 200
    cv2.imwrite(os.path.join(folder_dir, 'a.png'), image)
    cfg = config_lib.MaskConfig(mask_type='folder')
    fn = masks_lib.make_mask_fn(cfg, 16, 16,
                                mask_folder.MaskFolder(folder_dir))
    self.assertAllClose(fn(np.random.default_rng(0)).mean(), 0.25)
    with self.assertRaisesRegex(ValueError, 'mask_folder'):
      masks_lib.make_mask_fn(cfg, 16, 16)

  def test_bad_config(self):
    with self.assertRaisesRegex(ValueError, 'mask_type.*circle'):
      masks_lib.make_mask_fn(config_lib.MaskConfig(mask_type='circle'), 8, 8)
    with self.assertRaisesRegex(ValueError, 'hole_size'):
      masks_lib.make_mask_fn(config_lib.MaskConfig(), 64, 64)  # 128 > 64.


if __name__ == '__main__':
  tf.test.main()
