r"""Draws the held-out validation curves of a training run to a PNG.

  python -m tools.plot_eval --csv=LOG_DIR/eval.csv --output=curves.png

The CSV is the ``eval.csv`` the trainer writes with ``--eval_every``: rows
``step,method,mask_type,metric,value``. The image has one panel per metric
(PSNR, SSIM, L1) with one line per method: the network and OpenCV's TELEA
and NS on the same held-out crops. It also prints, per method, the last
value and its largest setback: how far the curve fell behind its best
earlier value.
"""

from . import _cli  # pylint: disable=g-bad-import-order

import cv2
from absl import flags

from inpaint_tf import evaluation
from inpaint_tf import fileio
from inpaint_tf import plots
from inpaint_tf import validation

FLAGS = flags.FLAGS
flags.DEFINE_string('csv', None, 'eval.csv written by the trainer.')
flags.DEFINE_string('output', None, 'PNG file to write.')
flags.DEFINE_enum('mask_type', evaluation.ALL,
                  list(validation.MASK_TYPES) + [evaluation.ALL],
                  'Which rows: one mask type, or the mean over both.')
flags.DEFINE_integer('width', 900, 'Image width in pixels.')
flags.DEFINE_integer('panel_height', 320, 'Height of each panel in pixels.')


def main(argv):
  del argv
  _cli.require(csv=FLAGS.csv, output=FLAGS.output)
  curves = validation.read_curves(FLAGS.csv, FLAGS.mask_type)
  image = plots.metric_curves_image(curves, title=FLAGS.mask_type,
                                    width=FLAGS.width,
                                    panel_height=FLAGS.panel_height)
  ok, png = cv2.imencode('.png', image)
  if not ok:
    raise ValueError(f'output: could not encode the {image.shape} image')
  fileio.atomic_write(FLAGS.output, png.tobytes())
  print(f'wrote {FLAGS.output}')
  for metric, methods in curves.items():
    higher = validation.HIGHER_IS_BETTER.get(metric, True)
    for method, (steps, values) in methods.items():
      best = values.max() if higher else values.min()
      setback = validation.worst_setback(values, higher)
      print(f'{metric:<5} {method:<10} last {values[-1]:.4g} at step '
            f'{steps[-1]:g}; best {best:.4g}; largest setback {setback:.4g}')

if __name__ == '__main__':
  _cli.run_main(main)
