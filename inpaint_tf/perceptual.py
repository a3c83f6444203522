"""VGG-16 features, perceptual/style terms and the tunable TPL/TSL weights.

Implements the auxiliary losses of the AWA paper (Hui et al., "Auxiliary
Loss Reweighting for Image Inpainting"):

* Eq. 2/3: the perceptual term of layer n is
  ``mean|psi_n(out) - psi_n(gt)| + mean|psi_n(comp) - psi_n(gt)|`` and the
  style term the same on Gram matrices ``psi^T psi / (C*H*W)``, where
  ``psi_1..3`` are the outputs of VGG-16's first three max-pooling layers
  and ``comp = out * M + gt * (1 - M)`` is the completed image. This is the
  authors' ``weighted_generator_loss_func`` (criteria/loss.py) with their
  ``gram_matrix`` (utils/misc.py): L1 means over all elements, summed over
  the output and the completed image.
* Eq. 4/5 (TPL/TSL): term ``j`` is weighted by
  ``w_j = base_j * scale_j * sigmoid(phi_j)``, one ``phi`` per term (three
  perceptual, three style: six weights, as in the authors'
  ``models/auxiliary_loss_weight.py``). ``phi_j`` starts at
  ``-log(scale_j - 1)`` so that ``w_j = base_j`` and TPL/TSL start equal to
  the standard perceptual (0.1) and style (250) losses; the weights can grow
  to ``base * scale`` (the paper's lambda_p = 2, lambda_s = 750).

The term order everywhere is :data:`TERM_NAMES`:
``(perc_1, perc_2, perc_3, style_1, style_2, style_3)``.

VGG-16 weights are Keras' ImageNet weights
(``vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5``), read from the
Keras cache or from an explicit path. Nothing is downloaded: without the
file, :class:`VGGFeatures` raises one error saying where to put it.
"""

from __future__ import annotations

import os
from typing import Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf

from inpaint_tf import ops
from inpaint_tf.config import AWAConfig
from inpaint_tf.keras_api import keras

VGG16_NOTOP_FILE = 'vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5'
VGG16_NOTOP_URL = ('https://storage.googleapis.com/tensorflow/'
                   'keras-applications/vgg16/' + VGG16_NOTOP_FILE)
# Caffe-style ImageNet mean in BGR order (keras vgg16.preprocess_input).
_CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)
# VGG-16 convolutions of blocks 1-3: (name, filters); a 2x2 max pool closes
# each block. Names match Keras' VGG16 so its weight files load by name.
_VGG_BLOCKS = (
    (('block1_conv1', 64), ('block1_conv2', 64)),
    (('block2_conv1', 128), ('block2_conv2', 128)),
    (('block3_conv1', 256), ('block3_conv2', 256), ('block3_conv3', 256)),
)
FEATURE_LAYERS = ('block1_pool', 'block2_pool', 'block3_pool')
TERM_NAMES = ('perc_1', 'perc_2', 'perc_3', 'style_1', 'style_2', 'style_3')
# Column names of the weights CSV (``step`` first), see tools/plot_weights.py.
WEIGHT_NAMES = tuple('w_' + n for n in TERM_NAMES)


def keras_cache_path(filename: str = VGG16_NOTOP_FILE) -> str:
  """Where Keras keeps downloaded weights: ``$KERAS_HOME`` or ``~/.keras``."""
  home = os.environ.get('KERAS_HOME') or os.path.join(
      os.path.expanduser('~'), '.keras')
  return os.path.join(home, 'models', filename)


def resolve_vgg_weights(weights: Optional[str]) -> Optional[str]:
  """Turns the ``weights`` argument of :class:`VGGFeatures` into a file path.

  Args:
    weights: ``'imagenet'`` (the Keras cache file), a path to a Keras VGG-16
      ``.h5`` weights file, or None (random weights, for tests).

  Returns:
    The path of an existing file, or None for random weights.

  Raises:
    FileNotFoundError: with instructions when the file does not exist.
  """
  if weights is None:
    return None
  if weights == 'imagenet':
    candidates = [keras_cache_path()]
    fallback = os.path.join('/tmp', '.keras', 'models', VGG16_NOTOP_FILE)
    if fallback not in candidates:
      candidates.append(fallback)  # Keras' fallback when ~ is read-only.
    for path in candidates:
      if os.path.isfile(path):
        return path
    raise FileNotFoundError(
        'VGG-16 ImageNet weights not found: download '
        f'{VGG16_NOTOP_URL} and put it at {candidates[0]} (the Keras cache), '
        'or pass its path with --vgg_weights / vgg_weights=PATH')
  path = os.path.expanduser(str(weights))
  if not os.path.isfile(path):
    raise FileNotFoundError(
        f'vgg_weights: no such file {path!r}; expected a Keras VGG-16 .h5 '
        f'weights file such as {VGG16_NOTOP_FILE} (from {VGG16_NOTOP_URL})')
  return path


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
    path = resolve_vgg_weights(weights)
    inputs = keras.Input((None, None, 3), dtype=tf.float32)
    x = inputs
    activations = []
    pool_indices = []
    for block, convs in enumerate(_VGG_BLOCKS, start=1):
      for name, filters in convs:
        x = keras.layers.Conv2D(filters, 3, padding='same',
                                   activation='relu', name=name,
                                   dtype='float32')(x)
        activations.append(x)
      x = keras.layers.MaxPool2D(2, 2, name=f'block{block}_pool',
                                    dtype='float32')(x)
      pool_indices.append(len(activations))
      activations.append(x)
    # Every activation is an output, for ``jvp``; ``call`` keeps the pools.
    self._network = keras.Model(inputs, activations,
                                   name='vgg16_blocks1to3')
    self._pool_indices = tuple(pool_indices)
    self._network.trainable = False
    if path is not None:
      names = [name for convs in _VGG_BLOCKS for name, _ in convs]
      _check_h5_layers(path, names)
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
    return tuple(activations[i] for i in self._pool_indices), activations

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
    for convs in _VGG_BLOCKS:
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


def gram_matrix(features: tf.Tensor) -> tf.Tensor:
  """Gram matrix normalised by C*H*W (the authors' ``gram_matrix``).

  Args:
    features: [B,H,W,C] float.

  Returns:
    [B,C,C] float, ``sum_hw f[b,h,w,c] f[b,h,w,d] / (C*H*W)``.
  """
  return _gram(features, features)


def _gram(a: tf.Tensor, b: tf.Tensor) -> tf.Tensor:
  """``sum_hw a[b,h,w,c] b[b,h,w,d] / (C*H*W)``, [B,C,D]."""
  shape = tf.shape(a)
  size = tf.cast(shape[1] * shape[2] * shape[3], a.dtype)
  flat_a = tf.reshape(a, [shape[0], -1, shape[3]])
  flat_b = tf.reshape(b, [shape[0], -1, tf.shape(b)[3]])
  return tf.matmul(flat_a, flat_b, transpose_a=True) / size


def _mean_abs(a: tf.Tensor, b: tf.Tensor) -> tf.Tensor:
  return tf.reduce_mean(tf.abs(a - b))


class AuxiliaryTerms(tuple):
  """The six scalar terms of one batch, plus their linearisation.

  A tuple of six float32 scalars (see :func:`perceptual_style_terms`) with

  * ``pred``: the generator output the terms were computed from;
  * ``directional_derivatives(tangent)``: [6], the derivative of every term
    along a [B,H,W,3] tangent of ``pred``; that is the inner product
    ``<d term_j / d pred, tangent>``, computed by one forward-mode pass
    through the stored VGG activations instead of six backward passes.
  """

  def __new__(cls, values, pred, linearization):
    obj = super().__new__(cls, values)
    obj.pred = pred
    obj._linearization = linearization
    return obj

  def directional_derivatives(self, tangent: tf.Tensor) -> tf.Tensor:
    return self._linearization(tangent)


def perceptual_style_terms(vgg: VGGFeatures, pred: tf.Tensor,
                           ground_truth: tf.Tensor,
                           mask: tf.Tensor) -> AuxiliaryTerms:
  """Perceptual and style terms of the three VGG layers (Eqs. 2 and 3).

  Args:
    vgg: the feature extractor.
    pred: [B,H,W,3] generator output in [-1,1].
    ground_truth: [B,H,W,3] truth in [-1,1].
    mask: [B,H,W,1] 1 = hole, 0 = known.

  Returns:
    :class:`AuxiliaryTerms`, a tuple of six float32 scalars ``(perc_1,
    perc_2, perc_3, style_1, style_2, style_3)`` (separate tensors, so that
    the gradient of one term runs through its own VGG layers only); term n
    compares the output and the completed image with the truth.
  """
  ops.check_tensor('pred', pred, 4, '[B,H,W,3] float in [-1,1]', 3)
  ops.check_tensor('ground_truth', ground_truth, 4,
                   '[B,H,W,3] float in [-1,1]', 3)
  ops.check_tensor('mask', mask, 4, '[B,H,W,1] float, 1 = hole', 1)
  pred32 = tf.cast(pred, tf.float32)
  ground_truth = tf.cast(ground_truth, tf.float32)
  mask = tf.cast(mask, tf.float32)
  comp = pred32 * mask + ground_truth * (1.0 - mask)
  batch = tf.shape(pred32)[0]
  # Output and completed image share one pass; the truth gets its own so
  # that no backward pass is spent on it.
  both, activations = vgg.forward_with_activations(
      tf.concat([pred32, comp], axis=0))
  truth = [tf.stop_gradient(f) for f in vgg(ground_truth)]
  perceptual, style = [], []
  for f, f_gt in zip(both, truth):
    f_out, f_comp = f[:batch], f[batch:]
    perceptual.append(_mean_abs(f_out, f_gt) + _mean_abs(f_comp, f_gt))
    g_gt = gram_matrix(f_gt)
    style.append(_mean_abs(gram_matrix(f_out), g_gt) +
                 _mean_abs(gram_matrix(f_comp), g_gt))

  def linearization(tangent: tf.Tensor) -> tf.Tensor:
    # d mean|a - c| = mean(sign(a - c) da); d G(f) = sym(f^T df) / (C*H*W).
    tangent = tf.cast(tangent, tf.float32)
    both_t = vgg.jvp(activations, tf.concat([tangent, tangent * mask], 0))
    d_perc, d_style = [], []
    for f, t, f_gt in zip(both, both_t, truth):
      f = tf.stop_gradient(f)
      g_gt = gram_matrix(f_gt)
      dp, ds = 0.0, 0.0
      for part in (slice(None, batch), slice(batch, None)):
        fp, tp = f[part], t[part]
        dp += tf.reduce_mean(tf.sign(fp - f_gt) * tp)
        half = _gram(fp, tp)
        ds += tf.reduce_mean(tf.sign(gram_matrix(fp) - g_gt) *
                             (half + tf.transpose(half, [0, 2, 1])))
      d_perc.append(dp)
      d_style.append(ds)
    return tf.stack(d_perc + d_style)

  return AuxiliaryTerms(perceptual + style, pred, linearization)


class TunableWeights(tf.Module):
  """Loss weights ``w = base * scale * sigmoid(phi)`` (TPL/TSL, Eqs. 4-5).

  ``phi`` starts at ``-log(scale - 1)``, where ``w = base``; ``w`` stays in
  ``(0, base * scale)``. Reweighters (``inpaint_tf.awa``) update ``phi``.

  Args:
    base: [N] base weights (the standard losses' weights).
    scale: [N] factors > 1; the largest weight is ``base * scale``.
    names: N term names (default :data:`TERM_NAMES` when N == 6).
  """

  def __init__(self, base: Sequence[float], scale: Sequence[float],
               names: Optional[Sequence[str]] = None,
               name: Optional[str] = None):
    super().__init__(name=name)
    base = np.asarray(base, np.float64).reshape(-1)
    scale = np.asarray(scale, np.float64).reshape(-1)
    if base.shape != scale.shape or base.size == 0:
      raise ValueError(f'scale: expected {base.size} values like base, got '
                       f'{scale.size}')
    if np.any(scale <= 1.0):
      raise ValueError(f'scale: expected values > 1, got {scale.tolist()}')
    if names is None:
      names = TERM_NAMES if base.size == len(TERM_NAMES) else tuple(
          f'term_{i + 1}' for i in range(base.size))
    if len(names) != base.size:
      raise ValueError(f'names: expected {base.size} names, got {len(names)}')
    self.names = tuple(names)
    self.base = tf.constant(base, tf.float32)
    self.scale = tf.constant(scale, tf.float32)
    self._phi_init = (-np.log(scale - 1.0)).astype(np.float32)
    self.phi = tf.Variable(self._phi_init, trainable=True, name='phi')

  @property
  def num_terms(self) -> int:
    return int(self.base.shape[0])

  def __call__(self) -> tf.Tensor:
    """[N] float32 current weights."""
    return self.base * self.scale * tf.sigmoid(self.phi)

  def reset(self) -> None:
    """Puts ``phi`` back to its initial value (weights equal ``base``)."""
    self.phi.assign(self._phi_init)


def tpl_tsl_weights(config: AWAConfig = AWAConfig()) -> TunableWeights:
  """The six TPL/TSL weights with the authors' bases and scales."""
  n = len(FEATURE_LAYERS)
  return TunableWeights(
      base=[config.perceptual_base] * n + [config.style_base] * n,
      scale=[config.perceptual_scale] * n + [config.style_scale] * n,
      names=TERM_NAMES, name='tpl_tsl')


class TunableAuxiliaryLoss(tf.Module):
  """TPL + TSL: six VGG terms weighted by :class:`TunableWeights`.

  ``terms(pred, gt, mask)`` gives the six unweighted scalar terms (an
  :class:`AuxiliaryTerms`) that the reweighters in ``inpaint_tf.awa`` take
  from a ``loss_fn``; calling the object gives the
  weighted sum ``sum_j w_j * term_j`` (the standard perceptual + style
  losses while ``phi`` keeps its initial value).

  Args:
    vgg: a :class:`VGGFeatures`; built from ``vgg_weights`` when None.
    vgg_weights: see :class:`VGGFeatures` (used only when ``vgg`` is None).
    config: bases and scales.
  """

  def __init__(self, vgg: Optional[VGGFeatures] = None,
               vgg_weights: Optional[str] = 'imagenet',
               config: AWAConfig = AWAConfig(), name: Optional[str] = None):
    super().__init__(name=name)
    self.vgg = vgg if vgg is not None else VGGFeatures(weights=vgg_weights)
    self.tunable = tpl_tsl_weights(config)

  def terms(self, pred: tf.Tensor, ground_truth: tf.Tensor,
            mask: tf.Tensor) -> Tuple[tf.Tensor, ...]:
    """Six unweighted scalar terms, see :func:`perceptual_style_terms`."""
    return perceptual_style_terms(self.vgg, pred, ground_truth, mask)

  def __call__(self, pred: tf.Tensor, ground_truth: tf.Tensor,
               mask: tf.Tensor,
               weights: Optional[tf.Tensor] = None) -> tf.Tensor:
    """Scalar ``sum_j w_j term_j``; ``weights`` [6] replaces the tunable w."""
    w = self.tunable() if weights is None else weights
    return tf.reduce_sum(w * tf.stack(self.terms(pred, ground_truth, mask)))
