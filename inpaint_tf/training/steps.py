"""Distributed training steps: loss scaling, gradients, reduction, checks.

``TrainSteps`` runs one critic update or one generator update of an
``InpaintingTask`` on a global batch through ``tf.distribute``:
``strategy.run`` on per-replica batches; every per-replica loss is a mean
over the replica's batch divided by ``num_replicas_in_sync``, so the summed
gradients are those of the mean over the global batch (training batches are
complete, so replicas hold equal shares; GMCNN's ``ae`` term, normalised
per replica by the known area, is the one exception and is off by default).

Randomness inside the steps (the gradient penalty's interpolation weights)
is stateless, keyed on ``(seed, step, critic update)`` and drawn for the
global batch, each replica taking its share, so one device and N replicas
see the same numbers.

Mixed precision (``train.mixed_precision``, for GPUs): both optimisers are
wrapped in a ``LossScaleOptimizer``; losses (the IGL's feature differences
included), critic scores and the contextual attention (scores, softmax and
paste) are computed in float32, and the gradient penalty's inner gradient
through the float16 critics is taken at the critic optimiser's loss scale
(``losses.masked_gradient_penalty``).

Both updates read top to bottom in one replica function each
(``_critic_update``, ``_generator_update``). This module owns the generator
gradient: ``_generator_gradients`` without a reweighter,
``reweighted_gradients`` with one, where the reweighter only adapts the
auxiliary weights from the recorded forward pass (AWA reads a second,
guidance batch); its weights and values are returned with the terms.
"""

from __future__ import annotations

import collections
import functools
import math
from typing import Any, Dict, List, Mapping, NamedTuple, Optional

from absl import logging
import tensorflow as tf

from inpaint_tf import config as config_lib
from inpaint_tf import reweighting
from inpaint_tf.keras_api import keras
from inpaint_tf.reweighting import base as reweighting_base
from inpaint_tf.training import task as task_lib


class NonFiniteLossError(RuntimeError):
  """A loss term or gradient norm became NaN or infinite.

  Attributes:
    term, value: the scalar and its (mean) value.
    step: the last step of the window it was read in (the trainer reads
      scalars on logging and checkpoint steps); ``first_step`` the first.
    checkpoint: the last good checkpoint, or None.
  """

  def __init__(self, term: str, value: float, step: int,
               checkpoint: Optional[str], first_step: Optional[int] = None):
    self.term = term
    self.value = value
    self.step = step
    self.first_step = step if first_step is None else first_step
    self.checkpoint = checkpoint
    kept = (f'last good checkpoint: {checkpoint}' if checkpoint
            else 'no checkpoint was written')
    kind = 'gradient norm' if term.endswith('grad_norm') else 'loss term'
    when = (f'at step {step}' if self.first_step == step
            else f'in steps {self.first_step}-{step}')
    super().__init__(f'non-finite {kind} {term!r} ({value}) {when}; '
                     f'training stopped, {kept}')


def check_finite(scalars: Mapping[str, float], step: int,
                 checkpoint: Optional[str], mixed_precision: bool,
                 first_step: Optional[int] = None) -> None:
  """Raises ``NonFiniteLossError`` for the first NaN/inf in ``scalars``.

  ``scalars`` may be means over the steps ``first_step..step``: a NaN or
  inf in any of them makes the mean non-finite. With loss scaling an
  overflowing gradient norm is expected now and then (the optimiser skips
  the update and lowers the scale), so gradient norms are not checked under
  mixed precision.
  """
  for name, value in scalars.items():
    if not math.isfinite(value) and not (
        mixed_precision and name.endswith('grad_norm')):
      raise NonFiniteLossError(name, value, step, checkpoint, first_step)


def _summaries(terms, total, total_name, grad_norm, grad_name):
  out = {}
  for name, term in terms.items():
    out[name] = tf.cast(term.value, tf.float32)
    out[f'{name}/weight'] = tf.cast(term.weight, tf.float32)
  out[total_name] = tf.cast(total, tf.float32)
  out[grad_name] = grad_norm
  return out


class StepResult(NamedTuple):
  """What :func:`reweighted_gradients` returns.

  Attributes:
    gradients: gradients of ``main + weights . terms`` for
      ``generator.trainable_variables`` (same order; None where
      unconnected), the replica's share of the global-batch gradient.
    weights: [N] weights used for ``gradients``.
    main_loss: [] main loss of the batch.
    aux_terms: [N] unweighted auxiliary terms of the batch.
    total_loss: [] ``main_loss + weights . aux_terms``.
    outputs: the third output of ``loss_fn``.
    scalars: the reweighter's scalars to log (``Reweighter.adapt``).
  """
  gradients: List[Optional[tf.Tensor]]
  weights: tf.Tensor
  main_loss: tf.Tensor
  aux_terms: tf.Tensor
  total_loss: tf.Tensor
  outputs: Any
  scalars: Dict[str, tf.Tensor]


def reweighted_gradients(reweighter: reweighting.Reweighter,
                         loss_fn: reweighting.LossFn, batch,
                         guidance_batch=None, learning_rate=None
                         ) -> StepResult:
  """The generator gradient with reweighted auxiliary terms, on one replica.

  Records one forward pass of ``loss_fn`` on ``batch``; the reweighter
  adapts its weights from it (``Reweighter.adapt``), then the gradient of
  ``main + w . terms`` is taken from the same pass with the new weights.
  With ``reuse_generator_gradient`` the gradient is taken first, with the
  weights before the update, and its part over the reweighter's selected
  variables (summed over replicas) is AWA's first look-ahead direction.

  Args:
    reweighter: the reweighter (its ``generator`` is differentiated).
    loss_fn: ``batch -> (main [], N auxiliary terms, outputs)``, the
      replica's batch means (``InpaintingTask.reweighted_losses`` in
      training; see ``inpaint_tf.reweighting``).
    batch: passed to ``loss_fn``.
    guidance_batch: ``(images [B,H,W,3] in [-1,1], masks [B,H,W,1],
      1 = hole)``, AWA's second batch.
    learning_rate: [] float, the rate of this generator update (AWA's
      look-ahead steps with it).

  Returns:
    A ``StepResult``.
  """
  variables = reweighter.generator.trainable_variables
  with tf.GradientTape(persistent=reweighter.needs_term_gradients) as tape:
    main, terms, raw_terms, outputs, report = reweighting_base.call_loss_fn(
        loss_fn, batch, reweighter.num_terms)
  forward = reweighting.ForwardPass(tape, main, terms, raw_terms, loss_fn,
                                    batch, guidance_batch,
                                    learning_rate=learning_rate)
  if reweighter.reuse_generator_gradient:
    weights = tf.stop_gradient(reweighter.weights())
    gradients = reweighting_base.weighted_gradients(tape, main, terms,
                                                    weights, variables)
    by_variable = {v.ref(): g for v, g in zip(variables, gradients)}
    direction = reweighting_base.sum_over_replicas([
        tf.zeros_like(v) if by_variable[v.ref()] is None
        else by_variable[v.ref()] for v in reweighter.selected_variables()])
    scalars = reweighter.adapt(forward._replace(direction=direction))
  else:
    scalars = reweighter.adapt(forward)
    weights = tf.stop_gradient(reweighter.weights())
    gradients = reweighting_base.weighted_gradients(tape, main, terms,
                                                    weights, variables)
  del tape
  main_loss, aux_terms = report
  total = main_loss + tf.reduce_sum(weights * aux_terms)
  return StepResult(gradients, weights, main_loss, aux_terms, total, outputs,
                    scalars)


class TrainSteps:
  """The optimisers and the compiled, distributed update steps of a task.

  Build under the strategy's scope (the optimisers' slots are made here).

  Args:
    task: the ``InpaintingTask``.
    strategy: its ``tf.distribute.Strategy``.
    config: the experiment (optimizer, train).
  """

  def __init__(self, task: task_lib.InpaintingTask,
               strategy: tf.distribute.Strategy,
               config: config_lib.ExperimentConfig):
    self.task = task
    self.strategy = strategy
    self.config = config
    self.mixed_precision = config.train.mixed_precision
    self.global_batch_size = config.train.batch_size
    self.num_replicas = strategy.num_replicas_in_sync
    self.g_optimizer = self._make_optimizer()
    self.d_optimizer = self._make_optimizer()
    self._rate = None  # The rate last set, see ``set_learning_rate``.
    # Slots exist before a restore, so it fills them at once.
    self.g_optimizer.build(task.generator.trainable_variables)
    self.d_optimizer.build(task.critic_variables)
    # Each replica's loss and gradient computation, XLA-compiled with
    # ``jit_compile``; the all-reduce and the optimiser update are not.
    self._gradient_fns = {'critic': self._critic_gradients,
                          'generator': self._generator_gradients}
    if config.train.jit_compile:
      self._gradient_fns = {
          name: tf.function(fn, jit_compile=True, autograph=False)
          for name, fn in self._gradient_fns.items()}
      if task.reweighter is not None:
        logging.warning(
            'jit_compile: the generator step of reweighter %r runs without '
            'XLA (it sums statistics across replicas between its passes); '
            'the critic steps are compiled', config.awa.reweight)
    # The steps hold no tensor-dependent Python control flow; without
    # AutoGraph conversion they trace several times faster.
    self._critic_fn = tf.function(self._distributed_critic_step,
                                  autograph=False)
    self._generator_fns = {
        adversarial: tf.function(
            functools.partial(self._distributed_generator_step,
                              adversarial=adversarial), autograph=False)
        for adversarial in (False, True)}

  def _make_optimizer(self) -> keras.optimizers.Optimizer:
    o = self.config.optimizer
    optimizer = keras.optimizers.Adam(
        learning_rate=o.learning_rate, beta_1=o.beta_1, beta_2=o.beta_2)
    if self.mixed_precision:
      optimizer = keras.mixed_precision.LossScaleOptimizer(optimizer)
    return optimizer

  def set_learning_rate(self, rate: float) -> None:
    """Sets the rate of both optimisers (a no-op when it is unchanged)."""
    if rate == self._rate:
      return
    for optimizer in (self.g_optimizer, self.d_optimizer):
      optimizer.learning_rate.assign(rate)
    self._rate = rate

  def critic_step(self, batch, seed_index: tf.Tensor) -> Dict[str, tf.Tensor]:
    """One update of both critics on a global (or distributed) batch.

    Args:
      batch: ``{'image', 'mask'}``.
      seed_index: int64 scalar keying the penalty's interpolation weights.

    Returns:
      Scalars: raw terms, ``<term>/weight``, ``d_total``, ``d_grad_norm``.
    """
    return self._critic_fn(batch, seed_index)

  def generator_step(self, batch, guidance, adversarial: bool
                     ) -> Dict[str, tf.Tensor]:
    """One generator update (see ``Trainer.generator_step``)."""
    return self._generator_fns[bool(adversarial)](batch, guidance)

  # -- replica functions ---------------------------------------------------

  def _alpha(self, seed_index: tf.Tensor, stream: int) -> tf.Tensor:
    """This replica's share of the per-sample interpolation weights, [b]."""
    seed = tf.stack([tf.constant(self.config.train.seed, tf.int64),
                     seed_index * 2 + stream])
    alpha = tf.random.stateless_uniform([self.global_batch_size], seed=seed)
    share = self.global_batch_size // self.num_replicas
    replica = tf.distribute.get_replica_context().replica_id_in_sync_group
    return alpha[replica * share:(replica + 1) * share]

  def _scaled(self, optimizer, total: tf.Tensor) -> tf.Tensor:
    """Per-replica mean -> its share of the global-batch mean (loss-scaled)."""
    scaled = total / tf.cast(self.num_replicas, total.dtype)
    if self.mixed_precision:
      scaled = optimizer.get_scaled_loss(scaled)
    return scaled

  def _apply(self, optimizer, grads, variables) -> tf.Tensor:
    """Sums the replicas' gradients, applies them; returns their norm."""
    pairs = [(g, v) for g, v in zip(grads, variables) if g is not None]
    grads = [g for g, _ in pairs]
    # Summed here rather than inside apply_gradients, so that the logged
    # norm is that of the global-batch gradient.
    grads = tf.distribute.get_replica_context().all_reduce(
        tf.distribute.ReduceOp.SUM, grads)
    if self.mixed_precision:
      grads = optimizer.get_unscaled_gradients(grads)
    optimizer.apply_gradients(zip(grads, [v for _, v in pairs]),
                              skip_gradients_aggregation=True)
    return tf.linalg.global_norm(grads)

  def _critic_gradients(self, images, masks, alphas):
    """This replica's critic terms, total and (scaled) gradients."""
    completed = self.task.completed(images, masks)
    variables = self.task.critic_variables
    with tf.GradientTape(watch_accessed_variables=False) as tape:
      tape.watch(variables)
      scale = (self.d_optimizer.loss_scale if self.mixed_precision
               else None)
      terms = self.task.critic_terms(images, masks, completed, alphas, scale)
      total = task_lib.weighted_sum(terms)
      scaled = self._scaled(self.d_optimizer, total)
    return terms, total, tape.gradient(scaled, variables)

  def _generator_gradients(self, images, masks, adversarial):
    """This replica's generator terms, total and (scaled) gradients."""
    with tf.GradientTape() as tape:
      terms, _, _ = self.task.generator_terms(images, masks, adversarial)
      total = task_lib.weighted_sum(terms)
      scaled = self._scaled(self.g_optimizer, total)
    return terms, total, tape.gradient(
        scaled, self.task.generator.trainable_variables)

  def _critic_update(self, images, masks, seed_index):
    """One replica's critic update: penalty weights, gradients, apply."""
    # Drawn outside XLA, whose stateless random numbers are others.
    alphas = (self._alpha(seed_index, 0), self._alpha(seed_index, 1))
    terms, total, grads = self._gradient_fns['critic'](images, masks, alphas)
    grad_norm = self._apply(self.d_optimizer, grads,
                            self.task.critic_variables)
    return _summaries(terms, total, 'd_total', grad_norm, 'd_grad_norm')

  def _generator_update(self, images, masks, guidance, adversarial):
    """One replica's generator update: the gradient of Eq. 10, applied.

    Without a reweighter the gradient is ``_generator_gradients``'s
    (XLA-compiled under ``jit_compile``); with one it is
    ``reweighted_gradients``'s, after the reweighter has adapted the
    TPL/TSL weights on the same forward pass (AWA at this update's
    learning rate, on the guidance batch).
    """
    task = self.task
    reweighter = task.reweighter
    extra = {}
    if reweighter is None:
      terms, total, grads = self._gradient_fns['generator'](images, masks,
                                                            adversarial)
    else:
      result = reweighted_gradients(
          reweighter, functools.partial(task.reweighted_losses,
                                        adversarial=adversarial),
          (images, masks), guidance,
          learning_rate=self.g_optimizer.learning_rate)
      terms = collections.OrderedDict(result.outputs)
      for j, name in enumerate(task.auxiliary_names):
        terms[name] = task_lib.LossTerm(result.aux_terms[j],
                                        result.weights[j])
      total, grads = result.total_loss, result.gradients
      # The weights are logged with the terms.
      extra = {f'reweight/{name}': tf.cast(value, tf.float32)
               for name, value in result.scalars.items()
               if not name.startswith('w_')}
    grad_norm = self._apply(self.g_optimizer, grads,
                            task.generator.trainable_variables)
    out = _summaries(terms, total, 'g_total', grad_norm, 'g_grad_norm')
    out.update(extra)
    return out

  # -- cross-replica -------------------------------------------------------

  def _reduce(self, per_replica: Dict[str, Any]) -> Dict[str, tf.Tensor]:
    # Replica values are means over equal shares of the global batch.
    return {k: self.strategy.reduce(tf.distribute.ReduceOp.MEAN, v, axis=None)
            for k, v in per_replica.items()}

  def _distributed_critic_step(self, batch, seed_index):
    return self._reduce(self.strategy.run(
        self._critic_update, args=(batch['image'], batch['mask'],
                                    seed_index)))

  def _distributed_generator_step(self, batch, guidance, adversarial):
    if guidance is not None:
      guidance = (guidance['image'], guidance['mask'])
    return self._reduce(self.strategy.run(
        self._generator_update,
        args=(batch['image'], batch['mask'], guidance, adversarial)))
