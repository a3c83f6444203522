r"""Inpaints one image with a trained generator.

  python -m tools.inpaint --saved_model=export/1 --image=in.png \
      --mask=mask.png --output=out.png [--grid=grid.png]
  python -m tools.inpaint --checkpoint_dir=logs/run --image=in.jpg ...

The image may have any size (it is padded to a multiple of 16 and cropped
back); the mask is any 8-bit image of the same size, non-zero = hole. Known
pixels are copied from the input. A mask without holes gives the input
unchanged. Bad input ends with one ``error: ...`` line and exit status 1,
and leaves no output file.
"""

from . import _cli  # pylint: disable=g-bad-import-order

from absl import flags

from inpaint_tf import inference
from inpaint_tf import inpainting

FLAGS = flags.FLAGS
flags.DEFINE_string('image', None, 'Input image (PNG, JPEG, BMP or GIF).')
flags.DEFINE_string('mask', None,
                    'Mask image of the same size; non-zero pixels are holes.')
flags.DEFINE_string('output', None, 'Output image (.png or .jpg).')
flags.DEFINE_string('saved_model', None,
                    'SavedModel directory written by tools.export.')
flags.DEFINE_string('checkpoint_dir', None,
                    'Training run directory (generator.json + ckpt/), '
                    'instead of --saved_model.')
flags.DEFINE_string('grid', None,
                    'Optional side-by-side image: input | holes | output.')
flags.DEFINE_enum('pad_mode', 'reflect', list(inference.PAD_MODES),
                  'Padding to a multiple of 16 (with --checkpoint_dir; a '
                  'SavedModel keeps the mode it was exported with).')


def main(argv):
  if len(argv) > 1:
    raise ValueError(f'unexpected arguments: {" ".join(argv[1:])}')
  _cli.require(image=FLAGS.image, mask=FLAGS.mask, output=FLAGS.output)
  _cli.exactly_one(saved_model=FLAGS.saved_model,
                   checkpoint_dir=FLAGS.checkpoint_dir)
  inpainting.inpaint_files(FLAGS.image, FLAGS.mask, FLAGS.output,
                           saved_model_dir=FLAGS.saved_model,
                           checkpoint_dir=FLAGS.checkpoint_dir,
                           grid_path=FLAGS.grid, pad_mode=FLAGS.pad_mode)
  print(f'wrote {FLAGS.output}' + (f' and {FLAGS.grid}' if FLAGS.grid else ''))


if __name__ == '__main__':
  _cli.run_main(main)
