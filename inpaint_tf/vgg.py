"""VGG-16: its layers, its weights, and the features of perceptual losses.

``network(num_blocks)`` builds the first blocks of VGG-16 (layer names as
in ``keras.applications.VGG16``, so Keras' weight files load by name) with
every activation as an output; ``VGGFeatures`` (the TPL/TSL features,
``perceptual``) and ``lpips.LPIPS`` are built on it.

Two sets of ImageNet weights, each with its input convention
(``CONVENTIONS``):

* ``'torchvision'`` (the default of the perceptual losses): torchvision's
  VGG-16, fed the training images as they are, [-1, 1] RGB, as AWA's
  trainer does (its ``VGG16FeatureExtractor`` takes the tensors normalised
  by ``Normalize((0.5,)*3, (0.5,)*3)``, with no ImageNet mean/std step).
  The weights are a ``.npz`` in this module's layout
  (``block{b}_conv{c}_kernel`` [3,3,Cin,Cout], ``block{b}_conv{c}_bias``
  [Cout]) that ``tools/convert_vgg.py`` writes from torchvision's state dict
  (``torchvision_arrays``); in the Keras cache it is ``TORCHVISION_FILE``.
* ``'keras_caffe'``: Keras' Caffe-converted VGG-16
  (``vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5``), fed BGR in
  [0, 255] minus the Caffe ImageNet mean (``keras.applications.vgg16.
  preprocess_input``). Another network on another input scale: its TPL/TSL
  values, and so what the loss weights mean, differ from the original's.

Files are read from the Keras cache or an explicit path
(``weights.resolve``); nothing is downloaded: without the file,
``VGGFeatures`` raises one error saying where to put it or how to make it.
"""

from __future__ import annotations

import re
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf

from inpaint_tf import config as config_lib
from inpaint_tf import ops
from inpaint_tf import weights as weights_lib
from inpaint_tf.keras_api import keras

CONVENTIONS = config_lib.VGG_CONVENTIONS
VGG16_NOTOP_FILE = 'vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5'
TORCHVISION_FILE = 'vgg16_torchvision.npz'
_CONVERT_HINT = ('write it with: python -m tools.convert_vgg '
                 '[--input=vgg16-397923af.pth] --output=<keras cache>/'
                 f'{TORCHVISION_FILE} (needs PyTorch and torchvision)')
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
# Index of each convolution in torchvision's ``vgg16().features`` (a ReLU
# follows each, a max pool each block): 0, 2 | 5, 7 | 10, 12, 14 | ...
TORCH_FEATURE_INDEX = dict(zip(
    (name for convs in BLOCKS for name, _ in convs),
    (0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28)))


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


def conv_shapes(num_blocks: int) -> Dict[str, Tuple[int, ...]]:
  """Names and shapes of the arrays of the first ``num_blocks`` blocks.

  ``block{b}_conv{c}_kernel`` [3,3,Cin,Cout] and ``block{b}_conv{c}_bias``
  [Cout], in network order.
  """
  shapes, cin = {}, 3
  for convs in BLOCKS[:num_blocks]:
    for name, filters in convs:
      shapes[f'{name}_kernel'] = (3, 3, cin, filters)
      shapes[f'{name}_bias'] = (filters,)
      cin = filters
  return shapes


def torchvision_arrays(state: Mapping[str, np.ndarray],
                       num_blocks: int = len(BLOCKS),
                       argument: str = 'state') -> Dict[str, np.ndarray]:
  """Converts torchvision VGG-16 weights to this module's layout.

  Args:
    state: a ``torchvision.models.vgg16`` state dict as numpy arrays (keys
      ``features.{i}.weight`` [Cout,Cin,3,3] and ``features.{i}.bias``;
      ``module.`` prefixes and LPIPS' ``net.slice{s}.{i}.*`` also work).
    num_blocks: convert the convolutions of blocks 1..num_blocks.
    argument: the name that starts the errors.

  Returns:
    Float32 arrays named and shaped as :func:`conv_shapes`.

  Raises:
    ValueError: naming the missing or mis-shaped entry.
  """
  by_index = {}
  for key, value in state.items():
    m = re.fullmatch(r'(?:module\.)?(?:features|net\.slice\d)\.(\d+)\.'
                     r'(weight|bias)', key)
    if m:
      by_index[(int(m.group(1)), m.group(2))] = value
  shapes = conv_shapes(num_blocks)
  out = {}
  for name in conv_names(num_blocks):
    index = TORCH_FEATURE_INDEX[name]
    for part in ('weight', 'bias'):
      if (index, part) not in by_index:
        raise ValueError(f'{argument}: missing features.{index}.{part} '
                         f'(VGG-16 layer {name})')
    kernel = np.asarray(by_index[(index, 'weight')], np.float32)
    if kernel.ndim == 4:
      kernel = kernel.transpose(2, 3, 1, 0)  # [out,in,kh,kw] -> [kh,kw,in,out]
    bias = np.asarray(by_index[(index, 'bias')], np.float32)
    for suffix, array in (('kernel', kernel), ('bias', bias)):
      expected = shapes[f'{name}_{suffix}']
      if array.shape != expected:
        raise ValueError(
            f'{argument}: features.{index} ({name}) expected {suffix} shape '
            f'{list(expected)}, got {list(array.shape)}')
      out[f'{name}_{suffix}'] = array
  return out


def set_arrays(model: keras.Model, arrays: Mapping[str, np.ndarray],
               num_blocks: int) -> None:
  """Loads :func:`conv_shapes`-layout arrays into a :func:`network`."""
  for name in conv_names(num_blocks):
    model.get_layer(name).set_weights(
        [arrays[f'{name}_kernel'], arrays[f'{name}_bias']])


def _file_kind(path: str) -> str:
  """``'h5'``, ``'npz'`` or ``'other'``, from the file's first bytes."""
  with open(path, 'rb') as f:
    head = f.read(8)
  if head == b'\x89HDF\r\n\x1a\n':
    return 'h5'
  return 'npz' if head[:4] == b'PK\x03\x04' else 'other'


def _load_torchvision_npz(path: str) -> Dict[str, np.ndarray]:
  """The blocks 1-3 arrays of a torchvision-convention ``.npz``."""
  kind = _file_kind(path)
  if kind == 'h5':
    raise ValueError(
        f'vgg_weights: expected torchvision VGG-16 weights (.npz, '
        f"{TORCHVISION_FILE}) for --vgg_convention=torchvision, got Keras' "
        f'HDF5 weights {path!r}; pass --vgg_convention=keras_caffe to use '
        f'them, or {_CONVERT_HINT}')
  try:
    with np.load(path) as data:
      arrays = {k: data[k] for k in data.files}
  except (OSError, ValueError) as err:
    raise ValueError(f'vgg_weights: {path!r} is not a readable .npz of '
                     f'torchvision VGG-16 weights ({err}); {_CONVERT_HINT}'
                     ) from err
  for name, shape in conv_shapes(FEATURE_BLOCKS).items():
    got = list(np.shape(arrays[name])) if name in arrays else 'missing'
    if got != list(shape):
      raise ValueError(f'vgg_weights: {path!r} array {name!r} expected shape '
                       f'{list(shape)}, got {got}; {_CONVERT_HINT}')
  return {k: np.asarray(v, np.float32) for k, v in arrays.items()}


def _check_h5_layers(path: str, names: Sequence[str]) -> None:
  """Raises ValueError unless the .h5 weights file holds every layer."""
  import h5py  # pylint: disable=g-import-not-at-top
  if _file_kind(path) == 'npz':
    raise ValueError(
        f"vgg_weights: expected Keras' VGG-16 weights ({VGG16_NOTOP_FILE}) "
        f'for --vgg_convention=keras_caffe, got the .npz {path!r}; pass '
        '--vgg_convention=torchvision to use torchvision weights')
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

  Only blocks 1-3 are built. The input convention follows the weights
  (module docstring): with ``'torchvision'`` the [-1, 1] RGB images go in
  as they are (AWA's trainer); with ``'keras_caffe'`` they are mapped to
  [0, 255], flipped to BGR and centred with the Caffe ImageNet mean, as
  ``keras.applications.vgg16.preprocess_input`` does. The layer computes in
  float32 whatever the global mixed-precision policy.

  Besides ``call``, :meth:`forward_with_activations` and :meth:`jvp` give
  the features' directional derivative along an image tangent from the
  stored activations (one extra pass of the convolutions, no second
  forward pass); AWA uses it for its gradient inner products.

  Args:
    weights: ``'imagenet'`` (the convention's file in the Keras cache:
      ``TORCHVISION_FILE`` or ``VGG16_NOTOP_FILE``), a path to such a file,
      or None for random weights (tests).
    convention: one of ``CONVENTIONS``.
  """

  def __init__(self, weights: Optional[str] = 'imagenet',
               convention: str = 'torchvision', **kwargs):
    kwargs.setdefault('trainable', False)
    kwargs['dtype'] = 'float32'
    super().__init__(**kwargs)
    if convention not in CONVENTIONS:
      raise ValueError(f'vgg_convention: expected one of {CONVENTIONS}, got '
                       f'{convention!r}')
    self.weights_path = weights
    self.convention = convention
    # Every activation is an output, for ``jvp``; ``call`` keeps the pools.
    self._network = network(FEATURE_BLOCKS, 'vgg16_blocks1to3')
    names = output_names(FEATURE_BLOCKS)
    self._feature_indices = tuple(names.index(n) for n in FEATURE_LAYERS)
    if weights is None:
      return
    if convention == 'torchvision':
      path = weights_lib.resolve(
          'vgg_weights', weights, what='torchvision VGG-16 ImageNet weights',
          cache_file=TORCHVISION_FILE, hint=_CONVERT_HINT)
      set_arrays(self._network, _load_torchvision_npz(path), FEATURE_BLOCKS)
    else:
      path = weights_lib.resolve(
          'vgg_weights', weights, what="Keras' VGG-16 ImageNet weights",
          cache_file=VGG16_NOTOP_FILE, url=VGG16_NOTOP_URL)
      _check_h5_layers(path, conv_names(FEATURE_BLOCKS))
      self._network.load_weights(path, by_name=True)

  def _preprocess(self, images: tf.Tensor) -> tf.Tensor:
    x = tf.cast(images, tf.float32)
    if self.convention == 'torchvision':
      return x
    x = (x + 1.0) * 127.5
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
    t = tf.cast(tangent, tf.float32)
    if self.convention == 'keras_caffe':
      t = t[..., ::-1] * 127.5
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
    config.update({'weights': self.weights_path,
                   'convention': self.convention})
    return config
