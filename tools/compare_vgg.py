r"""TPL/TSL under both VGG-16 conventions, on the demo's held-out crops.

  python -m tools.compare_vgg [--torchvision_weights=imagenet] \
      [--keras_weights=imagenet] [--image_size=64]

The perceptual and style losses run on torchvision's VGG-16 fed [-1, 1]
RGB by default (``--vgg_convention=torchvision``, as AWA's trainer) or on
Keras' Caffe-converted VGG-16 fed BGR 0-255 minus the ImageNet mean
(``keras_caffe``). The same loss weights weigh the two differently; this
tool measures by how much. It cuts the crops and holes that ``make demo``
validates on (``demo_images.DEMO_VALIDATION``, at ``--image_size``, square
and free-form holes), fills each hole with OpenCV's Telea (an
imperfect completion, as a network's early outputs are), and prints the six
unweighted terms of ``perceptual.perceptual_style_terms`` under each
convention and their ratio.

``--torchvision_weights`` is the ``.npz`` of ``tools.convert_vgg``,
``--keras_weights`` Keras' no-top ``.h5``; ``imagenet`` (the default) finds
each in the Keras cache.
"""

from . import _cli  # pylint: disable=g-bad-import-order

from absl import flags
import numpy as np
import tensorflow as tf

from inpaint_tf import config as config_lib
from inpaint_tf import demo_images
from inpaint_tf import metrics
from inpaint_tf import perceptual
from inpaint_tf import validation
from inpaint_tf import vgg

FLAGS = flags.FLAGS
flags.DEFINE_string('torchvision_weights', 'imagenet',
                    "torchvision's VGG-16 as tools.convert_vgg writes it.")
flags.DEFINE_string('keras_weights', 'imagenet',
                    "Keras' VGG-16 no-top .h5 file.")
flags.DEFINE_integer('image_size', 64, 'Side of the held-out crops.')


def _features(flag: str, path: str, convention: str) -> vgg.VGGFeatures:
  """``VGGFeatures``; its errors name ``flag`` instead of ``vgg_weights``."""
  try:
    return vgg.VGGFeatures(weights=path, convention=convention)
  except ValueError as err:
    raise ValueError(f'--{flag}: {str(err).split(": ", 1)[-1]}') from None


def _as_float(images: np.ndarray) -> tf.Tensor:
  return tf.constant(images.astype(np.float32) / 127.5 - 1.0)


def main(argv):
  del argv
  size = FLAGS.image_size
  if size < 16 or size % 8:
    raise ValueError(f'--image_size: expected a multiple of 8 >= 16, got '
                     f'{size}')
  networks = {
      'torchvision': _features('torchvision_weights',
                               FLAGS.torchvision_weights, 'torchvision'),
      'keras_caffe': _features('keras_weights', FLAGS.keras_weights,
                               'keras_caffe')}
  config = config_lib.ExperimentConfig().replace(image_size=size).scaled()
  held_out = demo_images.split_demo_images(
      demo_images.skimage_demo_images()).validation
  crops = validation.ValidationSet(held_out, size, config.masks,
                                   config.train.eval_crops_per_image,
                                   config.train.eval_seed)
  sums = {name: np.zeros(len(perceptual.TERM_NAMES)) for name in networks}
  for masks in crops.masks.values():
    filled = metrics.cv2_inpaint(crops.images, masks, method='telea')
    for name, features in networks.items():
      sums[name] += np.array(perceptual.perceptual_style_terms(
          features, _as_float(filled), _as_float(crops.images),
          tf.constant(masks, tf.float32)), np.float64)
  count = len(crops.masks)
  print(f'TPL/TSL terms (unweighted, mean over {count} hole types) on '
        f'{len(crops.images)} held-out {size}x{size} crops filled by Telea')
  print(f'{"term":<8}  {"torchvision":>12}  {"keras_caffe":>12}  '
        f'{"keras/torchvision":>17}')
  for j, term in enumerate(perceptual.TERM_NAMES):
    a, b = sums['torchvision'][j] / count, sums['keras_caffe'][j] / count
    print(f'{term:<8}  {a:12.5g}  {b:12.5g}  {b / a:17.4g}')


if __name__ == '__main__':
  _cli.run_main(main)
