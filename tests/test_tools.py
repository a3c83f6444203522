"""Tests of tools.export / tools.inpaint / tools.evaluate and their library.

The command-line tests run the tools as subprocesses (``python -m tools.X``)
on a tiny S-Net run directory; independent failure cases run concurrently.
"""

import json
import os
import subprocess
import sys
import tempfile

import cv2
import numpy as np
import tensorflow as tf

from inpaint_tf import config as config_lib
from inpaint_tf import evaluation
from inpaint_tf import image_io
from inpaint_tf import masks as masks_lib
from inpaint_tf import metrics
from inpaint_tf import models
from inpaint_tf import plots
from inpaint_tf import run_dir as run_dir_lib
import serving_testutil as util

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _start(tool, *args):
  env = dict(os.environ, PYTHONPATH=ROOT)
  return subprocess.Popen([sys.executable, '-m', f'tools.{tool}', *args],
                          cwd=ROOT, env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True)


def _finish(proc, timeout=300):
  out, err = proc.communicate(timeout=timeout)
  return proc.returncode, out, err


def _run(tool, *args):
  return _finish(_start(tool, *args))


class ErrorLineTest(tf.test.TestCase):
  """tools._cli.error_line: one line that names the flag."""

  def test_names_defined_flags_and_strips_function_nodes(self):
    from tools import _cli  # pylint: disable=g-import-not-at-top
    from absl import flags  # pylint: disable=g-import-not-at-top
    name = 'error_line_test_flag'
    if name not in flags.FLAGS:
      flags.DEFINE_string(name, None, 'A flag of this test.')
    self.assertEqual(_cli.error_line(ValueError(f'{name}: expected x, got y')),
                     f'error: --{name}: expected x, got y')
    # Not a flag: the argument name stays as it is.
    self.assertEqual(_cli.error_line(ValueError('no_such_flag: bad\nvalue')),
                     'error: no_such_flag: bad value')
    op_error = tf.errors.InvalidArgumentError(
        None, None, '{{function_node __inference_serve_12}} '
        f'{name}: expected H > 0\n\t [[{{node x}}]]')
    self.assertEqual(_cli.error_line(op_error),
                     f'error: --{name}: expected H > 0')
    assertion = tf.errors.InvalidArgumentError(
        None, None, f'assertion failed: [{name}: expected x] [Condition x == '
        'y did not hold element-wise:] [x (cond:0) = ] [1]')
    self.assertEqual(_cli.error_line(assertion),
                     f'error: --{name}: expected x')
    # TF 2.16+ names the failing dataset transformation first.
    dataset_assertion = tf.errors.InvalidArgumentError(
        None, None, 'Error in user-defined function passed to FilterDataset:7 '
        'transformation with iterator: Iterator::Root::Filter: assertion '
        f'failed: [{name}: expected [N,D], got 3 of 3] [Condition x == y did '
        'not hold element-wise:] [x (cond/EagerPyFunc:0) = ] [1]')
    self.assertEqual(_cli.error_line(dataset_assertion),
                     f'error: --{name}: expected [N,D], got 3 of 3')


class EvaluationTest(tf.test.TestCase):
  """The library behind tools/evaluate.py, with a stand-in model."""

  def test_rows_summary_and_report(self):
    n, size = 4, 24
    images = np.stack([util.random_image(size, size, seed=s)
                       for s in range(n)])
    masks = np.stack([util.box_mask(size, size, 2, 2, 6, 6),      # 0.0625
                      util.box_mask(size, size, 2, 2, 10, 10),    # 0.17
                      util.box_mask(size, size, 0, 0, 12, 12),    # 0.25
                      util.box_mask(size, size, 4, 4, 12, 10)])   # 0.21
    grey = lambda masked, mask: tf.zeros_like(masked)  # Fills holes with 128.

    def features(x):  # A stand-in for InceptionFeatures: [N,3] colour means.
      return np.asarray(x, np.float64).mean(axis=(1, 2))

    result = evaluation.evaluate(grey, images, masks, name='net',
                                 mask_type='square', batch_size=3,
                                 inception=features, return_outputs=True)
    holes = masks != 0
    filled = np.where(holes, np.uint8(128), images)
    self.assertAllEqual(result['outputs']['net'], filled)
    telea = np.stack([cv2.inpaint(im, h[..., 0].astype(np.uint8), 3,
                                  cv2.INPAINT_TELEA)
                      for im, h in zip(images, holes)])
    self.assertAllEqual(result['outputs']['cv2_telea'], telea)

    diff = np.abs(filled.astype(np.float64) - images)
    mse = np.square(filled.astype(np.float64) - images).mean(axis=(1, 2, 3))
    summary = evaluation.summarize(result)
    self.assertCountEqual(summary, ['net', 'cv2_telea', 'cv2_ns'])
    self.assertAllClose(summary['net']['l1'], diff.mean() / 255.)
    self.assertAllClose(summary['net']['l1_percent'], diff.mean() / 2.55)
    self.assertAllClose(summary['net']['mae'], diff.mean())
    self.assertAllClose(summary['net']['psnr'],
                        np.mean(10 * np.log10(255. ** 2 / mse)))
    self.assertAllClose(summary['cv2_telea']['l1'],
                        np.abs(telea.astype(np.float64) - images).mean() / 255)
    self.assertIn('fid', summary['net'])

    bins = {(r['method'], r['hole_ratio']): r for r in result['rows']}
    self.assertEqual(bins[('net', 'all')]['n'], 4)
    self.assertEqual(bins[('net', '(0.01,0.1]')]['n'], 1)
    self.assertEqual(bins[('net', '(0.2,0.3]')]['n'], 2)
    self.assertAllClose(bins[('net', '(0.2,0.3]')]['mae'],
                        diff[2:].mean())
    self.assertIsNone(bins[('net', '(0.1,0.2]')]['fid'])  # n = 1.
    self.assertEqual(bins[('net', '(0.2,0.3]')]['mask_type'], 'square')

    table = evaluation.format_table(result)
    self.assertLen(table.splitlines(), 2 + len(result['rows']))
    folder = tempfile.mkdtemp()
    csv_path, json_path = evaluation.write_report(result, folder,
                                                  {'seed': 0}, ['a note'])
    with open(json_path) as f:
      report = json.load(f)
    self.assertEqual(report['notes'], ['a note'])
    self.assertLen(report['rows'], len(result['rows']))
    self.assertIsNone(report['rows'][1]['fid'])  # None -> null.
    with open(csv_path) as f:
      self.assertLen(f.read().splitlines(), 1 + len(result['rows']))
    self.assertCountEqual(os.listdir(folder), ['metrics.csv', 'metrics.json'])

  def test_exact_method_scores_the_psnr_cap(self):
    # cv2 fills a flat image exactly: its PSNR is the cap, never NaN or inf.
    images = np.stack([np.full((16, 16, 3), 200, np.uint8),
                       util.random_image(16, 16, seed=1)])
    masks = np.stack([util.box_mask(16, 16, 4, 4, 6, 6)] * 2)
    grey = lambda masked, mask: tf.zeros_like(masked)
    result = evaluation.evaluate(grey, images, masks, name='net')
    per_image = result['per_image']['cv2_ns']['psnr']
    self.assertEqual(per_image[0], metrics.PSNR_CAP)
    self.assertLess(per_image[1], metrics.PSNR_CAP)
    self.assertAllClose(result['summary']['cv2_ns']['psnr'],
                        per_image.mean())
    self.assertNotIn('nan', evaluation.format_table(result))
    self.assertNotIn('inf', evaluation.format_table(result))

  def test_bad_input(self):
    images = np.zeros((2, 16, 16, 3), np.uint8)
    with self.assertRaisesRegex(ValueError, 'masks: expected'):
      evaluation.evaluate(None, images, np.zeros((2, 16, 15, 1)))
    with self.assertRaisesRegex(ValueError, 'images: expected uint8'):
      evaluation.evaluate(None, images.astype(float), np.zeros((2, 16, 16)))


class StudyTablesTest(tf.test.TestCase):
  """tools.study's tables from (made-up) validation curves."""

  def test_final_best_and_per_step_values(self):
    from tools import study  # pylint: disable=g-import-not-at-top
    steps = np.array([0., 50., 100., 200.])
    results = {
        'recon': {'psnr': (steps, np.array([20., 21., 25.5, 24.25])),
                  'ssim': (steps, np.array([.5, .6, .7, .81])),
                  'l1': (steps, np.array([.1, .09, .05, .0425])),
                  'ns_psnr': (steps, np.array([30., 30., 30., 31.5]))},
        'recon_snet': {'psnr': (steps[:3], np.array([20., 22., 23.])),
                       'ssim': (steps[:3], np.array([.5, .6, .65])),
                       'l1': (steps[:3], np.array([.1, .08, .07])),
                       'ns_psnr': (steps[:3], np.array([30., 30., 30.]))}}
    lines = study.tables('reconstruction', ['recon', 'recon_snet'], results,
                         every=100)
    self.assertEqual(lines[4], '| recon | the demo without critics | 24.25 | '
                     '0.810 | 0.0425 | 25.50 (100) | 31.50 |')
    self.assertEqual(lines[5],
                     '| recon_snet | S-Net | 23.00 | 0.650 | 0.0700 | '
                     '23.00 (100) | 30.00 |')
    self.assertEqual(lines[7], '| run | 0 | 100 | 200 |')
    self.assertEqual(lines[9], '| recon | 20.00 | 25.50 | 24.25 |')
    self.assertEqual(lines[10], '| recon_snet | 20.00 | 23.00 |  |')

  def test_synthetic_colour_fields(self):
    from tools import study  # pylint: disable=g-import-not-at-top
    folder = os.path.join(tempfile.mkdtemp(), 'fields')
    self.assertEqual(study.write_synthetic(folder, 3, seed=0), folder)
    self.assertEqual(sorted(os.listdir(folder)),
                     ['00000.png', '00001.png', '00002.png'])
    field = image_io.load_image(os.path.join(folder, '00001.png'))
    self.assertEqual(field.shape, (64, 64, 3))
    # Smooth: neighbours differ by a fraction of the 3x3 grid's steps.
    steps = np.abs(np.diff(field.astype(np.float64), axis=1))
    self.assertLess(steps.max(), 20)
    self.assertGreater(field.std(), 5)
    # Written once: a second call keeps the files.
    mtime = os.path.getmtime(os.path.join(folder, '00000.png'))
    study.write_synthetic(folder, 3, seed=5)
    self.assertEqual(os.path.getmtime(os.path.join(folder, '00000.png')),
                     mtime)


class CliTest(tf.test.TestCase):

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    cls.tmp = tempfile.mkdtemp()
    cls.gen = util.make_generator()
    cls.run_dir = util.make_run_dir(os.path.join(cls.tmp, 'run'), cls.gen)
    h, w = 37, 50
    cls.image = util.random_image(h, w)
    cls.mask = util.box_mask(h, w, 5, 6, 20, 18)
    cls.image_path = util.write_png(os.path.join(cls.tmp, 'in.png'), cls.image)
    cls.mask_path = util.write_png(os.path.join(cls.tmp, 'mask.png'),
                                   cls.mask)
    cls.data = os.path.join(cls.tmp, 'data')
    for i in range(3):
      util.write_png(os.path.join(cls.data, f'{i}.png'),
                     util.random_image(40, 44, seed=i))

  def _expect_error(self, proc, pattern, absent=()):
    rc, out, err = _finish(proc)
    self.assertEqual(rc, 1, msg=err)
    lines = [l for l in err.splitlines() if l.strip()]
    self.assertLen(lines, 1, msg=err)
    self.assertRegex(lines[0], '^error: ' + pattern)
    for path in absent:
      self.assertFalse(os.path.exists(path), msg=path)
    del out

  def test_export_inpaint_evaluate(self):
    saved = os.path.join(self.tmp, 'export', '1')
    rc, out, err = _run('export', f'--checkpoint_dir={self.run_dir}',
                        f'--output_dir={saved}')
    self.assertEqual(rc, 0, msg=err)
    self.assertIn('serving_default', out)
    self.assertTrue(os.path.isfile(os.path.join(saved, 'saved_model.pb')))
    self.assertEqual(os.listdir(os.path.dirname(saved)), ['1'])

    output = os.path.join(self.tmp, 'out', 'result.png')
    grid = os.path.join(self.tmp, 'out', 'grid.png')
    evaluated = os.path.join(self.tmp, 'eval')
    procs = [
        _start('inpaint', f'--saved_model={saved}',
               f'--image={self.image_path}', f'--mask={self.mask_path}',
               f'--output={output}', f'--grid={grid}'),
        _start('evaluate', f'--saved_model={saved}', f'--data={self.data}',
               '--mask_type=square', '--image_size=32', '--num_images=2',
               '--seed=3', f'--output_dir={evaluated}'),
    ]
    results = [_finish(p) for p in procs]
    for rc, _, err in results:
      self.assertEqual(rc, 0, msg=err)

    expected = util.inpaint(self.gen, self.image, self.mask)
    self.assertAllEqual(image_io.load_image(output), expected)
    self.assertEqual(image_io.load_image(grid).shape,
                     (37, 3 * 50 + 2 * plots.GRID_GUTTER, 3))
    self.assertCountEqual(os.listdir(os.path.dirname(output)),
                          ['result.png', 'grid.png'])

    out = results[1][1]
    self.assertIn('cv2_telea', out)
    self.assertIn('FID skipped', out)
    with open(os.path.join(evaluated, 'metrics.json')) as f:
      report = json.load(f)
    self.assertCountEqual(report['summary'], ['snet', 'cv2_telea', 'cv2_ns'])
    self.assertEqual(report['settings']['images_evaluated'], 2)
    # The baselines, recomputed here: same images (resized), same masks.
    mask_config = config_lib.MaskConfig(hole_size=16, max_delta=4, margin=0)
    mask_fn = masks_lib.make_mask_fn(mask_config, 32, 32)
    l1 = []
    for i in range(2):
      image = image_io.load_image(os.path.join(self.data, f'{i}.png'), 32)
      hole = mask_fn(np.random.default_rng([3, i]))[..., 0].astype(np.uint8)
      done = cv2.inpaint(image, hole, 3, cv2.INPAINT_NS)
      l1.append(np.abs(done.astype(np.float64) - image).mean() / 255.)
    self.assertAllClose(report['summary']['cv2_ns']['l1'], np.mean(l1))
    with open(os.path.join(evaluated, 'metrics.csv')) as f:
      header = f.readline().strip().split(',')
    self.assertEqual(header, ['method', 'mask_type', 'hole_ratio', 'n', 'l1',
                              'l1_percent', 'psnr', 'ssim', 'mae'])

  def test_checkpoint_and_bad_input(self):
    folder = tempfile.mkdtemp(dir=self.tmp)
    small = util.write_png(os.path.join(folder, 'small.png'),
                           np.zeros((36, 50, 1), np.uint8))
    text = os.path.join(folder, 'mask.png')
    with open(text, 'w') as f:
      f.write('not an image')
    empty = os.path.join(folder, 'empty')
    os.makedirs(empty)
    other = os.path.join(folder, 'other_run')  # gepenet config, snet weights.
    util.make_run_dir(other, self.gen)
    run_dir_lib.save_generator_config(models.build_generator('gepenet', cnum=4),
                                      other)
    garbage_model = os.path.join(folder, 'garbage_model')
    os.makedirs(garbage_model)
    with open(os.path.join(garbage_model, 'saved_model.pb'), 'w') as f:
      f.write('garbage')
    garbage_run = os.path.join(folder, 'garbage_run')
    util.make_run_dir(garbage_run, self.gen)
    ckpt_dir = os.path.join(garbage_run, 'ckpt')
    for name in os.listdir(ckpt_dir):
      if name != 'checkpoint':
        with open(os.path.join(ckpt_dir, name), 'w') as f:
          f.write('garbage')
    for sub, path in (('images', self.image_path), ('masks', self.mask_path)):
      os.makedirs(os.path.join(folder, sub))
      with open(path, 'rb') as f, open(os.path.join(folder, sub, 'x.png'),
                                       'wb') as g:
        g.write(f.read())
    with open(os.path.join(folder, 'images', 'y.png'), 'w') as f:
      f.write('not an image')
    with open(os.path.join(folder, 'masks', 'y.png'), 'wb') as f:
      f.write(open(self.mask_path, 'rb').read())
    out_dir = os.path.join(folder, 'out_dir.png')
    os.makedirs(out_dir)
    output = os.path.join(folder, 'out.png')
    bad_out = os.path.join(folder, 'bad.png')
    image = f'--image={self.image_path}'
    mask = f'--mask={self.mask_path}'
    procs = {
        'ok': _start('inpaint', f'--checkpoint_dir={self.run_dir}', image,
                     f'--mask={self.mask_path}', f'--output={output}'),
        'size': _start('inpaint', f'--checkpoint_dir={self.run_dir}', image,
                       f'--mask={small}', f'--output={bad_out}'),
        'not_image': _start('inpaint', f'--checkpoint_dir={self.run_dir}',
                            image, f'--mask={text}', f'--output={bad_out}'),
        'no_data': _start('evaluate', f'--checkpoint_dir={self.run_dir}',
                          f'--data={folder}/missing', '--mask_type=square',
                          f'--output_dir={folder}/eval1'),
        'empty_data': _start('evaluate', f'--checkpoint_dir={self.run_dir}',
                             f'--data={empty}', '--mask_type=free_form',
                             f'--output_dir={folder}/eval2'),
        'variant': _start('export', f'--checkpoint_dir={other}',
                          f'--output_dir={folder}/model'),
        'image_dir': _start('inpaint', f'--checkpoint_dir={self.run_dir}',
                            f'--image={empty}', mask, f'--output={bad_out}'),
        'output_dir': _start('inpaint', f'--checkpoint_dir={self.run_dir}',
                             image, mask, f'--output={out_dir}'),
        'saved_model': _start('inpaint', f'--saved_model={garbage_model}',
                              image, mask, f'--output={bad_out}'),
        'checkpoint': _start('inpaint', f'--checkpoint_dir={garbage_run}',
                             image, mask, f'--output={bad_out}'),
        'strategy': _start('inpaint', f'--checkpoint_dir={self.run_dir}',
                           image, mask, f'--output={bad_out}',
                           '--hd_strategy=tile'),
        'margin': _start('evaluate', f'--checkpoint_dir={self.run_dir}',
                         f'--data={folder}', '--mask_type=square',
                         f'--output_dir={folder}/eval3',
                         '--hd_crop_margin=-1'),
        'limit': _start('export', f'--checkpoint_dir={self.run_dir}',
                        f'--output_dir={folder}/model2',
                        '--hd_resize_limit=8'),
        'folders': _start('inpaint', f'--checkpoint_dir={self.run_dir}',
                          f'--image_dir={folder}/images',
                          f'--mask_dir={folder}/masks',
                          f'--output_dir={folder}/done'),
        'csv': _start('plot_weights', f'--csv={folder}/missing.csv',
                      f'--output={folder}/w.png'),
        'flagfile': _start('demo', f'--flagfile_path={folder}/missing.cfg',
                           f'--output_dir={folder}/demo'),
        'runs': _start('study', '--runs=recon,nope',
                       f'--output_dir={folder}/study'),
    }
    rc, _, err = _finish(procs.pop('ok'))
    self.assertEqual(rc, 0, msg=err)
    self.assertAllEqual(image_io.load_image(output),
                        util.inpaint(self.gen, self.image, self.mask))
    self._expect_error(procs['size'], r'--mask: expected a 37x50 mask',
                       [bad_out])
    self._expect_error(procs['not_image'], r'--mask: .*not a JPEG, PNG',
                       [bad_out])
    self._expect_error(procs['image_dir'], r'--image: .*Is a directory',
                       [bad_out])
    self._expect_error(procs['output_dir'],
                       r"--output: expected a file name, got the directory "
                       f"'{out_dir}'$")
    self.assertEqual(os.listdir(out_dir), [])
    self._expect_error(procs['saved_model'],
                       r'--saved_model: .*cannot be loaded', [bad_out])
    self._expect_error(procs['checkpoint'],
                       r'--checkpoint_dir: expected a readable checkpoint',
                       [bad_out])
    self._expect_error(procs['strategy'], r"--hd_strategy: expected one of "
                       r"\('original', 'crop', 'resize'\), got 'tile'",
                       [bad_out])
    self._expect_error(procs['margin'], r'--hd_crop_margin: expected an int '
                       '>= 0, got -1', [f'{folder}/eval3'])
    self._expect_error(procs['limit'], r'--hd_resize_limit: expected an int '
                       '>= 16, got 8', [f'{folder}/model2'])
    rc, out, err = _finish(procs['folders'])
    self.assertEqual(rc, 0, msg=err)
    self.assertIn('wrote 1 image(s)', out)
    self.assertIn('skipped 1 unreadable pair(s)', out)
    self.assertEqual(err.count('y.png: skipped'), 1, msg=err)
    self.assertAllEqual(image_io.load_image(f'{folder}/done/x.png'),
                        util.inpaint(self.gen, self.image, self.mask))
    self._expect_error(procs['csv'], r'--csv: expected a readable',
                       [f'{folder}/w.png'])
    self._expect_error(procs['flagfile'],
                       r'--flagfile_path: expected a flagfile',
                       [f'{folder}/demo'])
    self._expect_error(procs['runs'], r"--runs: expected names among "
                       r"recon, .*got \['nope'\]", [f'{folder}/study'])
    self._expect_error(procs['no_data'], r'--data: .*not found',
                       [f'{folder}/eval1'])
    self._expect_error(procs['empty_data'], r'--data: .*with none',
                       [f'{folder}/eval2'])
    self._expect_error(procs['variant'],
                       r"--checkpoint_dir: .*'gepenet'.*snet",
                       [f'{folder}/model'])
    leftovers = [n for n in os.listdir(folder) if n.startswith('.')]
    self.assertEqual(leftovers, [])


if __name__ == '__main__':
  tf.test.main()
