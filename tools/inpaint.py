r"""Inpaints an image, or a folder of images, with a trained generator.

  python -m tools.inpaint --saved_model=export/1 --image=in.png \
      --mask=mask.png --output=out.png [--grid=grid.png]
  python -m tools.inpaint --checkpoint_dir=logs/run --image=in.jpg ...
  python -m tools.inpaint --saved_model=export/1 --image_dir=photos/ \
      --mask_dir=masks/ --output_dir=done/ [--hd_strategy=crop]

Images may have any size: large ones are completed with an HD strategy
(``--hd_strategy``: crop around each hole region by default, see
``inpaint_tf.completion``). A mask is any 8-bit image of the image's size,
non-zero = hole; in folders, masks are matched to images by file name
(extension aside) and results are written as ``<output_dir>/<name>.png``.
Known pixels are copied from the input; a mask without holes gives the
input unchanged. Bad input ends with one ``error: ...`` line and exit
status 1 and leaves no output file; in a folder, an unreadable pair is
skipped with one warning.
"""

from . import _cli  # pylint: disable=g-bad-import-order

import sys

from absl import flags

from inpaint_tf import inpainter

FLAGS = flags.FLAGS
flags.DEFINE_string('image', None, 'Input image (PNG, JPEG, BMP or GIF).')
flags.DEFINE_string('mask', None,
                    'Mask image of the same size; non-zero pixels are holes.')
flags.DEFINE_string('output', None, 'Output image (.png or .jpg).')
flags.DEFINE_string('image_dir', None,
                    'Folder of input images, instead of --image.')
flags.DEFINE_string('mask_dir', None,
                    'Folder of masks named like the images (with '
                    '--image_dir).')
flags.DEFINE_string('output_dir', None,
                    'Folder for the results (with --image_dir).')
flags.DEFINE_string('saved_model', None,
                    'SavedModel directory written by tools.export.')
flags.DEFINE_string('checkpoint_dir', None,
                    'Training run directory (generator.json + ckpt/), '
                    'instead of --saved_model.')
flags.DEFINE_string('grid', None,
                    'Optional side-by-side image: input | holes | output '
                    '(with --image).')
_cli.define_completion_flags('padding to a multiple of 16 (with '
                             '--checkpoint_dir; a SavedModel keeps the mode '
                             'it was exported with)')


def main(argv):
  if len(argv) > 1:
    raise ValueError(f'unexpected arguments: {" ".join(argv[1:])}')
  _cli.exactly_one(saved_model=FLAGS.saved_model,
                   checkpoint_dir=FLAGS.checkpoint_dir)
  mode = _cli.exactly_one(image=FLAGS.image, image_dir=FLAGS.image_dir)
  _cli.completion_options()  # Checks the flags before any work.

  def load():
    # Flags given override the SavedModel's (or the library's) defaults.
    model = inpainter.load_inpainter(FLAGS.saved_model, FLAGS.checkpoint_dir)
    model.options = _cli.completion_options(model.options)
    return model

  if mode == 'image':
    _cli.require(mask=FLAGS.mask, output=FLAGS.output)
    inpainter.inpaint_file(load, FLAGS.image, FLAGS.mask, FLAGS.output,
                           grid_path=FLAGS.grid)
    print(f'wrote {FLAGS.output}' +
          (f' and {FLAGS.grid}' if FLAGS.grid else ''))
    return
  _cli.require(mask_dir=FLAGS.mask_dir, output_dir=FLAGS.output_dir)
  report = inpainter.inpaint_folder(load, FLAGS.image_dir, FLAGS.mask_dir,
                                    FLAGS.output_dir, progress_stream=sys.stderr)
  print(f'wrote {len(report.written)} image(s) to {FLAGS.output_dir}; '
        f'skipped {len(report.skipped)} unreadable pair(s)')


if __name__ == '__main__':
  _cli.run_main(main)
