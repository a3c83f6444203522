"""The reweighter interface, the shared gradient helpers and ``fixed``.

A reweighter adapts its weights from a forward pass that the caller has
recorded (``Reweighter.adapt``); it never computes the gradient the
generator is updated with (``training.steps.reweighted_gradients`` does).
"""

from __future__ import annotations

from typing import (Any, Callable, Dict, List, NamedTuple, Optional, Sequence,
                    Tuple)

import tensorflow as tf

from inpaint_tf.config import AWAConfig
from inpaint_tf.keras_api import keras
from inpaint_tf.reweighting.tunable import TunableWeights

LossFn = Callable[[Any], Tuple[tf.Tensor, Any, Any]]
ZERO = tf.UnconnectedGradients.ZERO
EPS = 1e-12


# ----------------------------------------------------------------- helpers


def replica_context():
  ctx = tf.distribute.get_replica_context()
  if ctx is None:
    raise ValueError('reweighter: adapt in replica context '
                     '(inside strategy.run), not in cross-replica context')
  return ctx


def num_replicas() -> int:
  return replica_context().num_replicas_in_sync


def sum_over_replicas(value):
  """Sums a nest of tensors over replicas (identity on one replica)."""
  ctx = replica_context()
  if ctx.num_replicas_in_sync == 1:
    return value
  return ctx.all_reduce(tf.distribute.ReduceOp.SUM, value)


def assign(variables: Sequence[tf.Variable],
           values: Sequence[tf.Tensor]) -> None:
  """Assigns ``values`` (the same on every replica) to ``variables``."""
  ctx = replica_context()
  if ctx.num_replicas_in_sync == 1:
    for v, x in zip(variables, values):
      v.assign(x)
    return

  def merge_fn(strategy, values):
    for v, x in zip(variables, values):
      strategy.extended.update(v, lambda var, val: var.assign(val),
                               args=(x,), group=False)

  ctx.merge_call(merge_fn, args=(list(values),))


def dot(a: Sequence[tf.Tensor], b: Sequence[tf.Tensor]) -> tf.Tensor:
  """Inner product of two gradient lists (flattened and concatenated)."""
  return tf.add_n([tf.reduce_sum(tf.cast(x, tf.float32) *
                                 tf.cast(y, tf.float32))
                   for x, y in zip(a, b)])


def norm(a: Sequence[tf.Tensor]) -> tf.Tensor:
  return tf.sqrt(dot(a, a))


def as_terms(terms, num_terms: int) -> List[tf.Tensor]:
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


def call_loss_fn(loss_fn: LossFn, batch, num_terms: int):
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
  terms = as_terms(raw_terms, num_terms)
  report = (tf.cast(main, tf.float32),
            tf.stack([tf.cast(t, tf.float32) for t in terms]))
  replicas = num_replicas()
  if replicas > 1:
    share = 1.0 / replicas
    main = main * tf.cast(share, main.dtype)
    terms = [t * tf.cast(share, t.dtype) for t in terms]
    if is_linearizable(raw_terms):
      raw_terms = _ScaledTerms(raw_terms, share)
  return main, terms, raw_terms, outputs, report


def is_linearizable(terms) -> bool:
  """Whether ``terms`` offers ``pred`` and ``directional_derivatives``."""
  return (hasattr(terms, 'pred') and
          callable(getattr(terms, 'directional_derivatives', None)))


def gradient_list(tape, target, variables) -> List[tf.Tensor]:
  return tape.gradient(target, variables, unconnected_gradients=ZERO)


def weighted_gradients(tape, main, terms, weights, variables,
                       unconnected=tf.UnconnectedGradients.NONE):
  """Gradient of ``main + sum_j weights[j] * terms[j]`` in one backward pass."""
  seeds = [tf.ones_like(main)] + [tf.cast(weights[j], t.dtype)
                                  for j, t in enumerate(terms)]
  return tape.gradient([main] + list(terms), variables, output_gradients=seeds,
                       unconnected_gradients=unconnected)


def output_tangent(tape, pred, variables, direction):
  """``J direction``: the change of ``pred`` when ``variables`` move along
  ``direction`` (forward mode, as the transpose of the recorded backward).
  """
  u = tf.zeros_like(pred)
  with tf.GradientTape() as outer:
    outer.watch(u)
    vjp = tape.gradient(pred, variables, output_gradients=u,
                        unconnected_gradients=ZERO)
  return outer.gradient(vjp, u, output_gradients=list(direction),
                        unconnected_gradients=ZERO)


def per_term_gradients(tape, main, terms, variables):
  """Gradients of ``main`` and of each term, summed over replicas."""
  g_main = gradient_list(tape, main, variables)
  g_terms = [gradient_list(tape, t, variables) for t in terms]
  return sum_over_replicas((g_main, g_terms))


class ForwardPass(NamedTuple):
  """One recorded forward pass of ``loss_fn``, what ``_adapt`` reads.

  Attributes:
    tape: the tape that recorded it (persistent when the reweighter
      ``needs_term_gradients``).
    main: [] main loss (the replica's share).
    terms: the N scalar auxiliary terms (the replica's share).
    raw_terms: the terms as ``loss_fn`` returned them (linearisable ones
      keep their ``directional_derivatives``).
    loss_fn, batch: to record the pass again elsewhere (AWA's look-ahead).
    guidance_batch: the second batch, for reweighters that use one.
    direction: the loss gradient over the selected variables when the
      caller has it already (AWA with ``reuse_generator_gradient``).
    learning_rate: [] float, the generator's learning rate of this step
      (AWA's look-ahead step), or None.
  """
  tape: tf.GradientTape
  main: tf.Tensor
  terms: List[tf.Tensor]
  raw_terms: Any
  loss_fn: Any
  batch: Any
  guidance_batch: Any
  direction: Optional[List[tf.Tensor]] = None
  learning_rate: Optional[tf.Tensor] = None


class Reweighter(tf.Module):
  """Base class: fixed weights, the standard perceptual and style losses.

  Args:
    tunable: the weights to adapt (e.g. ``TunableAuxiliaryLoss.tunable``).
    generator: the generator; ``generator((masked, mask))`` is its
      prediction [B,H,W,3] in [-1,1] (AWA's guidance batch).
    variables: the parameters of the gradient inner products and of AWA's
      look-ahead (``registry.selected_variables``: the generator's output
      layer, or all its variables).
    config: ``AWAConfig`` (optimizer of ``phi``, ...).
  """

  # Keeps the generator out of ``self.variables`` (it is still checkpointed
  # through its own object, saved once).
  _TF_MODULE_IGNORED_PROPERTIES = frozenset(
      tf.Module._TF_MODULE_IGNORED_PROPERTIES | {'generator'})
  uses_guidance = False
  needs_term_gradients = False
  # Whether the look-ahead starts from the generator's own gradient.
  reuse_generator_gradient = False

  def __init__(self, tunable: TunableWeights, generator: keras.Model,
               variables: Sequence[tf.Variable],
               config: AWAConfig = AWAConfig(), name: Optional[str] = None):
    super().__init__(name=name)
    self.tunable = tunable
    self.generator = generator
    self.config = config
    if not variables:
      raise ValueError('variables: expected the selected generator '
                       'variables (a built generator), got none')
    # Not tracked: the variables are the generator's, checkpointed with it.
    object.__setattr__(self, '_selected', tuple(variables))

  @property
  def num_terms(self) -> int:
    return self.tunable.num_terms

  def selected_variables(self) -> List[tf.Variable]:
    """Parameters of the gradient inner products and of the look-ahead."""
    return list(self._selected)

  def weights(self) -> tf.Tensor:
    """[N] float32 current weights."""
    return self.tunable()

  def _adapt(self, forward: ForwardPass) -> Dict[str, tf.Tensor]:
    """Updates the weights from a recorded forward pass.

    Returns:
      Method-specific scalars to log.
    """
    del forward
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

  def adapt(self, forward: ForwardPass) -> Dict[str, tf.Tensor]:
    """Updates the weights from a recorded forward pass of the loss.

    The caller records the pass and differentiates the reweighted loss
    (``training.steps.reweighted_gradients``); AWA with K > 1 runs
    ``forward.loss_fn`` K - 1 more times at the look-ahead parameters.

    Args:
      forward: the pass (see ``ForwardPass``).

    Returns:
      Scalars to log: ``w_<term>`` for every weight (after the update) and
      method-specific values (``guidance``, ``surrogate``...).
    """
    self._check_guidance(forward.guidance_batch)
    return self._scalars(self._adapt(forward))


class FixedReweighter(Reweighter):
  """No adaptation: the weights stay at their initial values."""


class PhiOptimizerMixin:
  """AdamW on ``tunable.phi`` with the authors' settings."""

  def _make_optimizer(self, config: AWAConfig) -> None:
    self.optimizer = keras.optimizers.AdamW(
        learning_rate=config.awa_lr, weight_decay=config.awa_weight_decay,
        beta_1=config.awa_beta_1, beta_2=config.awa_beta_2,
        epsilon=config.awa_epsilon)
    self.optimizer.build([self.tunable.phi])

  def _apply_phi_gradient(self, gradient: tf.Tensor) -> None:
    # The gradient is already global (summed over replicas) and the same on
    # every replica, while the optimizer sums what replicas give it.
    gradient = gradient / tf.cast(num_replicas(), gradient.dtype)
    self.optimizer.apply_gradients([(gradient, self.tunable.phi)])
