r"""Exports a trained generator as a SavedModel for TF Serving.

  python -m tools.export --checkpoint_dir=logs/run --output_dir=export/1

Signatures (see ``inpaint_tf.export``): ``serving_default`` takes ``image``
uint8 [N,H,W,3] and ``mask`` uint8 [N,H,W,1] (non-zero = hole) and returns
``inpainted`` uint8, completed with the HD strategy given here
(``--hd_strategy``, ``--hd_crop_margin``, ``--hd_resize_limit``);
``serving_hd`` takes the same plus those three as inputs, chosen per
request; ``serving_bytes`` takes encoded ``images``/``masks`` strings and
returns PNG ``inpainted_bytes``. Check the result with

  saved_model_cli show --dir export/1 --all
  saved_model_cli run --dir export/1 --tag_set serve \
      --signature_def serving_default \
      --inputs 'image=img.npy;mask=msk.npy' --outdir out
"""

from . import _cli  # pylint: disable=g-bad-import-order

from absl import flags

from inpaint_tf import export
from inpaint_tf import fileio
from inpaint_tf import run_dir

FLAGS = flags.FLAGS
flags.DEFINE_string('checkpoint_dir', None,
                    'Training run directory (generator.json + ckpt/).')
flags.DEFINE_string('output_dir', None, 'SavedModel directory to write.')
_cli.define_completion_flags('padding to a multiple of 16 inside the graph')
flags.DEFINE_bool('overwrite', False,
                  'Replace an existing non-empty --output_dir.')


def main(argv):
  if len(argv) > 1:
    raise ValueError(f'unexpected arguments: {" ".join(argv[1:])}')
  _cli.require(checkpoint_dir=FLAGS.checkpoint_dir,
               output_dir=FLAGS.output_dir)
  options = _cli.completion_options()
  fileio.check_output_dir(FLAGS.output_dir, FLAGS.overwrite)
  generator = run_dir.load_generator(FLAGS.checkpoint_dir)
  path = export.export_saved_model(generator, FLAGS.output_dir, options,
                                   overwrite=FLAGS.overwrite)
  print(f'wrote SavedModel {path} (signatures: {export.SERVING_DEFAULT}, '
        f'{export.SERVING_HD}, {export.SERVING_BYTES}; '
        f'--hd_strategy={options.hd_strategy})')


if __name__ == '__main__':
  _cli.run_main(main)
