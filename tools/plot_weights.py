r"""Draws the auxiliary weights over training (AWA paper, Fig. 4) to a PNG.

  python -m tools.plot_weights --csv=LOG_DIR/weights.csv --output=weights.png

The CSV is the one the trainer writes for a run with reweighted auxiliary
losses: a header ``step,w_perc_1,w_perc_2,w_perc_3,w_style_1,w_style_2,
w_style_3`` and one row per step. The image has one panel for the TPL
(perceptual) weights and one for the TSL (style) weights, as in Fig. 4.
"""

from . import _cli  # pylint: disable=g-bad-import-order

import cv2
from absl import flags

from inpaint_tf import fileio
from inpaint_tf import plots

FLAGS = flags.FLAGS
flags.DEFINE_string('csv', None, 'Weights CSV written by the trainer.')
flags.DEFINE_string('output', None, 'PNG file to write.')
flags.DEFINE_integer('width', 900, 'Image width in pixels.')
flags.DEFINE_integer('panel_height', 320, 'Height of each panel in pixels.')


def main(argv):
  del argv
  _cli.require(csv=FLAGS.csv, output=FLAGS.output)
  steps, weights, names = plots.read_weights_csv(FLAGS.csv)
  image = plots.weight_curves_image(steps, weights, names, width=FLAGS.width,
                                    panel_height=FLAGS.panel_height)
  ok, png = cv2.imencode('.png', image)
  if not ok:
    raise ValueError(f'output: could not encode the {image.shape} image')
  fileio.atomic_write(FLAGS.output, png.tobytes())
  print(f'wrote {FLAGS.output}: {len(names)} weights over {len(steps)} rows '
        f'(steps {steps[0]:g}..{steps[-1]:g})')


if __name__ == '__main__':
  _cli.run_main(main)
