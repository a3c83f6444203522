"""Auxiliary Weights Adaptation (Algorithm 1, Eq. 8; see the package doc)."""

from __future__ import annotations

from typing import Callable, List, Optional, Sequence, Tuple

import tensorflow as tf

from inpaint_tf import lpips as lpips_lib
from inpaint_tf import ops
from inpaint_tf.config import AWAConfig
from inpaint_tf.config import GUIDANCE_METRICS
from inpaint_tf.keras_api import keras
from inpaint_tf.reweighting import base
from inpaint_tf.reweighting.tunable import TunableWeights


def lpips_guidance(lpips: lpips_lib.LPIPS) -> Callable[..., tf.Tensor]:
  """Guidance metric: mean LPIPS of the completed image against the truth."""

  def metric(completed: tf.Tensor, ground_truth: tf.Tensor) -> tf.Tensor:
    return tf.reduce_mean(lpips(completed, ground_truth))

  return metric


def mae_guidance(completed: tf.Tensor, ground_truth: tf.Tensor) -> tf.Tensor:
  """Guidance metric: mean absolute error in [0, 1] units (whole image)."""
  return 0.5 * tf.reduce_mean(tf.abs(tf.cast(completed, tf.float32) -
                                     tf.cast(ground_truth, tf.float32)))


class AWAReweighter(base.PhiOptimizerMixin, base.Reweighter):
  """Auxiliary Weights Adaptation (Algorithm 1, Eq. 8); see module doc.

  Args:
    tunable, generator, variables, config: as for ``base.Reweighter``
      (``config.lookahead_steps`` is K).
    guidance: ``'lpips'`` or ``'mae'`` (``config.guidance`` when None).
    lpips: the LPIPS network for ``guidance='lpips'``.

  The look-ahead's SGD step alpha is the generator's learning rate of the
  step, ``ForwardPass.learning_rate`` (the optimizer's rate
  variable, so it follows any schedule, also after a restore).
  """

  uses_guidance = True
  needs_term_gradients = True

  def __init__(self, tunable: TunableWeights, generator: keras.Model,
               variables: Sequence[tf.Variable],
               config: AWAConfig = AWAConfig(), guidance: Optional[str] = None,
               lpips: Optional[lpips_lib.LPIPS] = None,
               name: Optional[str] = None):
    super().__init__(tunable, generator, variables, config, name=name)
    guidance = config.guidance if guidance is None else guidance
    if guidance not in GUIDANCE_METRICS:
      raise ValueError(f'guidance: expected one of {GUIDANCE_METRICS}, got '
                       f'{guidance!r}')
    if guidance == 'lpips' and lpips is None:
      raise ValueError("lpips: guidance='lpips' needs an LPIPS network "
                       '(pass lpips_weights=PATH, or use guidance=mae)')
    self.guidance = guidance
    self.lookahead_steps = int(config.lookahead_steps)
    self.reuse_generator_gradient = bool(config.reuse_generator_gradient)
    self.all_parameters = bool(config.awa_all_parameters)
    # A closure, so that the LPIPS weights stay out of checkpoints.
    self._metric = (lpips_guidance(lpips) if guidance == 'lpips'
                    else mae_guidance)
    self._make_optimizer(config)

  def guidance_gradient(self, guidance_batch, variables
                        ) -> Tuple[tf.Tensor, List[tf.Tensor]]:
    """Metric of the completed guidance batch and its gradient.

    Args:
      guidance_batch: (images [B,H,W,3] in [-1,1], masks [B,H,W,1], 1 = hole).
      variables: parameters to differentiate (at their current values).

    Returns:
      (metric [] float32 averaged over replicas, gradient list summed over
      replicas).
    """
    images, masks = guidance_batch
    images = tf.cast(images, tf.float32)
    masks = tf.cast(masks, tf.float32)
    with tf.GradientTape() as tape:
      pred = tf.cast(self.generator((images * (1.0 - masks), masks),
                                    training=True), tf.float32)
      completed = ops.composite(pred, images, masks)
      metric = self._metric(completed, images) / tf.cast(base.num_replicas(),
                                                         tf.float32)
    grads = base.gradient_list(tape, metric, variables)
    return base.sum_over_replicas((metric, grads))

  def _adapt(self, forward: base.ForwardPass):
    variables = self.selected_variables()
    # Forward mode through the stored VGG activations replaces the N
    # per-term backward passes when the terms allow it; the tangent is taken
    # through the output layer only (the generator's own ops need not have
    # second-order gradients).
    tape, main, terms, raw_terms = forward[:4]
    direction = forward.direction
    fast = not self.all_parameters and base.is_linearizable(raw_terms)
    if forward.learning_rate is None:
      raise ValueError("learning_rate: AWA's look-ahead steps at the "
                       "generator's learning rate; pass the optimizer's "
                       'learning_rate, got None')
    alpha = tf.cast(forward.learning_rate, tf.float32)
    w = tf.stop_gradient(self.tunable())
    theta = [tf.identity(v) for v in variables]
    displaced = theta
    visited = []  # (tape, raw terms) of every look-ahead point (fast path)
    summed_terms = None  # sum over look-ahead points of per-term gradients
    try:
      for k in range(self.lookahead_steps):
        if fast:
          if direction is None or k:
            direction = base.sum_over_replicas(base.weighted_gradients(
                tape, main, terms, w, variables, unconnected=base.ZERO))
          visited.append((tape, raw_terms))
        else:
          g_main, g_terms = base.per_term_gradients(tape, main, terms,
                                                    variables)
          direction = [gm + tf.add_n([w[j] * g_terms[j][i]
                                      for j in range(self.num_terms)])
                       for i, gm in enumerate(g_main)]
          summed_terms = g_terms if summed_terms is None else [
              [a + b for a, b in zip(s, g)]
              for s, g in zip(summed_terms, g_terms)]
        displaced = [p - alpha * d for p, d in zip(displaced, direction)]
        base.assign(variables, displaced)
        if k + 1 < self.lookahead_steps:
          # theta_{k+1} on batch 1; the tape stays alive for the products.
          with tf.GradientTape(persistent=True) as tape:
            main, terms, raw_terms, _, _ = base.call_loss_fn(
                forward.loss_fn, forward.batch, self.num_terms)
      metric, g_metric = self.guidance_gradient(forward.guidance_batch,
                                                variables)
    finally:
      base.assign(variables, theta)
    if fast:
      products = tf.add_n([
          tf.cast(raw.directional_derivatives(base.output_tangent(
              t, raw.pred, variables, g_metric)), tf.float32)
          for t, raw in visited])
      products = base.sum_over_replicas(products)
    else:
      products = tf.stack([base.dot(g_metric, g) for g in summed_terms])
    with tf.GradientTape() as phi_tape:
      surrogate = -tf.reduce_sum(self.tunable() * products)
    grad = phi_tape.gradient(surrogate, self.tunable.phi)
    self._apply_phi_gradient(grad)
    out = {'guidance': metric, 'surrogate': surrogate, 'lookahead_lr': alpha}
    out.update({f'dphi_{name}': grad[j]
                for j, name in enumerate(self.tunable.names)})
    return out
