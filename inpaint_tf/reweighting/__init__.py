"""Reweighting of auxiliary losses: AWA and the baselines it beats.

Implements Algorithm 1 of Hui et al., "Auxiliary Loss Reweighting for Image
Inpainting", after the authors' ``trainer.py`` and
``models/auxiliary_loss_weight.py``, and the baselines the paper compares
with (Sec. V-C): AdaLoss (Hu et al.), GradNorm (Chen et al.) and GradSim
(Du et al.). All reweight the N auxiliary terms of a
``TunableWeights`` (the six TPL/TSL terms).

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
back untouched. ``loss_fn`` may run several times per step, so it must have
no side effects; in training it is ``InpaintingTask.reweighted_losses``.

A reweighter only adapts its weights: ``Reweighter.adapt`` reads one
recorded forward pass (``ForwardPass``: the tape, the loss values, the
``loss_fn`` and batch to evaluate again, the guidance batch and the
learning rate). The gradient the generator is updated with has one owner,
``training.steps``: ``steps.reweighted_gradients`` records the pass, lets
the reweighter adapt and differentiates ``main + w . terms`` with the new
weights from the same pass::

    aux = perceptual.TunableAuxiliaryLoss(
        reweighting.tpl_tsl_weights(config.awa),
        vgg_weights=config.losses.vgg_weights,
        vgg_convention=config.losses.vgg_convention)
    reweighter = reweighting.make_reweighter(
        'awa', aux.tunable, generator, config.awa)

    def loss_fn(batch):
      images, masks = batch
      pred = generator((images * (1 - masks), masks), training=True)
      main = ...                                  # Eq. 10 terms
      return main, aux.terms(pred, images, masks), pred

    @tf.function
    def generator_step(batch, next_batch):
      result = steps.reweighted_gradients(
          reweighter, loss_fn, batch, next_batch,
          learning_rate=g_opt.learning_rate)
      g_opt.apply_gradients(zip(result.gradients,
                                generator.trainable_variables))
      return result          # .weights [6] for the CSV / TensorBoard

Under a ``tf.distribute`` strategy call it inside ``strategy.run`` (with
the reweighter and the ``TunableAuxiliaryLoss`` created under the
strategy's scope) and let ``loss_fn`` return the replica's batch means as
on one device: the losses are divided by ``num_replicas_in_sync``
(``base.call_loss_fn``), so the gradients sum over replicas to those of the
global-batch mean, and the reweighters sum statistics and gradient inner
products over replicas, so every replica takes the decision one device
would take on the global batch. Checkpoint the reweighter itself (``phi``,
optimizer state, running statistics); it does not hold the VGG or LPIPS
networks.

AWA (``AWAReweighter``), per step:

1. on batch 1, the gradient of ``main + w . terms`` over the chosen
   parameters ``theta`` (the generator's output layer by default, as in the
   authors' code; all generator variables with ``awa_all_parameters``;
   ``make_reweighter`` passes them to the reweighter);
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
5. the generator update uses the new weights (Eq. 6), its gradient taken
   from the forward pass of step 1. With
   ``reuse_generator_gradient`` it uses the weights from before the
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

Modules: ``tunable`` (the weights), ``base`` (the interface, the shared
gradient helpers and ``fixed``), ``adaloss``, ``gradnorm``, ``gradsim``,
``awa`` and ``registry`` (``make_reweighter``).
"""

from inpaint_tf.reweighting.adaloss import AdaLossReweighter
from inpaint_tf.reweighting.awa import AWAReweighter
from inpaint_tf.reweighting.base import FixedReweighter
from inpaint_tf.reweighting.base import ForwardPass
from inpaint_tf.reweighting.base import LossFn
from inpaint_tf.reweighting.base import Reweighter
from inpaint_tf.reweighting.gradnorm import GradNormReweighter
from inpaint_tf.reweighting.gradsim import GradSimReweighter
from inpaint_tf.reweighting.registry import make_reweighter
from inpaint_tf.reweighting.registry import selected_variables
from inpaint_tf.reweighting.tunable import tpl_tsl_weights
from inpaint_tf.reweighting.tunable import TunableWeights

__all__ = [
    'AdaLossReweighter', 'AWAReweighter', 'FixedReweighter', 'ForwardPass',
    'GradNormReweighter', 'GradSimReweighter', 'LossFn', 'make_reweighter',
    'Reweighter', 'selected_variables', 'tpl_tsl_weights',
    'TunableWeights',
]
