"""Tests of inpaint_tf.export: export -> reload -> compare, saved_model_cli."""

import os
import subprocess
import sys
import tempfile
from unittest import mock

import numpy as np
import tensorflow as tf

from inpaint_tf import completion
from inpaint_tf import export
from inpaint_tf import inpainter
from inpaint_tf import models
import serving_testutil as util

SAVED_MODEL_CLI = os.path.join(os.path.dirname(sys.executable),
                               'saved_model_cli')


class ExportTest(tf.test.TestCase):

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    cls.tmp = tempfile.mkdtemp()
    # GEPE-Net: contextual attention must work at dynamic sizes in the graph.
    cls.gen = util.make_generator(variant='gepenet')
    cls.path = export.export_saved_model(cls.gen,
                                         os.path.join(cls.tmp, 'model'))
    cls.loaded = export.load_saved_model(cls.path)

  def _serve(self, image, mask):
    out = self.loaded.signatures['serving_default'](
        image=tf.constant(image), mask=tf.constant(mask))
    return out['inpainted'].numpy()

  def test_signatures(self):
    self.assertCountEqual(self.loaded.signatures.keys(),
                          [export.SERVING_DEFAULT, export.SERVING_HD,
                           export.SERVING_BYTES])
    serve = self.loaded.signatures[export.SERVING_DEFAULT]
    inputs = serve.structured_input_signature[1]
    self.assertEqual(inputs['image'].dtype, tf.uint8)
    self.assertEqual(inputs['image'].shape.as_list(), [None, None, None, 3])
    self.assertEqual(inputs['mask'].shape.as_list(), [None, None, None, 1])
    self.assertEqual(serve.structured_outputs['inpainted'].dtype, tf.uint8)
    encoded = self.loaded.signatures[export.SERVING_BYTES]
    self.assertEqual(encoded.structured_input_signature[1]['images'].dtype,
                     tf.string)
    self.assertIn('inpainted_bytes', encoded.structured_outputs)
    self.assertTrue(os.path.isfile(os.path.join(self.path,
                                                export.CONFIG_FILE)))

  def test_matches_in_process_model_any_size(self):
    for (h, w) in ((21, 35), (32, 16)):
      image = np.stack([util.random_image(h, w, seed=s) for s in (0, 1)])
      mask = np.stack([util.box_mask(h, w, 2, 3, 9, 10),
                       util.box_mask(h, w, 10, 0, 8, 16) // 255])
      out = self._serve(image, mask)
      self.assertAllEqual(out, util.inpaint(self.gen, image, mask))
      known = mask[..., 0] == 0
      self.assertAllEqual(out[known], image[known])
    # All known: the input, unchanged.
    self.assertAllEqual(self._serve(image, np.zeros_like(mask)), image)
    # The Inpainter of the SavedModel gives the same.
    self.assertAllEqual(
        inpainter.load_inpainter(saved_model=self.path)(image[0], mask[0]),
        out[0])

  def test_serving_hd_chooses_the_strategy_per_request(self):
    image = util.random_image(40, 72, seed=4)[None]
    mask = util.box_mask(40, 72, 4, 8, 12, 20)[None] // 255
    serve = self.loaded.signatures[export.SERVING_HD]
    for strategy, margin, limit in (('resize', 0, 32), ('crop', 4, 16),
                                    ('original', 0, 16)):
      out = serve(image=tf.constant(image), mask=tf.constant(mask),
                  hd_strategy=tf.constant(strategy),
                  hd_crop_margin=tf.constant(margin),
                  hd_resize_limit=tf.constant(limit))['inpainted'].numpy()
      self.assertAllEqual(out, util.inpaint(
          self.gen, image, mask, hd_strategy=strategy, hd_crop_margin=margin,
          hd_resize_limit=limit))
    with self.assertRaisesRegex(tf.errors.InvalidArgumentError,
                                'hd_resize_limit: expected >= 16'):
      serve(image=tf.constant(image), mask=tf.constant(mask),
            hd_strategy=tf.constant('crop'), hd_crop_margin=tf.constant(0),
            hd_resize_limit=tf.constant(8))

  def test_mask_size_mismatch_fails(self):
    with self.assertRaisesRegex(tf.errors.InvalidArgumentError, 'mask'):
      self._serve(np.zeros((1, 16, 16, 3), np.uint8),
                  np.zeros((1, 16, 15, 1), np.uint8))

  def test_bytes_signature(self):
    a, b = util.random_image(19, 23, seed=3), util.random_image(16, 30, seed=4)
    mask_a = util.box_mask(19, 23, 4, 4, 8, 8)
    rgba = np.zeros((16, 30, 4), np.uint8)
    rgba[..., 3] = 255  # Alpha is ignored.
    rgba[2:9, 10:20, 1] = 1
    jpeg = tf.io.encode_jpeg(b).numpy()
    out = self.loaded.signatures[export.SERVING_BYTES](
        images=tf.constant([tf.io.encode_png(a).numpy(), jpeg]),
        masks=tf.constant([tf.io.encode_png(mask_a).numpy(),
                           tf.io.encode_png(rgba).numpy()]))
    out = out['inpainted_bytes'].numpy()
    self.assertLen(out, 2)
    self.assertAllEqual(tf.io.decode_png(out[0]).numpy(),
                        util.inpaint(self.gen, a, mask_a))
    b_decoded = tf.io.decode_jpeg(jpeg).numpy()
    self.assertAllEqual(tf.io.decode_png(out[1]).numpy(),
                        util.inpaint(self.gen, b_decoded,
                                          rgba[..., 1:2]))

  def test_decode_mask(self):
    grey16 = np.zeros((3, 4, 1), np.uint16)
    grey16[1, 2] = 1  # Non-zero only at 16 bits.
    rgb = np.zeros((3, 4, 3), np.uint8)
    rgb[0, 0, 2] = 9
    for image, expected in ((grey16, grey16 != 0),
                            (rgb, rgb.any(-1, keepdims=True))):
      out = export.decode_mask(tf.io.encode_png(image)).numpy()
      self.assertAllEqual(out, expected.astype(np.uint8))

  def test_bytes_signature_16_bit_mask(self):
    image = util.random_image(16, 16, seed=6)
    mask16 = np.zeros((16, 16, 1), np.uint16)
    mask16[3:9, 4:12] = 1
    out = self.loaded.signatures[export.SERVING_BYTES](
        images=tf.constant([tf.io.encode_png(image).numpy()]),
        masks=tf.constant([tf.io.encode_png(mask16).numpy()]))
    out = tf.io.decode_png(out['inpainted_bytes'][0]).numpy()
    self.assertAllEqual(out, util.inpaint(self.gen, image,
                                               mask16.astype(np.uint8)))
    self.assertFalse(np.array_equal(out, image))

  def test_bad_inputs_name_the_input(self):
    png = tf.io.encode_png(util.random_image(16, 16, seed=7)).numpy()
    serve_bytes = self.loaded.signatures[export.SERVING_BYTES]
    for images, masks, name in (([png], [b'garbage'], 'masks'),
                                ([b'garbage'], [png], 'images')):
      with self.subTest(name=name):
        with self.assertRaisesRegex(tf.errors.InvalidArgumentError,
                                    f'{name}: expected an encoded PNG'):
          serve_bytes(images=tf.constant(images), masks=tf.constant(masks))
    with self.assertRaisesRegex(tf.errors.InvalidArgumentError,
                                'image: expected .* H > 0'):
      self._serve(np.zeros((1, 0, 16, 3), np.uint8),
                  np.zeros((1, 0, 16, 1), np.uint8))

  def test_saved_model_cli_show_and_run(self):
    image = util.random_image(20, 30, seed=5)[None]
    mask = util.box_mask(20, 30, 5, 5, 10, 10)[None]
    folder = tempfile.mkdtemp(dir=self.tmp)
    np.save(os.path.join(folder, 'img.npy'), image)
    np.save(os.path.join(folder, 'msk.npy'), mask)
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='2')
    show = subprocess.run(
        [SAVED_MODEL_CLI, 'show', '--dir', self.path, '--tag_set', 'serve',
         '--signature_def', 'serving_default'],
        capture_output=True, text=True, env=env, check=True)
    for text in ("inputs['image']", "inputs['mask']", "outputs['inpainted']",
                 'DT_UINT8', '(-1, -1, -1, 3)'):
      self.assertIn(text, show.stdout)
    subprocess.run(
        [SAVED_MODEL_CLI, 'run', '--dir', self.path, '--tag_set', 'serve',
         '--signature_def', 'serving_default', '--inputs',
         f'image={folder}/img.npy;mask={folder}/msk.npy', '--outdir', folder],
        capture_output=True, text=True, env=env, check=True)
    out = np.load(os.path.join(folder, 'inpainted.npy'))
    self.assertAllEqual(out, util.inpaint(self.gen, image, mask))

  def test_existing_dir_and_failed_export_leave_no_trace(self):
    parent = tempfile.mkdtemp(dir=self.tmp)
    target = os.path.join(parent, 'model')
    os.makedirs(target)
    with open(os.path.join(target, 'keep.txt'), 'w') as f:
      f.write('x')
    with self.assertRaisesRegex(ValueError, 'not empty'):
      export.export_saved_model(self.gen, target)
    with mock.patch.object(tf.saved_model, 'save',
                           side_effect=OSError('disk full')):
      with self.assertRaisesRegex(OSError, 'disk full'):
        export.export_saved_model(self.gen, target, overwrite=True)
      with self.assertRaises(OSError):
        export.export_saved_model(self.gen, os.path.join(parent, 'new'))
    self.assertEqual(sorted(os.listdir(parent)), ['model'])
    self.assertEqual(os.listdir(target), ['keep.txt'])

  def test_bad_arguments(self):
    with self.assertRaisesRegex(ValueError, 'built generator'):
      export.InpaintModule(models.build_generator('snet', cnum=4),
                           completion.CompletionOptions())
    with self.assertRaisesRegex(ValueError, 'saved_model.pb'):
      export.load_saved_model(self.tmp)


if __name__ == '__main__':
  tf.test.main()
