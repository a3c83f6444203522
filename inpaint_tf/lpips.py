"""LPIPS (VGG variant, v0.1) in TensorFlow.

Zhang et al., "The Unreasonable Effectiveness of Deep Features as a
Perceptual Metric" (CVPR 2018), as implemented by the ``lpips`` package
(``lpips.LPIPS(net='vgg', version='0.1')``, evaluation mode):

1. scale the [-1, 1] RGB inputs with the ``ScalingLayer`` constants,
   ``(x - shift) / scale``;
2. take the torchvision VGG-16 activations ``relu1_2, relu2_2, relu3_3,
   relu4_3, relu5_3``;
3. unit-normalise each feature vector over channels,
   ``f / (||f||_2 + 1e-10)``;
4. square the difference of the two images' normalised features, weight the
   channels with the layer's linear 1x1 head (no bias), average over space;
5. sum over the five layers.

The distance needs the backbone LPIPS was calibrated on (torchvision's
VGG-16, not Keras' Caffe-converted one) and the linear heads. Both come from
one ``.npz`` written by ``tools/convert_lpips.py`` from the ``lpips``
package's ``weights/v0.1/vgg.pth`` and torchvision's VGG-16 weights (the
conversion needs PyTorch; this module does not). Array names in the file:
``lin_0 .. lin_4`` ([C] head weights) and ``block{b}_conv{c}_kernel``
([3,3,Cin,Cout]) / ``block{b}_conv{c}_bias`` ([Cout]).
"""

from __future__ import annotations

import re
from typing import Dict, Mapping, Tuple, Union

import numpy as np
import tensorflow as tf

from inpaint_tf import ops
from inpaint_tf import vgg
from inpaint_tf import weights as weights_lib
from inpaint_tf.keras_api import keras

LAYERS = ('relu1_2', 'relu2_2', 'relu3_3', 'relu4_3', 'relu5_3')
CHANNELS = (64, 128, 256, 512, 512)
# lpips.ScalingLayer (RGB).
SHIFT = (-0.030, -0.088, -0.188)
SCALE = (0.458, 0.448, 0.450)
_EPS = 1e-10
# The activations LPIPS compares: each block's last ReLU (relu1_2 ...).
_TAPS = tuple(vgg.output_names(len(vgg.BLOCKS), last_pool=False).index(
    convs[-1][0]) for convs in vgg.BLOCKS)


def expected_arrays() -> Dict[str, Tuple[int, ...]]:
  """Names and shapes of the arrays of an LPIPS weights file."""
  shapes = vgg.conv_shapes(len(vgg.BLOCKS))
  for k, c in enumerate(CHANNELS):
    shapes[f'lin_{k}'] = (c,)
  return shapes


def arrays_from_torch(heads: Mapping[str, np.ndarray],
                      backbone: Mapping[str, np.ndarray]
                      ) -> Dict[str, np.ndarray]:
  """Converts PyTorch state dicts (as numpy arrays) to the ``.npz`` layout.

  Args:
    heads: the ``lpips`` package's ``vgg.pth`` state dict; keys
      ``lin{k}.model.{i}.weight`` with shape [1,C,1,1].
    backbone: torchvision ``vgg16`` state dict (keys
      ``features.{i}.weight`` [Cout,Cin,3,3] and ``features.{i}.bias``), or a
      full LPIPS state dict (keys ``net.slice{s}.{i}.weight``), see
      ``vgg.torchvision_arrays``.

  Returns:
    Dict of float32 arrays named as :func:`expected_arrays`.

  Raises:
    ValueError: naming the missing or mis-shaped entry.
  """
  out = {}
  for k, c in enumerate(CHANNELS):
    keys = [key for key in heads
            if re.fullmatch(rf'(module\.)?lin{k}\.model\.\d+\.weight', key)]
    if len(keys) != 1:
      raise ValueError(f'heads: expected one lin{k}.model.*.weight entry, '
                       f'got {keys or "none"}')
    w = np.asarray(heads[keys[0]], np.float32)
    if w.size != c:
      raise ValueError(f'heads: {keys[0]} expected {c} values, got shape '
                       f'{list(w.shape)}')
    out[f'lin_{k}'] = w.reshape(c)
  out.update(vgg.torchvision_arrays(backbone, argument='backbone'))
  return out


def random_arrays(seed: int = 0) -> Dict[str, np.ndarray]:
  """Random LPIPS weights (He-normal convolutions, positive heads).

  The distance they define is not LPIPS; they serve tests and timing.
  """
  rng = np.random.default_rng(seed)
  arrays = {}
  for name, shape in expected_arrays().items():
    if name.startswith('lin_'):
      arrays[name] = rng.uniform(0.0, 1.0, shape).astype(np.float32)
    elif name.endswith('_bias'):
      arrays[name] = rng.normal(0.0, 0.01, shape).astype(np.float32)
    else:
      fan_in = shape[0] * shape[1] * shape[2]
      arrays[name] = rng.normal(0.0, np.sqrt(2.0 / fan_in),
                                shape).astype(np.float32)
  return arrays


def _resolve_arrays(weights) -> Dict[str, np.ndarray]:
  """Loads (path) or takes (mapping) the arrays and checks their shapes."""
  hint = ('write it with: python -m tools.convert_lpips '
          '--input=<lpips package>/weights/v0.1/vgg.pth --output=lpips_vgg.npz')
  if isinstance(weights, Mapping):
    arrays, where = dict(weights), 'the given arrays'
  else:
    path = weights_lib.resolve('lpips_weights', weights,
                               what='LPIPS weights (.npz)', hint=hint)
    with np.load(path) as data:
      arrays = {k: data[k] for k in data.files}
    where = repr(path)
  for name, shape in expected_arrays().items():
    if name not in arrays or np.shape(arrays[name]) != shape:
      got = list(np.shape(arrays[name])) if name in arrays else 'missing'
      raise ValueError(f'lpips_weights: {where} array {name!r} expected '
                       f'shape {list(shape)}, got {got}; {hint}')
  return {k: np.asarray(v, np.float32) for k, v in arrays.items()}


def _safe_norm(x: tf.Tensor) -> tf.Tensor:
  """||x||_2 over the last axis with a zero (not NaN) gradient at 0."""
  sq = tf.reduce_sum(tf.square(x), axis=-1, keepdims=True)
  positive = sq > 0.0
  return tf.where(positive, tf.sqrt(tf.where(positive, sq, 1.0)), 0.0)


@keras.utils.register_keras_serializable('inpaint_tf')
class LPIPS(keras.layers.Layer):
  """LPIPS distance (VGG, v0.1); frozen, float32.

  Call ``lpips(images, reference)`` with two [B,H,W,3] float tensors in
  [-1,1] (H, W >= 16) to get the [B] distances.

  Args:
    weights: path of the ``.npz`` written by ``tools/convert_lpips.py`` (or
      a mapping with the same arrays, see :func:`expected_arrays`; such a
      layer's config holds no weights and cannot be rebuilt from it).
      Required; a missing or malformed file raises one error saying how to
      make it.
  """

  def __init__(self, weights: Union[None, str, Mapping[str, np.ndarray]] = None,
               **kwargs):
    kwargs.setdefault('trainable', False)
    kwargs['dtype'] = 'float32'
    super().__init__(**kwargs)
    arrays = _resolve_arrays(weights)
    self.weights_path = None if isinstance(weights, Mapping) else weights
    self._backbone = vgg.network(len(vgg.BLOCKS), 'lpips_vgg16',
                                 last_pool=False)
    vgg.set_arrays(self._backbone, arrays, len(vgg.BLOCKS))
    self._heads = [
        self.add_weight(name=f'lin_{k}', shape=(c,), dtype=tf.float32,
                        initializer=keras.initializers.Constant(
                            arrays[f'lin_{k}']), trainable=False)
        for k, c in enumerate(CHANNELS)]

  @classmethod
  def with_random_weights(cls, seed: int = 0, **kwargs) -> 'LPIPS':
    """An LPIPS-shaped network with :func:`random_arrays` (tests, timing)."""
    return cls(weights=random_arrays(seed), **kwargs)

  def features(self, images: tf.Tensor) -> Tuple[tf.Tensor, ...]:
    """The five unit-normalised backbone activations of [B,H,W,3] images."""
    x = (tf.cast(images, tf.float32) - tf.constant(SHIFT)) / tf.constant(SCALE)
    activations = self._backbone(x)
    return tuple(activations[i] / (_safe_norm(activations[i]) + _EPS)
                 for i in _TAPS)

  def call(self, images: tf.Tensor, reference: tf.Tensor) -> tf.Tensor:
    """LPIPS distance per sample.

    Args:
      images: [B,H,W,3] float in [-1,1], RGB, H and W >= 16.
      reference: [B,H,W,3] float in [-1,1].

    Returns:
      [B] float32 distances (0 for identical images).
    """
    ops.check_tensor('images', images, 4, '[B,H,W,3] float in [-1,1]', 3)
    ops.check_tensor('reference', reference, 4, '[B,H,W,3] float in [-1,1]',
                     3)
    # Two passes rather than one on the concatenation: when only ``images``
    # needs a gradient, none is spent on ``reference``.
    total = 0.0
    for head, f0, f1 in zip(self._heads, self.features(images),
                            self.features(reference)):
      weighted = tf.tensordot(tf.square(f0 - f1), head, axes=[[3], [0]])
      total += tf.reduce_mean(weighted, axis=[1, 2])
    return total

  def get_config(self):
    config = super().get_config()
    config.update({'weights': self.weights_path})
    return config
