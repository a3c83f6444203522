"""Tests of inpaint_tf.validation and the trainer's held-out evaluation."""

import concurrent.futures
import csv
import dataclasses
import os
import shutil
import subprocess
import sys
import tempfile

import cv2
import numpy as np
from skimage import metrics as skmetrics
import tensorflow as tf

from inpaint_tf import config as config_lib
from inpaint_tf import demo_images
from inpaint_tf import evaluation
from inpaint_tf import plots
from inpaint_tf import training
from inpaint_tf import validation
from inpaint_tf.keras_api import keras
import training_testutil as util

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_MASKS = dataclasses.replace(util.MASK_CONFIG, ff_max_length=10,
                             ff_max_brush_width=10, ff_parts=2)


def _images(count=2, height=40, width=48, seed=0):
  rng = np.random.default_rng(seed)
  y, x = np.mgrid[0:height, 0:width]
  out = []
  for i in range(count):
    base = np.stack([np.sin(x / 7.0 + i), np.cos(y / 5.0), np.sin((x + y) /
                                                                  9.0)], -1)
    noise = rng.normal(0.0, 0.05, base.shape)
    out.append((f'im{i}', ((base * 0.4 + 0.5 + noise) * 255).clip(
        0, 255).astype(np.uint8)))
  return out


class ValidationSetTest(tf.test.TestCase):

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    cls.sources = _images()
    cls.set = validation.ValidationSet(cls.sources, 32, _MASKS,
                                       crops_per_image=3, seed=5)

  def test_crops_are_windows_of_their_images(self):
    images = self.set.images
    self.assertEqual(images.shape, (6, 32, 32, 3))
    for k, crop in enumerate(images):
      source = self.sources[k // 3][1]
      found = [(t, l) for t in range(source.shape[0] - 31)
               for l in range(source.shape[1] - 31)
               if np.array_equal(source[t:t + 32, l:l + 32], crop)]
      self.assertNotEmpty(found, k)
    again = validation.ValidationSet(self.sources, 32, _MASKS, 3, seed=5)
    self.assertAllEqual(again.images, images)
    for mask_type in validation.MASK_TYPES:
      self.assertAllEqual(again.masks[mask_type], self.set.masks[mask_type])

  def test_masks_follow_the_mask_config(self):
    square = self.set.masks['square'][..., 0]
    self.assertEqual(square.shape, (6, 32, 32))
    for m in square:
      rows, cols = np.nonzero(m)
      height, width = np.ptp(rows) + 1, np.ptp(cols) + 1
      self.assertEqual(m.sum(), height * width)  # A filled rectangle.
      self.assertBetween(height, 12, 16)
      self.assertBetween(width, 12, 16)
    free_form = self.set.masks['free_form']
    self.assertTrue(np.all(free_form.sum(axis=(1, 2, 3)) > 0))
    self.assertFalse(np.array_equal(free_form, self.set.masks['square']))

  def test_scores_match_skimage(self):
    # A stand-in model: fills every hole with grey.
    def grey(images, masks):
      return np.where(masks != 0, np.uint8(128), images)

    scores = self.set.score(grey)
    truth = self.set.images
    per_type = {}
    for mask_type, masks in self.set.masks.items():
      out = grey(truth, masks)
      per_type[mask_type] = {
          'psnr': [skmetrics.peak_signal_noise_ratio(t, o, data_range=255)
                   for t, o in zip(truth, out)],
          'ssim': [skmetrics.structural_similarity(
              t, o, data_range=255, channel_axis=-1, gaussian_weights=True,
              sigma=1.5, use_sample_covariance=False)
                   for t, o in zip(truth, out)],
          'l1': [np.abs(t / 255. - o / 255.).mean()
                 for t, o in zip(truth, out)]}
    for mask_type, values in per_type.items():
      for metric, expected in values.items():
        tol = 2e-3 if metric == 'ssim' else 1e-6
        self.assertAllClose(scores[mask_type][metric], np.mean(expected),
                            atol=tol, rtol=0, msg=(mask_type, metric))
    for metric in validation.METRICS:
      both = per_type['square'][metric] + per_type['free_form'][metric]
      tol = 2e-3 if metric == 'ssim' else 1e-6
      self.assertAllClose(scores[evaluation.ALL][metric], np.mean(both),
                          atol=tol, rtol=0)

  def test_baselines_are_cv2(self):
    truth = self.set.images
    masks = self.set.masks['square']
    ns = np.stack([cv2.inpaint(t, m[..., 0], 3, cv2.INPAINT_NS)
                   for t, m in zip(truth, masks)])
    expected = np.mean([skmetrics.peak_signal_noise_ratio(t, o,
                                                          data_range=255)
                        for t, o in zip(truth, ns)])
    self.assertAllClose(self.set.baselines['cv2_ns']['square']['psnr'],
                        expected, atol=1e-6, rtol=0)
    self.assertCountEqual(self.set.baselines, ['cv2_telea', 'cv2_ns'])

  def test_bad_input(self):
    with self.assertRaisesRegex(ValueError, r'^eval_data: expected images '
                                r'of at least 64x64 .*im0 of 40x48'):
      validation.ValidationSet(self.sources, 64, _MASKS, 2, seed=0)
    with self.assertRaisesRegex(ValueError, '^eval_data: expected at least '
                                'one readable image'):
      validation.ValidationSet([], 32, _MASKS, 2, seed=0)
    folder = tempfile.mkdtemp()
    self.addCleanup(shutil.rmtree, folder)
    with open(os.path.join(folder, 'broken.png'), 'wb') as f:
      f.write(b'not an image')
    with self.assertRaisesRegex(ValueError, r'^eval_data: expected at least '
                                r'one readable image in .* none of its 1'):
      validation.load_eval_images(folder)
    with self.assertRaisesRegex(ValueError, '^eval_data: .*not found'):
      validation.load_eval_images(os.path.join(folder, 'missing'))


class DemoSplitTest(tf.test.TestCase):
  """The demo validates on some held-out images and reports on others."""

  def test_test_crops_come_from_the_test_images_only(self):
    config = config_lib.ExperimentConfig().replace(image_size=64).scaled()
    t = config.train
    images = dict(demo_images.skimage_demo_images())
    test_set = validation.demo_test_set(config)
    validation_images = validation.default_eval_images(
        demo_images.SKIMAGE_DATA, None)
    self.assertEqual([n for n, _ in validation_images],
                     list(demo_images.DEMO_VALIDATION))
    self.assertEqual(test_set.images.shape,
                     (3 * t.eval_crops_per_image, t.image_size, t.image_size,
                      3))
    def contains(image, crop):
      # The best match of the crop in the image, checked pixel for pixel.
      diff = cv2.matchTemplate(image.astype(np.float32),
                               crop.astype(np.float32), cv2.TM_SQDIFF)
      top, left = np.unravel_index(np.argmin(diff), diff.shape)
      size = crop.shape[0]
      return np.array_equal(image[top:top + size, left:left + size], crop)

    for i, crop in enumerate(test_set.images):
      found = [name for name, image in images.items() if contains(image, crop)]
      self.assertLen(found, 1, msg=i)
      self.assertIn(found[0], demo_images.DEMO_TEST, msg=i)
    for mask_type, masks in test_set.masks.items():
      self.assertEqual(masks.shape, test_set.images.shape[:3] + (1,))
      self.assertGreater(masks.mean(), 0.02, msg=mask_type)


class EvalLogTest(tf.test.TestCase):

  def test_append_truncate_and_curves(self):
    path = os.path.join(tempfile.mkdtemp(), 'eval.csv')
    self.addCleanup(shutil.rmtree, os.path.dirname(path))
    log = validation.EvalLog(path)
    self.assertEqual(log.rows(), [])
    for step in (0, 10, 20):
      log.append(validation.rows_of(step, 'net', {
          'all': {'psnr': 20.0 + step, 'ssim': 0.5}}))
      log.append(validation.rows_of(step, 'cv2_ns', {
          'all': {'psnr': 25.0, 'ssim': 0.6}}))
    self.assertEqual(log.steps(), [0, 10, 20])
    log.truncate_after(10)
    self.assertEqual(log.steps(), [0, 10])
    with open(path, newline='') as f:
      rows = list(csv.reader(f))
    self.assertEqual(tuple(rows[0]), validation.CSV_COLUMNS)
    self.assertEqual(rows[1], ['0', 'net', 'all', 'psnr', '20'])
    curves = validation.read_curves(path)
    steps, values = curves['psnr']['net']
    self.assertAllEqual(steps, [0, 10])
    self.assertAllEqual(values, [20, 30])
    self.assertAllEqual(curves['psnr']['cv2_ns'][1], [25, 25])
    self.assertEqual(validation.worst_setback([20., 22., 21.5, 23.]), 0.5)
    self.assertAllClose(validation.worst_setback([.3, .1, .25, .2], False),
                        .15)
    image = plots.metric_curves_image(validation.read_curves(path),
                                      width=400, panel_height=200)
    self.assertEqual(image.shape, (2 * 200, 400, 3))  # psnr and ssim panels.
    for colour in plots._COLOURS[:2]:  # pylint: disable=protected-access
      self.assertTrue(np.any(np.all(image == colour, axis=-1)), colour)
    png = os.path.join(os.path.dirname(path), 'curves.png')
    proc = subprocess.run(
        [sys.executable, '-m', 'tools.plot_eval', f'--csv={path}',
         f'--output={png}'], cwd=_ROOT, capture_output=True, text=True,
        timeout=300, check=False)
    self.assertEqual(proc.returncode, 0, proc.stderr[-2000:])
    self.assertEqual(cv2.imread(png).shape, (2 * 320, 900, 3))
    self.assertIn('psnr  net        last 30 at step 10; best 30; largest '
                  'setback 0', proc.stdout)
    missing = subprocess.run(
        [sys.executable, '-m', 'tools.plot_eval', f'--csv={path}.missing',
         f'--output={png}.2'], cwd=_ROOT, capture_output=True, text=True,
        timeout=300, check=False)
    self.assertEqual(missing.returncode, 1)
    self.assertEqual(missing.stderr.strip().splitlines(),
                     [f"error: --csv: expected an eval.csv file, got "
                      f"'{path}.missing' (no such file)"])
    self.assertFalse(os.path.exists(f'{png}.2'))
    with open(path, 'w') as f:
      f.write('step,value\n1,2\n')
    with self.assertRaisesRegex(ValueError, '^log_dir: .* expected the '
                                'header step,method'):
      log.rows()


class TrainerValidationTest(util.TrainingTestCase):
  """eval.csv of a run, of a resumed run, and the tool's bad input."""

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    cls.set = validation.ValidationSet(
        validation.load_eval_images(cls.images), util.IMAGE_SIZE, _MASKS,
        crops_per_image=1, seed=0)

  def _trainer(self, log_dir, **train):
    config = util.tiny_config(variant='snet', pretrain_steps=2, eval_every=2,
                              checkpoint_every=2, deterministic=False,
                              **train)
    keras.utils.set_random_seed(0)
    return training.Trainer(log_dir, self.dataset_fn, config,
                            progress_stream=False, validation_set=self.set)

  def test_eval_csv_survives_a_resume(self):
    straight = os.path.join(self.root, 'straight')
    trainer = self._trainer(straight)
    trainer.train(5)
    log = validation.EvalLog(os.path.join(straight, validation.EVAL_CSV))
    # The start, every 2 steps, and the end.
    self.assertEqual(log.steps(), [0, 2, 4, 5])
    rows = log.rows()
    methods = {r[1] for r in rows}
    self.assertEqual(methods, {'snet', 'cv2_telea', 'cv2_ns'})
    self.assertLen(rows, 4 * 3 * 3 * 3)  # steps x methods x types x metrics.
    # The logged scores are those of the generator on the set now.
    final = self.set.score(trainer.complete)
    logged = {(r[2], r[3]): r[4] for r in rows
              if r[0] == 5 and r[1] == 'snet'}
    for mask_type, values in final.items():
      for metric, value in values.items():
        self.assertAllClose(logged[(mask_type, metric)], value, rtol=1e-6)

    # Killed after evaluating step 3 (written) but before checkpointing it:
    # the resumed run redoes step 3's evaluation once.
    resumed = os.path.join(self.root, 'resumed')
    self._trainer(resumed, max_steps=2).train(2)
    log = validation.EvalLog(os.path.join(resumed, validation.EVAL_CSV))
    log.append(validation.rows_of(3, 'snet', {'all': {'psnr': 999.0}}))
    again = self._trainer(resumed)
    self.assertEqual(int(again.step.numpy()), 2)
    again.train(5)
    self.assertEqual(log.steps(), [0, 2, 4, 5])
    self.assertNotIn(999.0, [r[4] for r in log.rows()])
    first = [r for r in log.rows() if r[0] <= 2]
    straight_rows = [r for r in validation.EvalLog(
        os.path.join(straight, validation.EVAL_CSV)).rows() if r[0] <= 2]
    self.assertEqual([r[:4] for r in first], [r[:4] for r in straight_rows])
    self.assertAllClose([r[4] for r in first], [r[4] for r in straight_rows],
                        rtol=1e-4)

  def _tool(self, *args):
    return subprocess.run(
        [sys.executable, '-m', 'tools.train', '--flagfile=flags/demo.cfg',
         '--image_size=32', '--cnum=4', '--batch_size=2', *args],
        cwd=_ROOT, capture_output=True, text=True, timeout=600, check=False)

  def test_tool_bad_input(self):
    empty = os.path.join(self.root, 'unreadable')
    os.makedirs(empty, exist_ok=True)
    with open(os.path.join(empty, 'a.png'), 'wb') as f:
      f.write(b'garbage')
    small = os.path.join(self.root, 'small')
    os.makedirs(small, exist_ok=True)
    cv2.imwrite(os.path.join(small, 'tiny.png'),
                np.zeros((20, 20, 3), np.uint8))
    cases = [
        (['--eval_every=10', f'--data={self.images}'],
         r'^error: --eval_every: expected --eval_data'),
        (['--eval_every=10', f'--data={self.images}', f'--eval_data={empty}'],
         r'^error: --eval_data: expected at least one readable image'),
        (['--eval_every=10', f'--data={self.images}', f'--eval_data={small}'],
         r'^error: --eval_data: expected images of at least 32x32'),
        (['--eval_every=0', f'--data={self.images}',
          f'--eval_data={self.images}'],
         r'^error: --eval_data: given, but --eval_every is 0'),
    ]
    log_dirs = [os.path.join(self.root, f'bad{k}') for k in range(len(cases))]
    with concurrent.futures.ThreadPoolExecutor(len(cases)) as pool:
      procs = list(pool.map(
          lambda case: self._tool(*case[0][0], f'--log_dir={case[1]}'),
          zip(cases, log_dirs)))
    for (args, pattern), log_dir, proc in zip(cases, log_dirs, procs):
      self.assertEqual(proc.returncode, 1, proc.stderr[-2000:])
      lines = proc.stderr.strip().splitlines()
      self.assertLen(lines, 1, proc.stderr)
      self.assertRegex(lines[0], pattern)
      self.assertFalse(os.path.exists(log_dir), args)


if __name__ == '__main__':
  tf.test.main()
