"""Auxiliary Weights Adaptation (AWA) and the reweighting baselines.

Implements Algorithm 1 of Hui et al., "Auxiliary Loss Reweighting for Image
Inpainting", after the authors' ``trainer.py`` and
``models/auxiliary_loss_weight.py``, and the baselines the paper compares
with (Sec. V-C): AdaLoss (Hu et al.), GradNorm (Chen et al.) and GradSim
(Du et al.). All reweight the N auxiliary terms of a
:class:`~inpaint_tf.perceptual.TunableWeights` (the six TPL/TSL terms).

The generator loss is ``L = main + sum_j w_j * term_j`` (Eq. 6). The caller
describes it with a ``loss_fn``::

    def loss_fn(batch):
      # -> (main [] float32, terms: N scalars (or [N]), outputs: any nest)
      ...

``main`` is everything but the auxiliary terms (reconstruction, IGL,
adversarial, each with its fixed weight); ``terms`` are the unweighted
auxiliary terms, best as a tuple of scalars such as
``TunableAuxiliaryLoss.terms`` returns (a stacked [N] tensor works but
makes every per-term gradient traverse the whole VGG); ``outputs`` is passed
back untouched (e.g. the prediction, for the critic step). ``loss_fn`` may
run several times per step, so it must have no side effects. Under a
``tf.distribute`` strategy call ``step``/``update`` inside ``strategy.run``
(with the reweighter and the ``TunableAuxiliaryLoss`` created under the
strategy's scope) and let ``loss_fn`` return the replica's batch means as
on one device: the reweighter divides them by ``num_replicas_in_sync``
itself, so the returned gradients sum over replicas to those of the
global-batch mean (pass them to the optimizer as usual), and it sums
statistics and gradient inner products over replicas, so every replica takes
the decision one device would take on the global batch.

Usage (``tools/train.py``)::

    aux = perceptual.TunableAuxiliaryLoss(vgg_weights=FLAGS.vgg_weights)
    reweighter = awa.make_reweighter(
        'awa', aux.tunable, generator, config=awa_config,
        lookahead_lr=g_lr, lpips_weights=FLAGS.lpips_weights)

    def loss_fn(batch):
      images, masks = batch
      pred = generator((images * (1 - masks), masks), training=True)
      main = ...                                  # Eq. 10 terms
      return main, aux.terms(pred, images, masks), pred

    @tf.function
    def generator_step(batch, next_batch):
      result = reweighter.step(loss_fn, batch, next_batch)
      g_opt.apply_gradients(zip(result.gradients,
                                generator.trainable_variables))
      return result          # .weights [6] for the CSV / TensorBoard

``step`` updates the weights and returns the generator's gradient with the
new weights from the same forward pass. A trainer that computes its own
generator gradient calls ``reweighter.update(loss_fn, batch, next_batch)``
before it and weights the terms with ``reweighter.weights()`` (one forward
pass more). Checkpoint the reweighter itself (``phi``, optimizer state,
running statistics); it does not hold the VGG or LPIPS networks.

AWA (``AWAReweighter``), per step:

1. on batch 1, the gradient of ``main + w . terms`` over the chosen
   parameters ``theta`` (the generator's output layer by default, as in the
   authors' code; all generator variables with ``all_parameters``);
2. a K-step look-ahead with plain SGD at the generator's learning rate
   ``alpha``: ``theta_{k+1} = theta_k - alpha * grad(main + w . terms)``
   on batch 1; only the chosen parameters move (they are assigned and
   restored in place);
3. at ``theta_K``, on batch 2 (the *guidance batch*), the gradient of the
   guidance metric (LPIPS, or MAE) of the completed image;
4. the surrogate loss of Eq. 8,
   ``L_sg(phi) = -sum_j w_j(phi) <g_metric(theta_K), sum_k g_j(theta_k)>``
   (``g_j``: gradient of term j over the chosen parameters),
   whose phi-gradient is ``1/alpha`` times the exact gradient of the metric
   at ``theta_K`` for K = 1 (``tests/test_awa.py`` checks this against
   differentiation through the update), drives AdamW on ``phi``;
5. the generator update uses the new weights (Eq. 6); ``step`` takes its
   gradient from the forward pass of step 1. With
   ``config.reuse_generator_gradient`` it uses the weights from before the
   update instead, and its gradient doubles as the direction of step 2 (one
   backward pass through VGG fewer; the weights lag Algorithm 1 by a step).

The inner products of step 4 need one gradient per term. In output-layer
mode with terms from ``TunableAuxiliaryLoss.terms`` (which carry their own
linearisation, ``AuxiliaryTerms``) they are computed as directional
derivatives instead: the metric's gradient is pushed forward through the
output layer to an image tangent, and one forward-mode pass through the
stored VGG activations gives all six derivatives, in place of six backward
passes through VGG. Other terms (and all-parameter mode) take the per-term
backward passes.

The authors' trainer composites the look-ahead output of batch 2 with the
ground truth and mask of batch 1 before computing LPIPS; that is a slip, not
the method: here batch 2's prediction, truth and mask are used throughout.
The surrogate is Eq. 8 with the full weights ``w = base * scale *
sigmoid(phi)``; the authors' code leaves the base factor out, which AdamW's
per-parameter normalisation makes (nearly) irrelevant.

Baselines (same interface):

* ``fixed``: the initial weights (standard perceptual and style losses).
* ``adaloss``: ``w_j = c / m_j`` with ``m_j`` the bias-corrected running
  mean of term j and ``c`` one constant, ``mean_j(base_j * term_j)`` at the
  first step: each term's weight inversely proportional to its running
  mean, the total auxiliary loss unchanged at the start.
* ``gradnorm``: ``phi`` learned (AdamW, as AWA) to minimise
  ``sum_j |w_j ||g_j|| - G r_j^alpha|``, ``g_j`` term j's gradient over the
  chosen parameters, ``G`` the mean gradient norm over the main loss (fixed
  weight 1, the anchor) and the weighted terms, ``r_j`` term j's relative
  inverse training rate ``(L_j / L_j(0)) / mean_i(L_i / L_i(0))``; targets
  are constants, as in GradNorm.
* ``gradsim``: term j keeps its weight when ``cos(g_main, g_j) >= 0`` and is
  dropped (weight 0) otherwise.

Masks are 1 = hole, as everywhere in the package (the authors' code uses
1 = known); the completed image is ``pred * M + gt * (1 - M)``.
"""

from __future__ import annotations

import functools
from typing import (Any, Callable, Dict, List, NamedTuple, Optional, Sequence,
                    Tuple)

import tensorflow as tf

from inpaint_tf import lpips as lpips_lib
from inpaint_tf.config import AWAConfig
from inpaint_tf.config import GUIDANCE_METRICS
from inpaint_tf.config import OptimizerConfig
from inpaint_tf.config import REWEIGHTERS
from inpaint_tf.keras_api import keras
from inpaint_tf.perceptual import TunableWeights

LossFn = Callable[[Any], Tuple[tf.Tensor, Any, Any]]
_ZERO = tf.UnconnectedGradients.ZERO
_EPS = 1e-12


class StepResult(NamedTuple):
  """What :meth:`Reweighter.step` returns.

  Attributes:
    gradients: gradients of ``main + weights . terms`` for
      ``generator.trainable_variables`` (same order; None where unconnected).
    weights: [N] weights used for ``gradients``.
    main_loss: [] main loss of batch 1.
    aux_terms: [N] unweighted auxiliary terms of batch 1.
    total_loss: [] ``main_loss + weights . aux_terms``.
    outputs: the third output of ``loss_fn``.
    scalars: dict of scalars to log (see ``Reweighter.update``).
  """
  gradients: List[Optional[tf.Tensor]]
  weights: tf.Tensor
  main_loss: tf.Tensor
  aux_terms: tf.Tensor
  total_loss: tf.Tensor
  outputs: Any
  scalars: Dict[str, tf.Tensor]


# ----------------------------------------------------------------- helpers


def _replica_context():
  ctx = tf.distribute.get_replica_context()
  if ctx is None:
    raise ValueError('reweighter: call step/update in replica context '
                     '(inside strategy.run), not in cross-replica context')
  return ctx


def _num_replicas() -> int:
  return _replica_context().num_replicas_in_sync


def _sum_over_replicas(value):
  """Sums a nest of tensors over replicas (identity on one replica)."""
  ctx = _replica_context()
  if ctx.num_replicas_in_sync == 1:
    return value
  return ctx.all_reduce(tf.distribute.ReduceOp.SUM, value)


def _assign(variables: Sequence[tf.Variable],
            values: Sequence[tf.Tensor]) -> None:
  """Assigns ``values`` (the same on every replica) to ``variables``."""
  ctx = _replica_context()
  if ctx.num_replicas_in_sync == 1:
    for v, x in zip(variables, values):
      v.assign(x)
    return

  def merge_fn(strategy, values):
    for v, x in zip(variables, values):
      strategy.extended.update(v, lambda var, val: var.assign(val),
                               args=(x,), group=False)

  ctx.merge_call(merge_fn, args=(list(values),))


def _dot(a: Sequence[tf.Tensor], b: Sequence[tf.Tensor]) -> tf.Tensor:
  """Inner product of two gradient lists (flattened and concatenated)."""
  return tf.add_n([tf.reduce_sum(tf.cast(x, tf.float32) *
                                 tf.cast(y, tf.float32))
                   for x, y in zip(a, b)])


def _norm(a: Sequence[tf.Tensor]) -> tf.Tensor:
  return tf.sqrt(_dot(a, a))


def _as_terms(terms, num_terms: int) -> List[tf.Tensor]:
  """The auxiliary terms as a list of N float32 scalars."""
  if isinstance(terms, (list, tuple)):
    terms = [tf.convert_to_tensor(t) for t in terms]
  else:
    terms = tf.convert_to_tensor(terms)
    if terms.shape.rank != 1:
      raise ValueError(f'terms: expected {num_terms} scalars or a '
                       f'[{num_terms}] tensor, got shape {terms.shape}')
    terms = tf.unstack(terms, num=terms.shape[0])
  if len(terms) != num_terms or any(t.shape.rank != 0 for t in terms):
    raise ValueError(f'terms: expected {num_terms} scalar terms, got '
                     f'{[t.shape.as_list() for t in terms]}')
  return terms


class _ScaledTerms:
  """Linearisable terms times a constant (the replica share)."""

  def __init__(self, terms, factor):
    self.pred = terms.pred
    self._terms = terms
    self._factor = factor

  def directional_derivatives(self, tangent):
    return self._terms.directional_derivatives(tangent) * self._factor


def _call_loss_fn(loss_fn: LossFn, batch, num_terms: int):
  """Runs ``loss_fn``; returns (main, terms, raw_terms, outputs, report).

  ``main``, ``terms`` (a list of N scalars) and ``raw_terms`` are divided by
  the number of replicas, so that gradients summed over replicas are those
  of the global-batch mean; ``report`` is the unscaled (main, [N] terms).
  """
  out = loss_fn(batch)
  if not isinstance(out, (tuple, list)) or len(out) != 3:
    raise ValueError('loss_fn: expected it to return (main_loss, terms, '
                     f'outputs), got {type(out).__name__}')
  main, raw_terms, outputs = out
  main = tf.convert_to_tensor(main)
  if main.shape.rank != 0:
    raise ValueError(f'loss_fn: expected a scalar main loss, got shape '
                     f'{main.shape}')
  terms = _as_terms(raw_terms, num_terms)
  report = (tf.cast(main, tf.float32),
            tf.stack([tf.cast(t, tf.float32) for t in terms]))
  replicas = _num_replicas()
  if replicas > 1:
    share = 1.0 / replicas
    main = main * tf.cast(share, main.dtype)
    terms = [t * tf.cast(share, t.dtype) for t in terms]
    if _is_linearizable(raw_terms):
      raw_terms = _ScaledTerms(raw_terms, share)
  return main, terms, raw_terms, outputs, report


def _is_linearizable(terms) -> bool:
  """Whether ``terms`` offers ``pred`` and ``directional_derivatives``."""
  return (hasattr(terms, 'pred') and
          callable(getattr(terms, 'directional_derivatives', None)))


def _gradient_list(tape, target, variables) -> List[tf.Tensor]:
  return tape.gradient(target, variables, unconnected_gradients=_ZERO)


def _weighted_gradients(tape, main, terms, weights, variables,
                        unconnected=tf.UnconnectedGradients.NONE):
  """Gradient of ``main + sum_j weights[j] * terms[j]`` in one backward pass."""
  seeds = [tf.ones_like(main)] + [tf.cast(weights[j], t.dtype)
                                  for j, t in enumerate(terms)]
  return tape.gradient([main] + list(terms), variables, output_gradients=seeds,
                       unconnected_gradients=unconnected)


def _output_tangent(tape, pred, variables, direction):
  """``J direction``: the change of ``pred`` when ``variables`` move along
  ``direction`` (forward mode, as the transpose of the recorded backward).
  """
  u = tf.zeros_like(pred)
  with tf.GradientTape() as outer:
    outer.watch(u)
    vjp = tape.gradient(pred, variables, output_gradients=u,
                        unconnected_gradients=_ZERO)
  return outer.gradient(vjp, u, output_gradients=list(direction),
                        unconnected_gradients=_ZERO)


def _per_term_gradients(tape, main, terms, variables):
  """Gradients of ``main`` and of each term, summed over replicas."""
  g_main = _gradient_list(tape, main, variables)
  g_terms = [_gradient_list(tape, t, variables) for t in terms]
  return _sum_over_replicas((g_main, g_terms))


def lpips_guidance(lpips: lpips_lib.LPIPS) -> Callable[..., tf.Tensor]:
  """Guidance metric: mean LPIPS of the completed image against the truth."""

  def metric(completed: tf.Tensor, ground_truth: tf.Tensor) -> tf.Tensor:
    return tf.reduce_mean(lpips(completed, ground_truth))

  return metric


def mae_guidance(completed: tf.Tensor, ground_truth: tf.Tensor) -> tf.Tensor:
  """Guidance metric: mean absolute error in [0, 1] units (whole image)."""
  return 0.5 * tf.reduce_mean(tf.abs(tf.cast(completed, tf.float32) -
                                     tf.cast(ground_truth, tf.float32)))


# ------------------------------------------------------------- reweighters


class Reweighter(tf.Module):
  """Base class: fixed weights, the standard perceptual and style losses.

  Args:
    tunable: the weights to adapt (e.g. ``TunableAuxiliaryLoss.tunable``).
    generator: the generator; ``generator.trainable_variables`` are the
      parameters, ``generator.output_layer`` its last convolution (used
      unless ``config.all_parameters``), ``generator((masked, mask))`` its
      prediction [B,H,W,3] in [-1,1].
    config: ``AWAConfig`` (optimizer of ``phi``, ``all_parameters``, ...).
  """

  # Keeps the generator out of ``self.variables`` (it is still checkpointed
  # through its own object, saved once).
  _TF_MODULE_IGNORED_PROPERTIES = frozenset(
      tf.Module._TF_MODULE_IGNORED_PROPERTIES | {'generator'})
  uses_guidance = False
  needs_term_gradients = False

  def __init__(self, tunable: TunableWeights, generator: keras.Model,
               config: AWAConfig = AWAConfig(), name: Optional[str] = None):
    super().__init__(name=name)
    self.tunable = tunable
    self.generator = generator
    self.config = config
    self.all_parameters = bool(config.all_parameters)
    if self.needs_term_gradients and not self.all_parameters:
      layer = getattr(generator, 'output_layer', None)
      if layer is None or not layer.trainable_variables:
        raise ValueError('generator: expected an `output_layer` attribute '
                         'with trainable variables (built generator) for '
                         'output-layer mode; build the generator first or '
                         'set all_parameters=True')

  @property
  def num_terms(self) -> int:
    return self.tunable.num_terms

  def selected_variables(self) -> List[tf.Variable]:
    """Parameters of the gradient inner products and of the look-ahead."""
    if self.all_parameters:
      return list(self.generator.trainable_variables)
    return list(self.generator.output_layer.trainable_variables)

  def weights(self) -> tf.Tensor:
    """[N] float32 current weights."""
    return self.tunable()

  def _adapt(self, tape, main, terms, raw_terms, guidance_batch, loss_fn,
             batch, direction=None) -> Dict[str, tf.Tensor]:
    """Updates the weights from the forward pass recorded on ``tape``.

    Args:
      tape: persistent when ``needs_term_gradients``.
      main, terms: the main loss and the list of N scalar terms.
      raw_terms: the terms as ``loss_fn`` returned them.
      guidance_batch, loss_fn, batch: as given to ``update``/``step``.
      direction: AWA only: the gradient of the loss over
        ``selected_variables()``, when the caller has it already.

    Returns:
      Method-specific scalars to log.
    """
    del tape, main, terms, raw_terms, guidance_batch, loss_fn, batch
    del direction
    return {}

  def _scalars(self, extra: Dict[str, tf.Tensor]) -> Dict[str, tf.Tensor]:
    w = self.weights()
    out = {f'w_{name}': w[j] for j, name in enumerate(self.tunable.names)}
    out.update(extra)
    return out

  def _check_guidance(self, guidance_batch) -> None:
    if self.uses_guidance and guidance_batch is None:
      raise ValueError(f'guidance_batch: {type(self).__name__} needs a second '
                       'batch (images [B,H,W,3], masks [B,H,W,1]); got None')

  def update(self, loss_fn: LossFn, batch, guidance_batch=None
             ) -> Dict[str, tf.Tensor]:
    """Adapts the weights on ``batch`` (and ``guidance_batch``).

    Args:
      loss_fn: see the module docstring.
      batch: the training batch, passed to ``loss_fn``.
      guidance_batch: ``(images [B,H,W,3] in [-1,1], masks [B,H,W,1],
        1 = hole)``, a second batch; AWA only.

    Returns:
      Scalars to log: ``w_<term>`` for every weight (after the update) and
      method-specific values (``guidance``, ``surrogate``...).
    """
    self._check_guidance(guidance_batch)
    if type(self)._adapt is Reweighter._adapt:  # Fixed weights: no pass.
      return self._scalars({})
    persistent = self.needs_term_gradients
    with tf.GradientTape(persistent=persistent) as tape:
      main, terms, raw_terms, _, _ = _call_loss_fn(loss_fn, batch,
                                                   self.num_terms)
    extra = self._adapt(tape, main, terms, raw_terms, guidance_batch, loss_fn,
                        batch)
    del tape
    return self._scalars(extra)

  def step(self, loss_fn: LossFn, batch, guidance_batch=None) -> StepResult:
    """Adapts the weights, then differentiates the reweighted loss.

    One forward pass of ``loss_fn`` on ``batch`` serves both (AWA with K > 1
    runs ``loss_fn`` K - 1 more times at the look-ahead parameters).

    Args:
      loss_fn, batch, guidance_batch: as for :meth:`update`.

    Returns:
      A :class:`StepResult`; apply ``result.gradients`` to
      ``generator.trainable_variables``.
    """
    self._check_guidance(guidance_batch)
    variables = self.generator.trainable_variables
    with tf.GradientTape(persistent=self.needs_term_gradients) as tape:
      main, terms, raw_terms, outputs, report = _call_loss_fn(
          loss_fn, batch, self.num_terms)
    if getattr(self, 'reuse_generator_gradient', False):
      # The generator's gradient, with the weights before this update, also
      # gives the first look-ahead direction.
      weights = tf.stop_gradient(self.weights())
      gradients = _weighted_gradients(tape, main, terms, weights, variables)
      index = {v.ref(): i for i, v in enumerate(variables)}
      direction = _sum_over_replicas([
          tf.zeros_like(v) if gradients[index[v.ref()]] is None
          else gradients[index[v.ref()]] for v in self.selected_variables()])
      extra = self._adapt(tape, main, terms, raw_terms, guidance_batch,
                          loss_fn, batch, direction=direction)
    else:
      extra = self._adapt(tape, main, terms, raw_terms, guidance_batch,
                          loss_fn, batch)
      weights = tf.stop_gradient(self.weights())
      gradients = _weighted_gradients(tape, main, terms, weights, variables)
    del tape
    main_loss, aux_terms = report
    total = main_loss + tf.reduce_sum(weights * aux_terms)
    return StepResult(gradients, weights, main_loss, aux_terms, total, outputs,
                      self._scalars(extra))


class FixedReweighter(Reweighter):
  """No adaptation: the weights stay at their initial values."""


class AdaLossReweighter(Reweighter):
  """AdaLoss: weights inversely proportional to the terms' running means."""

  def __init__(self, tunable: TunableWeights, generator: keras.Model,
               config: AWAConfig = AWAConfig(), name: Optional[str] = None):
    super().__init__(tunable, generator, config, name=name)
    n = self.num_terms
    self.momentum = float(config.adaloss_momentum)
    self.count = tf.Variable(0.0, trainable=False, name='count')
    self.running_mean = tf.Variable(tf.zeros([n]), trainable=False,
                                    name='running_mean')
    self.constant = tf.Variable(0.0, trainable=False, name='constant')

  def weights(self) -> tf.Tensor:
    corrected = self.running_mean / (1.0 - self.momentum ** self.count)
    adaptive = self.constant / tf.maximum(corrected, _EPS)
    return tf.where(self.count > 0, adaptive, self.tunable())

  def _adapt(self, tape, main, terms, raw_terms, guidance_batch, loss_fn,
             batch, direction=None):
    values = _sum_over_replicas(
        tf.stop_gradient(tf.stack([tf.cast(t, tf.float32) for t in terms])))
    first = tf.equal(self.count, 0.0)
    self.constant.assign(tf.where(
        first, tf.reduce_mean(self.tunable() * values), self.constant))
    self.running_mean.assign(self.momentum * self.running_mean +
                             (1.0 - self.momentum) * values)
    self.count.assign_add(1.0)
    return {}


class GradSimReweighter(Reweighter):
  """GradSim: drop a term whose gradient opposes the main loss's."""

  needs_term_gradients = True

  def __init__(self, tunable: TunableWeights, generator: keras.Model,
               config: AWAConfig = AWAConfig(), name: Optional[str] = None):
    super().__init__(tunable, generator, config, name=name)
    self.gates = tf.Variable(tf.ones([self.num_terms]), trainable=False,
                             name='gates')

  def weights(self) -> tf.Tensor:
    return self.tunable() * self.gates

  def _adapt(self, tape, main, terms, raw_terms, guidance_batch, loss_fn,
             batch, direction=None):
    g_main, g_terms = _per_term_gradients(tape, main, terms,
                                          self.selected_variables())
    n_main = _norm(g_main)
    cosines = tf.stack([_dot(g_main, g) / tf.maximum(n_main * _norm(g), _EPS)
                        for g in g_terms])
    self.gates.assign(tf.cast(cosines >= 0.0, tf.float32))
    return {f'cos_{name}': cosines[j]
            for j, name in enumerate(self.tunable.names)}


class _PhiOptimizerMixin:
  """AdamW on ``tunable.phi`` with the authors' settings."""

  def _make_optimizer(self, config: AWAConfig) -> None:
    self.optimizer = keras.optimizers.AdamW(
        learning_rate=config.lr, weight_decay=config.weight_decay,
        beta_1=config.beta_1, beta_2=config.beta_2, epsilon=config.epsilon)
    self.optimizer.build([self.tunable.phi])

  def _apply_phi_gradient(self, gradient: tf.Tensor) -> None:
    # The gradient is already global (summed over replicas) and the same on
    # every replica, while the optimizer sums what replicas give it.
    gradient = gradient / tf.cast(_num_replicas(), gradient.dtype)
    self.optimizer.apply_gradients([(gradient, self.tunable.phi)])


class GradNormReweighter(_PhiOptimizerMixin, Reweighter):
  """GradNorm: balance the weighted terms' gradient norms (see module doc)."""

  needs_term_gradients = True

  def __init__(self, tunable: TunableWeights, generator: keras.Model,
               config: AWAConfig = AWAConfig(), name: Optional[str] = None):
    super().__init__(tunable, generator, config, name=name)
    self.alpha = float(config.gradnorm_alpha)
    self.initial_terms = tf.Variable(tf.zeros([self.num_terms]),
                                     trainable=False, name='initial_terms')
    self.initialized = tf.Variable(False, trainable=False, name='initialized')
    self._make_optimizer(config)

  def _adapt(self, tape, main, terms, raw_terms, guidance_batch, loss_fn,
             batch, direction=None):
    g_main, g_terms = _per_term_gradients(tape, main, terms,
                                          self.selected_variables())
    values = _sum_over_replicas(
        tf.stop_gradient(tf.stack([tf.cast(t, tf.float32) for t in terms])))
    initial = tf.where(self.initialized, self.initial_terms, values)
    self.initial_terms.assign(initial)
    self.initialized.assign(True)
    ratios = values / tf.maximum(initial, _EPS)
    rates = ratios / tf.maximum(tf.reduce_mean(ratios), _EPS)
    norms = tf.stack([_norm(g) for g in g_terms])
    with tf.GradientTape() as phi_tape:
      w = self.tunable()
      weighted = w * norms
      mean_norm = tf.stop_gradient(tf.reduce_mean(
          tf.concat([[_norm(g_main)], weighted], axis=0)))
      target = mean_norm * rates ** self.alpha
      gradnorm_loss = tf.reduce_sum(tf.abs(weighted - target))
    grad = phi_tape.gradient(gradnorm_loss, self.tunable.phi)
    self._apply_phi_gradient(grad)
    out = {'gradnorm_loss': gradnorm_loss}
    out.update({f'dphi_{name}': grad[j]
                for j, name in enumerate(self.tunable.names)})
    return out


class AWAReweighter(_PhiOptimizerMixin, Reweighter):
  """Auxiliary Weights Adaptation (Algorithm 1, Eq. 8); see module doc.

  Args:
    tunable, generator, config: as for :class:`Reweighter`
      (``config.lookahead_steps`` is K).
    guidance: ``'lpips'`` or ``'mae'`` (``config.guidance`` when None).
    lpips: the LPIPS network for ``guidance='lpips'``.
    lookahead_lr: alpha, the SGD step of the look-ahead (the generator's
      learning rate; ``self.lookahead_lr`` is a variable a trainer with a
      schedule can assign).
  """

  uses_guidance = True
  needs_term_gradients = True

  def __init__(self, tunable: TunableWeights, generator: keras.Model,
               config: AWAConfig = AWAConfig(), guidance: Optional[str] = None,
               lpips: Optional[lpips_lib.LPIPS] = None,
               lookahead_lr: float = OptimizerConfig.learning_rate,
               name: Optional[str] = None):
    super().__init__(tunable, generator, config, name=name)
    guidance = config.guidance if guidance is None else guidance
    if guidance not in GUIDANCE_METRICS:
      raise ValueError(f'guidance: expected one of {GUIDANCE_METRICS}, got '
                       f'{guidance!r}')
    if guidance == 'lpips' and lpips is None:
      raise ValueError("lpips: guidance='lpips' needs an LPIPS network "
                       '(pass lpips_weights=PATH, or use guidance=mae)')
    if int(config.lookahead_steps) < 1:
      raise ValueError(f'lookahead_steps: expected >= 1, got '
                       f'{config.lookahead_steps}')
    self.guidance = guidance
    self.lookahead_steps = int(config.lookahead_steps)
    self.reuse_generator_gradient = bool(config.reuse_generator_gradient)
    # A closure, so that the LPIPS weights stay out of checkpoints.
    self._metric = (lpips_guidance(lpips) if guidance == 'lpips'
                    else mae_guidance)
    self.lookahead_lr = tf.Variable(float(lookahead_lr), trainable=False,
                                    name='lookahead_lr')
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
      completed = pred * masks + images * (1.0 - masks)
      metric = self._metric(completed, images) / tf.cast(_num_replicas(),
                                                         tf.float32)
    grads = _gradient_list(tape, metric, variables)
    return _sum_over_replicas((metric, grads))

  def _adapt(self, tape, main, terms, raw_terms, guidance_batch, loss_fn,
             batch, direction=None):
    variables = self.selected_variables()
    # Forward mode through the stored VGG activations replaces the N
    # per-term backward passes when the terms allow it; the tangent is taken
    # through the output layer only (the generator's own ops need not have
    # second-order gradients).
    fast = not self.all_parameters and _is_linearizable(raw_terms)
    alpha = tf.cast(self.lookahead_lr, tf.float32)
    w = tf.stop_gradient(self.tunable())
    theta = [tf.identity(v) for v in variables]
    displaced = theta
    visited = []  # (tape, raw terms) of every look-ahead point (fast path)
    summed_terms = None  # sum over look-ahead points of per-term gradients
    try:
      for k in range(self.lookahead_steps):
        if fast:
          if direction is None or k:
            direction = _sum_over_replicas(_weighted_gradients(
                tape, main, terms, w, variables, unconnected=_ZERO))
          visited.append((tape, raw_terms))
        else:
          g_main, g_terms = _per_term_gradients(tape, main, terms, variables)
          direction = [gm + tf.add_n([w[j] * g_terms[j][i]
                                      for j in range(self.num_terms)])
                       for i, gm in enumerate(g_main)]
          summed_terms = g_terms if summed_terms is None else [
              [a + b for a, b in zip(s, g)]
              for s, g in zip(summed_terms, g_terms)]
        displaced = [p - alpha * d for p, d in zip(displaced, direction)]
        _assign(variables, displaced)
        if k + 1 < self.lookahead_steps:
          # theta_{k+1} on batch 1; the tape stays alive for the products.
          with tf.GradientTape(persistent=True) as tape:
            main, terms, raw_terms, _, _ = _call_loss_fn(loss_fn, batch,
                                                         self.num_terms)
      metric, g_metric = self.guidance_gradient(guidance_batch, variables)
    finally:
      _assign(variables, theta)
    if fast:
      products = tf.add_n([
          tf.cast(raw.directional_derivatives(
              _output_tangent(t, raw.pred, variables, g_metric)), tf.float32)
          for t, raw in visited])
      products = _sum_over_replicas(products)
    else:
      products = tf.stack([_dot(g_metric, g) for g in summed_terms])
    with tf.GradientTape() as phi_tape:
      surrogate = -tf.reduce_sum(self.tunable() * products)
    grad = phi_tape.gradient(surrogate, self.tunable.phi)
    self._apply_phi_gradient(grad)
    out = {'guidance': metric, 'surrogate': surrogate}
    out.update({f'dphi_{name}': grad[j]
                for j, name in enumerate(self.tunable.names)})
    return out


_CLASSES = {
    'fixed': FixedReweighter,
    'awa': AWAReweighter,
    'adaloss': AdaLossReweighter,
    'gradnorm': GradNormReweighter,
    'gradsim': GradSimReweighter,
}
assert set(_CLASSES) == set(REWEIGHTERS)


def make_reweighter(name: str, tunable: TunableWeights,
                    generator: keras.Model,
                    config: AWAConfig = AWAConfig(), *,
                    lookahead_lr: float = OptimizerConfig.learning_rate,
                    lpips: Optional[lpips_lib.LPIPS] = None,
                    lpips_weights: Optional[str] = None) -> Reweighter:
  """Builds the reweighter ``name`` (one of ``config.REWEIGHTERS``).

  Create it under the strategy's scope when training with one.

  Args:
    name: 'fixed', 'awa', 'adaloss', 'gradnorm' or 'gradsim'.
    tunable: the weights (``TunableAuxiliaryLoss.tunable``).
    generator: the (built) generator.
    config: ``AWAConfig``.
    lookahead_lr: AWA's look-ahead step, the generator's learning rate.
    lpips: LPIPS network for AWA's LPIPS guidance; or
    lpips_weights: path of the LPIPS ``.npz`` to build it from.

  Returns:
    A :class:`Reweighter`.
  """
  if name not in _CLASSES:
    raise ValueError(f'reweighter: expected one of {REWEIGHTERS}, got {name!r}')
  if name != 'awa':
    return _CLASSES[name](tunable, generator, config)
  if config.guidance == 'lpips' and lpips is None:
    lpips = lpips_lib.LPIPS(weights=lpips_weights)
  return AWAReweighter(tunable, generator, config, lpips=lpips,
                       lookahead_lr=lookahead_lr)


def make_generator_step(reweighter: Reweighter, loss_fn: LossFn,
                        optimizer: keras.optimizers.Optimizer,
                        jit_compile: Optional[bool] = None
                        ) -> Callable[..., StepResult]:
  """A ``tf.function`` ``(batch, guidance_batch=None) -> StepResult`` that
  runs ``reweighter.step`` and applies the gradients with ``optimizer``.

  Single device; under a strategy wrap ``reweighter.step`` in
  ``strategy.run`` instead.
  """
  variables = reweighter.generator.trainable_variables

  @functools.partial(tf.function, jit_compile=jit_compile)
  def generator_step(batch, guidance_batch=None):
    result = reweighter.step(loss_fn, batch, guidance_batch)
    optimizer.apply_gradients(
        [(g, v) for g, v in zip(result.gradients, variables) if g is not None])
    return result

  return generator_step
