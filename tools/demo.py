"""The embedded default job (``make demo``): train, export, evaluate.

1. Trains a small GEPE-Net with ``flags/demo.cfg`` on random crops of the
   photographs and textures bundled with scikit-image (all but the
   validation and test images, ``demo_images``), through ``tools.train``;
   the trainer scores the validation crops every 100 steps (``eval.csv``,
   the set the recipe was chosen on). A run that exists resumes.
2. Exports the generator with ``tools.export`` to
   ``<output_dir>/saved_model``.
3. Completes the test crops (crops of the test images, other images than
   the validation ones, each with a square hole and a free-form hole, cut
   and drawn with the run's settings and saved as ``test_set.npz``) with
   the SavedModel and with OpenCV's TELEA and NS inpainting, and writes
   ``grid.png``, ``metrics.json`` (means over all test crops),
   ``details/metrics.{csv,json}`` (per mask type and hole-ratio bin),
   ``curves.png`` (the validation scores during training, from the run's
   ``eval.csv``) and prints the table.

  python -m tools.demo [--output_dir=results/demo] [--max_steps=N]
"""

from . import _cli  # pylint: disable=g-bad-import-order

import json
import os
import subprocess
import sys
from typing import List

from absl import flags
import cv2
import numpy as np

from inpaint_tf import evaluation
from inpaint_tf import fileio
from inpaint_tf import inpainter
from inpaint_tf import plots
from inpaint_tf import run_dir as run_dir_lib
from inpaint_tf import validation

FLAGS = flags.FLAGS
flags.DEFINE_string('output_dir', 'results/demo', 'Where results go.')
flags.DEFINE_string('flagfile_path', 'flags/demo.cfg',
                    'Training flagfile of the demo.')
flags.DEFINE_integer('max_steps', None,
                     'Override the flagfile\'s training steps.')
flags.DEFINE_integer('grid_rows', 8, 'Crops shown in grid.png.')

METHODS = ('gepenet', 'cv2_telea', 'cv2_ns')
SUMMARY_METRICS = ('psnr', 'ssim', 'l1', 'l1_percent', 'mae')
TEST_SET = 'test_set.npz'


def _run(args: List[str]) -> None:
  """Runs ``python -m <tool> args``; if it fails, exits with its status.

  The tool has printed its own error line; the demo adds none.
  """
  print('$ python -m ' + ' '.join(args), flush=True)
  code = subprocess.call([sys.executable, '-m'] + args)
  if code:
    sys.exit(code if code > 0 else 128 - code)


def evaluate_test_set(model: inpainter.Inpainter,
                      test_set: validation.ValidationSet):
  """Scores the model and the OpenCV methods on every test crop and hole.

  Writes ``details/`` (rows per mask type and hole-ratio bin) and
  ``metrics.json`` (means over every crop and mask) to ``--output_dir``.

  Returns:
    (per_type, summary, combined): ``{mask_type: (masks, evaluate's
    result with outputs)}``, ``{method: {metric: mean}}`` and the result
    with the rows of both mask types.
  """
  images = test_set.images
  per_type = {}
  for mask_type, masks in test_set.masks.items():
    per_type[mask_type] = (masks, evaluation.evaluate(
        model, images, masks, name='gepenet', mask_type=mask_type,
        return_outputs=True))
  summary = {
      method: {metric: float(np.mean(np.concatenate(
          [result['per_image'][method][metric]
           for _, result in per_type.values()])))
               for metric in SUMMARY_METRICS}
      for method in METHODS}
  rows = [row for _, result in per_type.values() for row in result['rows']]
  combined = dict(next(iter(per_type.values()))[1], rows=rows)
  details = os.path.join(FLAGS.output_dir, 'details')
  os.makedirs(details, exist_ok=True)
  evaluation.write_report(combined, details, settings={
      'crops': int(len(images)), 'crop_size': int(images.shape[1])})
  fileio.atomic_write(os.path.join(FLAGS.output_dir, 'metrics.json'),
                      json.dumps(summary, indent=2) + '\n')
  return per_type, summary, combined


def write_grid(path: str, images, masks, outputs, rows: int) -> None:
  """masked | gepenet | telea | ns | truth, one crop per row."""
  lines = []
  for i in range(min(rows, len(images))):
    panels = [plots.show_holes(images[i], masks[i])]
    panels += [outputs[m][i] for m in METHODS] + [images[i]]
    lines.append(plots.side_by_side(panels))
  gap = np.full((plots.GRID_GUTTER, lines[0].shape[1], 3), 255, np.uint8)
  grid = np.concatenate(sum([[line, gap] for line in lines], [])[:-1], axis=0)
  ok, png = cv2.imencode('.png', cv2.cvtColor(grid, cv2.COLOR_RGB2BGR))
  if not ok:
    raise ValueError(f'grid: could not encode {path}')
  fileio.atomic_write(path, png.tobytes())


def main(argv):
  del argv
  if not os.path.isfile(FLAGS.flagfile_path):
    raise ValueError(f'flagfile_path: expected a flagfile, got '
                     f'{FLAGS.flagfile_path!r} (no such file)')
  run_dir = os.path.join(FLAGS.output_dir, 'run')
  saved_model = os.path.join(FLAGS.output_dir, 'saved_model')
  train_args = ['tools.train', f'--flagfile={FLAGS.flagfile_path}',
                f'--log_dir={run_dir}']
  if FLAGS.max_steps is not None:
    train_args.append(f'--max_steps={FLAGS.max_steps}')
  _run(train_args)
  _run(['tools.export', f'--checkpoint_dir={run_dir}',
        f'--output_dir={saved_model}', '--overwrite'])

  test_set = validation.demo_test_set(run_dir_lib.load_config(run_dir))
  test_set.save(os.path.join(FLAGS.output_dir, TEST_SET))
  images = test_set.images
  per_type, summary, combined = evaluate_test_set(
      inpainter.load_inpainter(saved_model), test_set)
  _run(['tools.plot_eval',
        f'--csv={os.path.join(run_dir, validation.EVAL_CSV)}',
        f'--output={os.path.join(FLAGS.output_dir, "curves.png")}'])
  masks, result = per_type['square']
  ff_masks, ff_result = per_type['free_form']
  half = FLAGS.grid_rows // 2
  write_grid(os.path.join(FLAGS.output_dir, 'grid.png'),
             np.concatenate([images[:half], images[:half]]),
             np.concatenate([masks[:half], ff_masks[:half]]),
             {m: np.concatenate([result['outputs'][m][:half],
                                 ff_result['outputs'][m][:half]])
              for m in METHODS},
             FLAGS.grid_rows)

  print('\n' + evaluation.format_table(combined))
  print(f'\nMeans over {len(images)} test crops x 2 mask types:')
  header = f'{"method":<10}' + ''.join(f'{m:>12}' for m in SUMMARY_METRICS)
  print(header)
  for method in METHODS:
    print(f'{method:<10}' + ''.join(f'{summary[method][m]:>12.4f}'
                                    for m in SUMMARY_METRICS))
  best = max(METHODS, key=lambda m: summary[m]['psnr'])
  print(f'\nBest PSNR: {best}. Results in {FLAGS.output_dir}/ '
        '(grid.png, curves.png, metrics.json, details/, saved_model/).')


if __name__ == '__main__':
  _cli.run_main(main)
