"""Loss terms of GEPE-Net (Eq. 3-10) with GMCNN's numerics.

* ``spatial_variant_weights``: the confidence-driven weight map ``M_w`` of
  the spatial-variant reconstruction loss, GMCNN's ``priority_loss_mask``
  built on its ``gauss_kernel`` (``tensorflow/net/ops.py``).
* ``svw_reconstruction_loss``: ``L_svw``, ``|Igt - G(I)| * M_w`` averaged
  over each hole's bounding box as GMCNN does (or over the whole image).
* ``known_region_loss``: GMCNN's ``ae_loss`` (L1 on the known region,
  normalised by its area); off by default, Eq. 10 has no such term.
* ``iterative_guidance_loss``: the IGL, Eq. 3-6.
* ``wgan_critic_loss`` / ``wgan_generator_loss``: GMCNN's ``gan_wgan_loss``.
* ``masked_gradient_penalty``: GMCNN's ``random_interpolates`` +
  ``gradients_penalty`` with a mask on the gradient (WGAN-GP, Gulrajani et
  al. 2017), with an epsilon inside the square root.

All images are ``float32`` in ``[-1, 1]``; masks are 1 = hole, 0 = known.
"""

from __future__ import annotations

import math
from typing import Callable, Optional, Sequence

import numpy as np
import tensorflow as tf

from inpaint_tf import config as config_lib
from inpaint_tf import ops

_LOSS = config_lib.LossConfig()


def _normal_cdf(x: np.ndarray) -> np.ndarray:
  """Standard normal CDF in float64 (what ``scipy.stats.norm.cdf`` gives)."""
  erf = np.vectorize(math.erf, otypes=[np.float64])
  return 0.5 * (1.0 + erf(np.asarray(x, np.float64) / math.sqrt(2.0)))


def gauss_kernel(size: int = _LOSS.svw_size,
                 sigma: float = _LOSS.svw_sigma) -> np.ndarray:
  """GMCNN's ``gauss_kernel``: a normalised 2-D kernel from normal CDF bins.

  The 1-D profile is the probability mass of a standard normal over ``size``
  equal bins spanning ``[-sigma - d/2, sigma + d/2]`` with
  ``d = (2 * sigma + 1) / size``; the 2-D kernel is the square root of the
  outer product, normalised to sum 1. With GMCNN's ``sigma = 1/40`` the span
  is tiny and the kernel is almost a box filter; that is the original's
  behaviour and is kept.

  Args:
    size: kernel side length.
    sigma: half-width of the binned interval (in standard deviations).

  Returns:
    [size,size] float32 numpy array summing to 1.
  """
  factor = _kernel_factor(size, sigma)
  return np.outer(factor, factor).astype(np.float32)


def _kernel_factor(size: int, sigma: float) -> np.ndarray:
  """``v`` with ``gauss_kernel(size, sigma) == outer(v, v)``, float64 [size].

  ``sqrt(outer(p, p)) / sum = outer(sqrt(p), sqrt(p)) / sum(sqrt(p))^2``: the
  kernel is separable.
  """
  interval = (2.0 * sigma + 1.0) / size
  edges = np.linspace(-sigma - interval / 2.0, sigma + interval / 2.0,
                      size + 1)
  root = np.sqrt(np.diff(_normal_cdf(edges)))
  return root / root.sum()


def spatial_variant_weights(mask: tf.Tensor,
                            size: int = _LOSS.svw_size,
                            sigma: float = _LOSS.svw_sigma,
                            iterations: int = _LOSS.svw_iterations
                            ) -> tf.Tensor:
  """Confidence-driven weights ``M_w`` (GMCNN's ``priority_loss_mask``).

  Starting from ``C = 1 - M``, repeats ``iterations`` times
  ``M_w = conv(C, g) * M``; ``C = M_w + (1 - M)`` with the kernel ``g`` of
  ``gauss_kernel(size, sigma)`` and SAME zero padding, so hole pixels near
  the known region get weights close to 1 and the weight decays towards the
  hole's centre. The kernel is separable, so each convolution runs as a
  column and a row pass, each a product with a banded [H,H] (or [W,W])
  matrix that holds the kernel taps (equal to the 2-D convolution up to
  float32 rounding, and many times faster on CPUs than a one-channel
  convolution).

  Args:
    mask: [B,H,W,1] float, 1 = hole.
    size: kernel side length.
    sigma: kernel parameter (see ``gauss_kernel``).
    iterations: number of propagation steps (>= 1).

  Returns:
    [B,H,W,1] float32 weights in [0,1], zero outside the hole.
  """
  ops.check_tensor('mask', mask, 4, '[B,H,W,1] float', channels=1)
  if iterations < 1:
    raise ValueError(f'iterations: expected >= 1, got {iterations}')
  mask = tf.cast(mask, tf.float32)[..., 0]
  factor = tf.constant(_kernel_factor(size, sigma).astype(np.float32))
  columns = _same_correlation_matrix(factor, tf.shape(mask)[1])
  rows = _same_correlation_matrix(factor, tf.shape(mask)[2])
  known = 1.0 - mask
  confidence = known
  weights = None
  for _ in range(iterations):
    weights = tf.einsum('ir,brw,jw->bij', columns, confidence, rows)
    weights = weights * mask
    confidence = weights + known
  return weights[..., tf.newaxis]


def _same_correlation_matrix(factor: tf.Tensor, n: tf.Tensor) -> tf.Tensor:
  """[n,n] ``A`` with ``A @ x`` = SAME zero-padded correlation of ``x``.

  ``tf.nn.conv2d`` with a ``k``-tap kernel and SAME padding reads
  ``x[i - (k - 1) // 2 + j]`` for tap ``j``, zero outside ``[0, n)``; ``A``
  holds tap ``r - i + (k - 1) // 2`` at ``(i, r)`` and zero elsewhere.
  """
  k = int(factor.shape[0])
  index = tf.range(n)
  tap = index[tf.newaxis, :] - index[:, tf.newaxis] + (k - 1) // 2
  inside = (tap >= 0) & (tap < k)
  return tf.where(inside, tf.gather(factor, tf.clip_by_value(tap, 0, k - 1)),
                  0.0)


def svw_reconstruction_loss(gt: tf.Tensor, pred: tf.Tensor,
                            weights: tf.Tensor,
                            mask: Optional[tf.Tensor] = None,
                            normalization: str = _LOSS.svw_normalization
                            ) -> tf.Tensor:
  """Spatial-variant-weight L1 ``|Igt - G(I)| * M_w`` (Eq. 7), normalised.

  The paper writes the loss as a norm without saying what it is divided
  by; its weights (Eq. 10) come from GMCNN, whose normalisation is:

  * ``'hole_bbox'``: GMCNN's (``tensorflow/net/network.py``, ``l1_loss``
    for rectangular holes): the mean over the hole's bounding box (its
    ``local_patch``), here per sample, ``sum(|Igt - G(I)| * M_w) / (3 *
    box area)``, then the batch mean. For free-form strokes the box spans
    most of the image, close to GMCNN's whole-image mean for strokes.
  * ``'image'``: the mean over the whole image, ``mean(|Igt - G(I)| *
    M_w)``; for a hole a quarter of the image this is about 4x smaller.

  Args:
    gt: [B,H,W,3] float32 in [-1,1], ground truth.
    pred: [B,H,W,3] float32 in [-1,1], generator output.
    weights: [B,H,W,1] (or [1,H,W,1]) from ``spatial_variant_weights``.
    mask: [B,H,W,1] float, 1 = hole; needed for ``'hole_bbox'``.
    normalization: one of ``config.SVW_NORMALIZATIONS``.

  Returns:
    Scalar float32.
  """
  weighted = tf.abs(gt - pred) * weights
  if normalization == 'image':
    return tf.reduce_mean(weighted)
  if normalization != 'hole_bbox':
    raise ValueError(f'normalization: expected one of '
                     f'{config_lib.SVW_NORMALIZATIONS}, got {normalization!r}')
  if mask is None:
    raise ValueError("mask: expected the [B,H,W,1] hole mask for "
                     "normalization 'hole_bbox', got None")
  mask = tf.cast(mask, tf.float32) * tf.ones_like(weighted[..., :1])
  boxes = ops.hole_bboxes(mask)
  rows = tf.range(tf.shape(mask)[1])[tf.newaxis, :]
  cols = tf.range(tf.shape(mask)[2])[tf.newaxis, :]
  in_rows = (rows >= boxes[:, 0:1]) & (rows <= boxes[:, 2:3])
  in_cols = (cols >= boxes[:, 1:2]) & (cols <= boxes[:, 3:4])
  box = tf.cast(in_rows[:, :, tf.newaxis] & in_cols[:, tf.newaxis, :],
                tf.float32)[..., tf.newaxis]
  area = tf.reduce_sum(box, axis=[1, 2, 3])
  channels = tf.cast(tf.shape(weighted)[-1], tf.float32)
  per_sample = tf.reduce_sum(weighted * box, axis=[1, 2, 3]) / (
      area * channels)
  return tf.reduce_mean(per_sample)


def known_region_loss(gt: tf.Tensor, pred: tf.Tensor,
                      mask: tf.Tensor) -> tf.Tensor:
  """L1 on the known region normalised by its area (GMCNN's ``ae_loss``).

  ``mean(|Igt - G(I)| * (1 - M)) / mean(1 - M)``; zero when nothing is
  known. (GMCNN adds this term twice after pretraining; the doubling is a
  weight, which belongs to ``LossConfig.gamma_ae``.)

  Args:
    gt: [B,H,W,3] float32 in [-1,1].
    pred: [B,H,W,3] float32 in [-1,1].
    mask: [B,H,W,1] or [1,H,W,1] float32, 1 = hole.

  Returns:
    Scalar float32.
  """
  known = 1.0 - tf.cast(mask, gt.dtype)
  known_full = known * tf.ones_like(gt[..., :1])
  return tf.math.divide_no_nan(
      tf.reduce_mean(tf.abs(gt - pred) * known), tf.reduce_mean(known_full))


def iterative_guidance_loss(
    features: Sequence[tf.Tensor], targets: Sequence[tf.Tensor],
    stop_gradient: bool = _LOSS.igl_stop_gradient) -> tf.Tensor:
  """Iterative guidance loss ``sum_i mean|x_ip - E_i(Igt)|`` (Eq. 3-6).

  ``features`` are the perceptual encoder features ``(x3p, x4p, x5p)`` of the
  masked input and ``targets`` the same encoder layers run on the ground
  truth without the perception operation (``GeneratorOutput.targets``).

  By default gradients reach both sides, as Eq. 4-6 are written: the
  encoder weights are shared, so the loss moves ``E_i(Igt)`` as well as the
  perceptual features. With ``stop_gradient`` the targets are constants
  within a step, but they still move between steps with the shared
  weights; on the demo task (``python -m tools.study
  --runs=recon,recon_iglsg``, docs/training_study.md) that moving target
  made the IGL grow from 0.08 to over 2000 by step 400 and cost 4.3 dB of
  validation PSNR after 800 steps, while without it the IGL fell steadily.

  Args:
    features: sequence of [B,h_i,w_i,c_i] float tensors.
    targets: sequence of tensors of the same shapes.
    stop_gradient: treat ``targets`` as constants.

  Returns:
    Scalar float32 (0 when both sequences are empty).
  """
  features, targets = tuple(features), tuple(targets)
  if len(features) != len(targets):
    raise ValueError(
        f'features, targets: expected sequences of equal length, got '
        f'{len(features)} and {len(targets)}')
  total = tf.constant(0.0, tf.float32)
  for i, (feature, target) in enumerate(zip(features, targets)):
    if feature.shape.is_fully_defined() and target.shape.is_fully_defined():
      if feature.shape != target.shape:
        raise ValueError(
            f'targets[{i}]: expected shape {feature.shape.as_list()} '
            f'(that of features[{i}]), got {target.shape.as_list()}')
    if stop_gradient:
      target = tf.stop_gradient(target)
    diff = tf.cast(feature, tf.float32) - tf.cast(target, tf.float32)
    total += tf.reduce_mean(tf.abs(diff))
  return total


def wgan_critic_loss(real_scores: tf.Tensor,
                     fake_scores: tf.Tensor) -> tf.Tensor:
  """Critic loss ``mean(fake) - mean(real)`` (GMCNN's ``gan_wgan_loss``).

  Args:
    real_scores: [B,1] critic outputs on real images.
    fake_scores: [B,1] critic outputs on completed images.

  Returns:
    Scalar float32.
  """
  return tf.reduce_mean(fake_scores) - tf.reduce_mean(real_scores)


def wgan_generator_loss(fake_scores: tf.Tensor) -> tf.Tensor:
  """Generator adversarial loss ``-mean(fake)``.

  Args:
    fake_scores: [B,1] critic outputs on completed images.

  Returns:
    Scalar float32.
  """
  return -tf.reduce_mean(fake_scores)


def masked_gradient_penalty(critic: Callable[[tf.Tensor], tf.Tensor],
                            real: tf.Tensor, fake: tf.Tensor,
                            mask: Optional[tf.Tensor],
                            alpha: Optional[tf.Tensor] = None,
                            epsilon: float = 1e-10,
                            gradient_scale=None) -> tf.Tensor:
  """WGAN-GP with the slope taken over the hole (GMCNN's gradients_penalty).

  ``x = real + alpha * (fake - real)`` with one ``alpha ~ U[0,1)`` per
  sample; ``g = d critic(x) / d x``; ``slope = sqrt(sum(g^2 * mask) + eps)``
  per sample; penalty ``mean((slope - 1)^2)``. The gradient is taken with an
  inner ``GradientTape``, so an outer tape over the critic's variables can
  differentiate the penalty (second order). The critic must score each
  sample independently (no batch statistics).

  Args:
    critic: callable mapping [B,H,W,C] to [B,1] scores.
    real: [B,H,W,C] float real images (or crops).
    fake: [B,H,W,C] float completed images (or crops).
    mask: [B,H,W,1], [1,H,W,1] or [B,H,W,C] float weights on the gradient
      (1 = hole); None for the plain, unmasked penalty.
    alpha: optional [B] or [B,1,1,1] interpolation factors; sampled
      uniformly when None.
    epsilon: added inside the square root (keeps its gradient finite).
    gradient_scale: optional [] float32 (the loss scale under mixed
      precision): the scores are multiplied by it before the inner gradient
      and the gradient divided by it in float32, so that a float16 critic's
      backward pass neither underflows nor silently loses precision; an
      overflow makes the penalty non-finite, and the loss-scale optimiser
      then skips the step and lowers the scale, as for any other gradient.

  Returns:
    Scalar penalty (before the ``theta_gp`` weight).
  """
  ops.check_tensor('real', real, 4, '[B,H,W,C] float')
  ops.check_tensor('fake', fake, 4, '[B,H,W,C] float')
  if (real.shape.is_fully_defined() and fake.shape.is_fully_defined()
      and real.shape != fake.shape):
    raise ValueError(f'fake: expected shape {real.shape.as_list()} (that of '
                     f'real), got {fake.shape.as_list()}')
  if mask is not None:
    ops.check_tensor('mask', mask, 4, '[B,H,W,1] float')
  batch = tf.shape(real)[0]
  if alpha is None:
    alpha = tf.random.uniform([batch, 1, 1, 1], dtype=real.dtype)
  else:
    alpha = tf.reshape(tf.cast(alpha, real.dtype), [-1, 1, 1, 1])
  interpolates = real + alpha * (fake - real)
  with tf.GradientTape() as tape:
    tape.watch(interpolates)
    scores = critic(interpolates)
    if gradient_scale is not None:
      scores = tf.cast(scores, tf.float32) * gradient_scale
  grads = tape.gradient(scores, interpolates)
  if gradient_scale is not None:
    grads = tf.cast(grads, tf.float32) / gradient_scale
  squares = tf.square(grads)
  if mask is not None:
    squares = squares * tf.cast(mask, squares.dtype)
  slopes = tf.sqrt(tf.reduce_sum(squares, axis=[1, 2, 3]) + epsilon)
  return tf.reduce_mean(tf.square(slopes - 1.0))
