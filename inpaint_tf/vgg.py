"""VGG-16: its layers, and the frozen feature extractor of perceptual losses.

``network(num_blocks)`` builds the first blocks of Keras' VGG-16 (layer
names as in ``keras.applications.VGG16``, so its weight files load by
name) with every activation as an output; ``VGGFeatures`` (the TPL/TSL
features, ``perceptual``) and ``lpips.LPIPS`` are built on it.

VGG-16 weights are Keras' ImageNet weights
(``vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5``), read from the
Keras cache or from an explicit path (``weights.resolve``). Nothing is
downloaded: without the file, ``VGGFeatures`` raises one error saying where
to put it.
"""

from __future__ import annotations

from typing import List, Optional, Sequence, Tuple

import tensorflow as tf

from inpaint_tf import ops
from inpaint_tf import weights as weights_lib
from inpaint_tf.keras_api import keras

VGG16_NOTOP_FILE = 'vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5'
VGG16_NOTOP_URL = ('https://storage.googleapis.com/tensorflow/'
                   'keras-applications/vgg16/' + VGG16_NOTOP_FILE)
# Caffe-style ImageNet mean in BGR order (keras vgg16.preprocess_input).
_CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)
# VGG-16 convolutions per block: (name, filters); a 2x2 max pool
# (``block<n>_pool``) closes each block.
BLOCKS = (
    (('block1_conv1', 64), ('block1_conv2', 64)),
    (('block2_conv1', 128), ('block2_conv2', 128)),
    (('block3_conv1', 256), ('block3_conv2', 256), ('block3_conv3', 256)),
    (('block4_conv1', 512), ('block4_conv2', 512), ('block4_conv3', 512)),
    (('block5_conv1', 512), ('block5_conv2', 512), ('block5_conv3', 512)),
)
# The perceptual features: the pools of the first three blocks.
FEATURE_BLOCKS = 3
FEATURE_LAYERS = ('block1_pool', 'block2_pool', 'block3_pool')


def conv_names(num_blocks: int) -> List[str]:
  """Names of the convolutions of the first ``num_blocks`` blocks."""
  return [name for convs in BLOCKS[:num_blocks] for name, _ in convs]


def output_names(num_blocks: int, last_pool: bool = True) -> List[str]:
  """Layer names of ``network``'s outputs, in order.

  Each block's convolutions (``block<n>_conv<k>``, their ReLU outputs),
  then its pool (``block<n>_pool``), which ``last_pool=False`` leaves out of
  the last block.
  """
  names = []
  for block, convs in enumerate(BLOCKS[:num_blocks], start=1):
    names += [name for name, _ in convs]
    if block < num_blocks or last_pool:
      names.append(f'block{block}_pool')
  return names


def network(num_blocks: int, name: str, last_pool: bool = True
            ) -> keras.Model:
  """The first ``num_blocks`` VGG-16 blocks, frozen, float32.

  Args:
    num_blocks: 1..5.
    name: the model's name.
    last_pool: end with the last block's pool.

  Returns:
    A ``keras.Model`` from [B,H,W,3] float32 (preprocessed as the weights
    expect) to the list of every activation, the outputs of the layers
    ``output_names(num_blocks, last_pool)``.
  """
  filters = dict(conv for convs in BLOCKS for conv in convs)
  inputs = keras.Input((None, None, 3), dtype=tf.float32)
  x = inputs
  outputs = []
  for layer in output_names(num_blocks, last_pool):
    if layer in filters:
      x = keras.layers.Conv2D(filters[layer], 3, padding='same',
                              activation='relu', name=layer,
                              dtype='float32')(x)
    else:
      x = keras.layers.MaxPool2D(2, 2, name=layer, dtype='float32')(x)
    outputs.append(x)
  model = keras.Model(inputs, outputs, name=name)
  model.trainable = False
  return model


def _check_h5_layers(path: str, names: Sequence[str]) -> None:
  """Raises ValueError unless the .h5 weights file holds every layer."""
  import h5py  # pylint: disable=g-import-not-at-top
  try:
    with h5py.File(path, 'r') as f:
      group = f['model_weights'] if 'model_weights' in f else f
      stored = [n.decode('utf8') if isinstance(n, bytes) else str(n)
                for n in group.attrs.get('layer_names', [])]
  except OSError as err:
    raise ValueError(f'vgg_weights: {path!r} is not a readable HDF5 weights '
                     f'file ({err})') from err
  missing = [n for n in names if n not in stored]
  if missing:
    raise ValueError(f'vgg_weights: {path!r} lacks VGG-16 layers {missing}; '
                     'expected a Keras VGG-16 weights file '
                     f'({VGG16_NOTOP_FILE})')


@keras.utils.register_keras_serializable('inpaint_tf')
class VGGFeatures(keras.layers.Layer):
  """Frozen VGG-16 ``block1_pool``, ``block2_pool``, ``block3_pool`` features.

  Inputs in [-1, 1] RGB are mapped to [0, 255], flipped to BGR and centred
  with the ImageNet mean, exactly as ``keras.applications.vgg16.
  preprocess_input`` does for the Keras ImageNet weights. Only blocks 1-3
  are built; the weights load by layer name from a full (no-top) Keras
  VGG-16 ``.h5`` file. The layer computes in float32 whatever the global
  mixed-precision policy.

  Besides ``call``, :meth:`forward_with_activations` and :meth:`jvp` give
  the features' directional derivative along an image tangent from the
  stored activations (one extra pass of the convolutions, no second
  forward pass); AWA uses it for its gradient inner products.

  Args:
    weights: ``'imagenet'`` (Keras cache file
      ``~/.keras/models/vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5``),
      a path to such an ``.h5`` file, or None for random weights (tests).
  """

  def __init__(self, weights: Optional[str] = 'imagenet', **kwargs):
    kwargs.setdefault('trainable', False)
    kwargs['dtype'] = 'float32'
    super().__init__(**kwargs)
    self.weights_path = weights
    path = None
    if weights is not None:
      path = weights_lib.resolve(
          'vgg_weights', weights, what='VGG-16 ImageNet weights',
          cache_file=VGG16_NOTOP_FILE, url=VGG16_NOTOP_URL)
    # Every activation is an output, for ``jvp``; ``call`` keeps the pools.
    self._network = network(FEATURE_BLOCKS, 'vgg16_blocks1to3')
    names = output_names(FEATURE_BLOCKS)
    self._feature_indices = tuple(names.index(n) for n in FEATURE_LAYERS)
    if path is not None:
      _check_h5_layers(path, conv_names(FEATURE_BLOCKS))
      self._network.load_weights(path, by_name=True)

  @staticmethod
  def _preprocess(images: tf.Tensor) -> tf.Tensor:
    x = (tf.cast(images, tf.float32) + 1.0) * 127.5
    return x[..., ::-1] - tf.constant(_CAFFE_MEAN_BGR, tf.float32)

  def forward_with_activations(self, images: tf.Tensor):
    """Features of ``images`` and the activations :meth:`jvp` needs.

    Args:
      images: [B,H,W,3] float in [-1,1], RGB.

    Returns:
      (features, activations): the three pooled features as in ``call`` and
      an opaque tuple of every layer's output.
    """
    ops.check_tensor('images', images, 4, '[B,H,W,3] float in [-1,1]', 3)
    activations = tuple(self._network(self._preprocess(images)))
    return tuple(activations[i] for i in self._feature_indices), activations

  def call(self, images: tf.Tensor) -> Tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """Features of ``images``.

    Args:
      images: [B,H,W,3] float in [-1,1], RGB.

    Returns:
      Tuple of [B,H/2,W/2,64], [B,H/4,W/4,128], [B,H/8,W/8,256] float32.
    """
    return self.forward_with_activations(images)[0]

  def jvp(self, activations, tangent: tf.Tensor
          ) -> Tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """Directional derivative of the three features along ``tangent``.

    Args:
      activations: from :meth:`forward_with_activations` of the images.
      tangent: [B,H,W,3] float, a direction in image space.

    Returns:
      The three features' tangents, shaped like the features.
    """
    t = tf.cast(tangent, tf.float32)[..., ::-1] * 127.5
    out = []
    i = 0
    for convs in BLOCKS[:FEATURE_BLOCKS]:
      for name, _ in convs:
        kernel = self._network.get_layer(name).kernel
        # ReLU(conv + b): the tangent passes where the output is positive.
        t = tf.nn.conv2d(t, kernel, 1, 'SAME') * tf.cast(
            activations[i] > 0.0, tf.float32)
        i += 1
      t = tf.raw_ops.MaxPoolGradGrad(
          orig_input=activations[i - 1], orig_output=activations[i], grad=t,
          ksize=[1, 2, 2, 1], strides=[1, 2, 2, 1], padding='VALID')
      i += 1
      out.append(t)
    return tuple(out)

  def get_config(self):
    config = super().get_config()
    config.update({'weights': self.weights_path})
    return config
