"""Perceptual and style terms on VGG-16 features, and TPL/TSL (AWA paper).

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

The features come from ``vgg.VGGFeatures`` (by default torchvision's
ImageNet VGG-16 fed the [-1, 1] RGB images, as the authors' trainer; never
downloaded); the weights ``w`` are a ``reweighting.TunableWeights``.
"""

from __future__ import annotations

from typing import Optional, Tuple

import tensorflow as tf

from inpaint_tf import ops
from inpaint_tf import vgg

TERM_NAMES = ('perc_1', 'perc_2', 'perc_3', 'style_1', 'style_2', 'style_3')
# Column names of the weights CSV (``step`` first), see tools/plot_weights.py.
WEIGHT_NAMES = tuple('w_' + n for n in TERM_NAMES)


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


def perceptual_style_terms(features: vgg.VGGFeatures, pred: tf.Tensor,
                           ground_truth: tf.Tensor,
                           mask: tf.Tensor) -> AuxiliaryTerms:
  """Perceptual and style terms of the three VGG layers (Eqs. 2 and 3).

  Args:
    features: the feature extractor.
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
  comp = ops.composite(pred32, ground_truth, mask)
  batch = tf.shape(pred32)[0]
  # Output and completed image share one pass; the truth gets its own so
  # that no backward pass is spent on it.
  both, activations = features.forward_with_activations(
      tf.concat([pred32, comp], axis=0))
  truth = [tf.stop_gradient(f) for f in features(ground_truth)]
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
    both_t = features.jvp(activations, tf.concat([tangent, tangent * mask], 0))
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


class TunableAuxiliaryLoss(tf.Module):
  """TPL + TSL: six VGG terms weighted by a ``reweighting.TunableWeights``.

  ``terms(pred, gt, mask)`` gives the six unweighted scalar terms (an
  :class:`AuxiliaryTerms`) that the reweighters (``inpaint_tf.reweighting``)
  take from a ``loss_fn``; calling the object gives the weighted sum
  ``sum_j w_j * term_j`` (the standard perceptual + style losses while
  ``phi`` keeps its initial value).

  Args:
    tunable: the six weights (``reweighting.tpl_tsl_weights``).
    features: a ``vgg.VGGFeatures``; built from ``vgg_weights`` and
      ``vgg_convention`` when None.
    vgg_weights, vgg_convention: see ``vgg.VGGFeatures`` (``weights``,
      ``convention``; used only when ``features`` is None).
  """

  def __init__(self, tunable, features: Optional[vgg.VGGFeatures] = None,
               vgg_weights: Optional[str] = 'imagenet',
               vgg_convention: str = 'torchvision',
               name: Optional[str] = None):
    super().__init__(name=name)
    self.vgg = (features if features is not None
                else vgg.VGGFeatures(weights=vgg_weights,
                                     convention=vgg_convention))
    self.tunable = tunable

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
