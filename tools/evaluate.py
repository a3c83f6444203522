r"""Evaluates a trained generator against OpenCV's inpainting baselines.

  python -m tools.evaluate --saved_model=export/1 --data=images/ \
      --mask_type=square --output_dir=results/eval [--num_images=100] \
      [--lpips_weights=lpips_vgg.npz] [--inception_weights=inception.h5]
  python -m tools.evaluate --checkpoint_dir=logs/run --data=images/ \
      --mask_type=folder --mask_dir=irregular_masks/ --output_dir=...

Images are resized to --image_size; mask i is drawn with the seed
(--seed, i), so every method and every run sees the same masks. The network
and ``cv2.inpaint`` (TELEA, NS) complete the same images; L1, L1 (%), PSNR,
SSIM and MAE (plus LPIPS and FID when their weights are available) are
printed per method and hole-ratio bin and written to
``<output_dir>/metrics.csv`` and ``metrics.json`` (see
``inpaint_tf.evaluation``). Without LPIPS or InceptionV3 weights those
columns are left out with a note.
"""

from . import _cli  # pylint: disable=g-bad-import-order

import dataclasses
import os

from absl import flags

from inpaint_tf import config as config_lib
from inpaint_tf import config_flags
from inpaint_tf import evaluation
from inpaint_tf import image_io
from inpaint_tf import inpainter
from inpaint_tf import mask_folder
from inpaint_tf import masks as masks_lib
from inpaint_tf import metrics
from inpaint_tf import ops
from inpaint_tf import weights

FLAGS = flags.FLAGS
_TRAIN = config_lib.TrainConfig()
# The square-hole sizes, scaled with --image_size as in training.
_SCALED = ('hole_size', 'max_delta', 'margin')

flags.DEFINE_string('saved_model', None,
                    'SavedModel directory written by tools.export.')
flags.DEFINE_string('checkpoint_dir', None,
                    'Training run directory, instead of --saved_model.')
flags.DEFINE_string('data', None,
                    'Folder of test images (searched recursively) or a text '
                    'file listing them.')
flags.DEFINE_enum('mask_type', None, list(config_lib.MASK_TYPES),
                  'Hole generator; "folder" reads --mask_dir.')
flags.DEFINE_string('mask_dir', None,
                    'Mask images for --mask_type=folder (non-zero = hole).')
flags.DEFINE_bool('invert_masks', False,
                  'Mask images store holes as zero (NVIDIA training masks).')
flags.DEFINE_string('output_dir', None,
                    'Where metrics.csv and metrics.json are written.')
flags.DEFINE_integer('num_images', None,
                     'Evaluate the first N images (sorted); default all.')
flags.DEFINE_integer('seed', _TRAIN.seed, 'Seed of the masks.')
flags.DEFINE_integer('image_size', _TRAIN.image_size,
                     'Images are resized to this square size.')
for _name in _SCALED:
  flags.DEFINE_integer(_name, None, config_flags.help_text(_name))
flags.DEFINE_string('lpips_weights', None,
                    'LPIPS .npz from tools/convert_lpips.py; LPIPS is skipped '
                    'without it.')
flags.DEFINE_string('inception_weights', None,
                    'InceptionV3 (no top) .h5 weights for FID; default: the '
                    'Keras cache; FID is skipped without them.')
flags.DEFINE_integer('batch_size', 8, 'Images per forward pass.')
_cli.define_completion_flags('padding to a multiple of 16 (with '
                             '--checkpoint_dir)')
flags.DEFINE_string('name', None,
                    "Method name of the network's rows; default: the "
                    'generator variant (gepenet, penet or snet).')


def _mask_fn(size: int):
  explicit = {name: FLAGS[name].value for name in _SCALED
              if FLAGS[name].value is not None}
  config = config_lib.ExperimentConfig().replace(
      image_size=FLAGS.image_size, mask_type=FLAGS.mask_type, **explicit)
  mask_config = config.scaled(explicit=tuple(explicit)).masks
  folder = None
  if FLAGS.mask_type == 'folder':
    _cli.require(mask_dir=FLAGS.mask_dir)
    folder = mask_folder.MaskFolder(FLAGS.mask_dir, FLAGS.invert_masks,
                                    argument='mask_dir')
  return masks_lib.make_mask_fn(mask_config, size, size, folder)


def _feature_models(notes):
  """LPIPS and InceptionV3 models, or None with a note, before any work."""
  lpips_model = inception = None
  if FLAGS.lpips_weights:
    from inpaint_tf import lpips  # pylint: disable=g-import-not-at-top
    lpips_model = lpips.LPIPS(weights=FLAGS.lpips_weights)
  else:
    notes.append('LPIPS skipped: no --lpips_weights (write the file with '
                 'tools/convert_lpips.py)')
  if FLAGS.inception_weights:
    inception = metrics.InceptionFeatures(FLAGS.inception_weights)
  elif weights.cached(metrics.INCEPTION_WEIGHTS_FILE):
    inception = metrics.InceptionFeatures()
  else:
    notes.append(f'FID skipped: no --inception_weights and no '
                 f'~/.keras/models/{metrics.INCEPTION_WEIGHTS_FILE} '
                 f'(download {metrics.INCEPTION_WEIGHTS_URL})')
  return lpips_model, inception


def main(argv):
  if len(argv) > 1:
    raise ValueError(f'unexpected arguments: {" ".join(argv[1:])}')
  _cli.require(data=FLAGS.data, mask_type=FLAGS.mask_type,
               output_dir=FLAGS.output_dir)
  _cli.exactly_one(saved_model=FLAGS.saved_model,
                   checkpoint_dir=FLAGS.checkpoint_dir)
  _cli.completion_options()  # Checks the flags before any work.
  for name in ('image_size', 'batch_size'):
    if FLAGS[name].value <= 0:
      raise ValueError(f'--{name}: expected a positive int, got '
                       f'{FLAGS[name].value}')
  if FLAGS.num_images is not None and FLAGS.num_images <= 0:
    raise ValueError(f'--num_images: expected a positive int, got '
                     f'{FLAGS.num_images}')
  if os.path.isfile(FLAGS.output_dir):
    raise ValueError(f'--output_dir: expected a directory, got the file '
                     f'{FLAGS.output_dir!r}')
  mask_fn = _mask_fn(FLAGS.image_size)
  try:
    files = image_io.list_images(FLAGS.data)
  except ValueError as e:
    raise ops.renamed(e, 'data') from None
  files = files[:FLAGS.num_images]
  notes = []
  lpips_model, inception = _feature_models(notes)
  images, used = evaluation.load_images(files, FLAGS.image_size)
  if len(used) < len(files):
    notes.append(f'{len(files) - len(used)} unreadable image(s) skipped')
  masks = evaluation.draw_masks(mask_fn, len(images), FLAGS.seed)

  model = inpainter.load_inpainter(FLAGS.saved_model, FLAGS.checkpoint_dir)
  model.options = _cli.completion_options(model.options)
  name = FLAGS.name or model.variant or evaluation.MODEL_NAME
  result = evaluation.evaluate(
      model, images, masks, name=name, mask_type=FLAGS.mask_type,
      batch_size=FLAGS.batch_size, lpips_model=lpips_model,
      inception=inception)
  settings = {flag: FLAGS[flag].value for flag in (
      'saved_model', 'checkpoint_dir', 'data', 'mask_type', 'mask_dir',
      'invert_masks', 'num_images', 'seed', 'image_size', 'hole_size',
      'max_delta', 'margin', 'lpips_weights', 'inception_weights')}
  settings.update(dataclasses.asdict(model.options))
  settings['images_evaluated'] = len(images)
  csv_path, json_path = evaluation.write_report(result, FLAGS.output_dir,
                                                settings, notes)
  print(evaluation.format_table(result))
  for note in notes:
    print(f'note: {note}')
  print(f'wrote {csv_path} and {json_path}')


if __name__ == '__main__':
  _cli.run_main(main)
