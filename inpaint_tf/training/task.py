"""The inpainting task: the models and the losses of GEPE-Net Eq. 10.

``InpaintingTask`` builds the generator, the local and global critics and,
with ``aux_losses='tpl_tsl'``, the tunable TPL/TSL terms and their
reweighter; it turns one (per-replica) batch into named loss terms. It knows
nothing of optimisers, devices or the loop (``steps``, ``loop``).

* critics (GMCNN ``build_net``): for the local critic on the hole's
  bounding-box crop (``models.hole_crop`` at ``local_size``) and the global
  critic on the whole image, ``d = mean(D(completed)) - mean(D(real))`` plus
  ``theta_gp`` times the gradient penalty on per-sample random interpolates,
  its slope taken over the hole (``losses.masked_gradient_penalty``);
* generator (Eq. 10): ``gamma_svw * L_svw + gamma_igl * L_IGL + gamma_adv *
  (g_adv_local + g_adv_global)`` (+ ``gamma_ae * ae`` when ``gamma_ae >
  0``); ``L_IGL`` exists when the generator gives guidance targets
  (``Generator.uses_guidance``, GEPE-Net) and the adversarial terms only
  once the critics train.
"""

from __future__ import annotations

import collections
import dataclasses
from typing import Dict, Mapping, Tuple

import tensorflow as tf

from inpaint_tf import config as config_lib
from inpaint_tf import losses
from inpaint_tf import models
from inpaint_tf import ops
from inpaint_tf import perceptual
from inpaint_tf import reweighting
from inpaint_tf.layers.contextual_attention import DEFAULT_WHOLE_MAP_POSITIONS
from inpaint_tf.models import generator as generator_lib

# (value, weight) of one loss term; scalars (the weight may be a tensor).
LossTerm = collections.namedtuple('LossTerm', ['value', 'weight'])
CRITIC_TERMS = ('d_local', 'd_global', 'gp_local', 'gp_global')


class InpaintingTask:
  """Generator, critics and the named loss terms of one experiment.

  Build it under the distribution strategy's scope (and the mixed-precision
  policy, if any): the models' variables are created here.

  Args:
    config: the experiment (model, attention, losses, critics, awa, train
      for the image size).
  """

  def __init__(self, config: config_lib.ExperimentConfig):
    self.config = config
    size = config.train.image_size
    local = config.critics.local_size
    self.generator = models.build_generator(
        **dataclasses.asdict(config.model),
        **dataclasses.asdict(config.attention), name='generator')
    self.generator.build(size)
    self.local_critic = models.LocalCritic(
        filters=config.critics.local_filters)
    self.local_critic.build([None, local, local, 3])
    self.global_critic = models.GlobalCritic(
        filters=config.critics.global_filters)
    self.global_critic.build([None, size, size, 3])
    self.auxiliary = self.reweighter = None
    if config.losses.aux_losses == 'tpl_tsl':
      self.auxiliary = perceptual.TunableAuxiliaryLoss(
          reweighting.tpl_tsl_weights(config.awa),
          vgg_weights=config.losses.vgg_weights,
          vgg_convention=config.losses.vgg_convention)
      self.reweighter = reweighting.make_reweighter(
          config.awa.reweight, self.auxiliary.tunable, self.generator,
          config.awa)

  @property
  def critic_variables(self):
    """Trainable variables of both critics (local first)."""
    return (self.local_critic.trainable_variables +
            self.global_critic.trainable_variables)

  @property
  def needs_guidance(self) -> bool:
    """Whether each generator update reads a second (guidance) batch."""
    return bool(self.reweighter is not None and self.reweighter.uses_guidance)

  def critic_terms(self, images: tf.Tensor, masks: tf.Tensor,
                   completed: tf.Tensor, alphas: Tuple[tf.Tensor, tf.Tensor],
                   gradient_scale=None) -> Dict[str, LossTerm]:
    """Named critic loss terms (GMCNN's ``d_loss``) for one batch.

    Args:
      images: [B,H,W,3] float32 in [-1,1], the ground truth.
      masks: [B,H,W,1] float32, 1 = hole.
      completed: [B,H,W,3] float32, ``G(I) * M + Igt * (1 - M)``.
      alphas: the penalty's per-sample interpolation weights in [0, 1),
        [B] each, for the local and the global critic.
      gradient_scale: the penalties' inner-gradient scale (the loss scale
        under mixed precision), see ``losses.masked_gradient_penalty``.

    Returns:
      Ordered dict: ``d_local``, ``d_global`` (weight 1), ``gp_local``,
      ``gp_global`` (weight ``theta_gp``).
    """
    size = self.config.critics.local_size
    real_local = models.hole_crop(images, masks, size)
    fake_local = models.hole_crop(completed, masks, size)
    mask_local = models.hole_crop(masks, masks, size)

    def local(x):
      return tf.cast(self.local_critic(x, training=True), tf.float32)

    def global_(x):
      return tf.cast(self.global_critic(x, training=True), tf.float32)

    theta = self.config.losses.theta_gp
    return collections.OrderedDict([
        ('d_local', LossTerm(losses.wgan_critic_loss(
            local(real_local), local(fake_local)), 1.0)),
        ('d_global', LossTerm(losses.wgan_critic_loss(
            global_(images), global_(completed)), 1.0)),
        ('gp_local', LossTerm(losses.masked_gradient_penalty(
            local, real_local, fake_local, mask_local, alpha=alphas[0],
            gradient_scale=gradient_scale), theta)),
        ('gp_global', LossTerm(losses.masked_gradient_penalty(
            global_, images, completed, masks, alpha=alphas[1],
            gradient_scale=gradient_scale), theta)),
    ])

  def completed(self, images: tf.Tensor, masks: tf.Tensor) -> tf.Tensor:
    """The generator's completion of ``images`` (held fixed for the critics).

    Args:
      images: [B,H,W,3] float32 in [-1,1]; masks: [B,H,W,1], 1 = hole.

    Returns:
      [B,H,W,3] float32, ``G(I) * M + Igt * (1 - M)`` without gradient.
    """
    masked = images * (1.0 - masks)
    pred = tf.cast(self.generator((masked, masks), training=True), tf.float32)
    return tf.stop_gradient(ops.composite(pred, images, masks))

  def generator_terms(self, images: tf.Tensor, masks: tf.Tensor,
                      adversarial: bool, training: bool = True):
    """Named generator loss terms of Eq. 10 for one (per-replica) batch.

    The auxiliary TPL/TSL terms are not included (``aux_losses``).

    Args:
      images: [B,H,W,3] float32 in [-1,1], the ground truth.
      masks: [B,H,W,1] float32, 1 = hole.
      adversarial: include the critics' terms (False while pretraining).
      training: passed to the models.

    Returns:
      (terms, pred, completed): an ordered dict name -> ``LossTerm``
      (``svw``, ``igl`` if the generator gives guidance targets, ``ae`` if
      ``gamma_ae > 0``, ``adv_local`` and ``adv_global`` if adversarial),
      and the generator output and completed image, [B,H,W,3] float32.
    """
    lc = self.config.losses
    guided = self.generator.uses_guidance
    masked = images * (1.0 - masks)
    out = self.generator((masked, masks), training=training,
                         ground_truth=images if guided else None,
                         structured=True)
    pred = tf.cast(out.image, tf.float32)
    completed = ops.composite(pred, images, masks)
    weights = losses.spatial_variant_weights(
        masks, size=lc.svw_size, sigma=lc.svw_sigma,
        iterations=lc.svw_iterations)
    terms = collections.OrderedDict()
    terms['svw'] = LossTerm(
        losses.svw_reconstruction_loss(
            images, pred, weights, masks, normalization=lc.svw_normalization),
        lc.gamma_svw)
    if guided:
      terms['igl'] = LossTerm(losses.iterative_guidance_loss(
          out.features, out.targets, stop_gradient=lc.igl_stop_gradient),
                              lc.gamma_igl)
    if lc.gamma_ae > 0:
      terms['ae'] = LossTerm(losses.known_region_loss(images, pred, masks),
                             lc.gamma_ae)
    if adversarial:
      local = models.hole_crop(completed, masks,
                               self.config.critics.local_size)
      terms['adv_local'] = LossTerm(losses.wgan_generator_loss(tf.cast(
          self.local_critic(local, training=training), tf.float32)),
                                    lc.gamma_adv)
      terms['adv_global'] = LossTerm(losses.wgan_generator_loss(tf.cast(
          self.global_critic(completed, training=training), tf.float32)),
                                     lc.gamma_adv)
    return terms, pred, completed

  def reweighted_losses(self, batch, adversarial: bool):
    """The reweighter's ``loss_fn``: the generator losses of one batch.

    Args:
      batch: (images [B,H,W,3] float32 in [-1,1], masks [B,H,W,1], 1 =
        hole), one replica's.
      adversarial: include the critics' terms.

    Returns:
      (main, aux, terms): the weighted sum of the Eq. 10 terms [] float32,
      the N unweighted TPL/TSL terms (``perceptual.AuxiliaryTerms``) and
      the Eq. 10 terms by name (``generator_terms``).
    """
    images, masks = batch
    terms, pred, _ = self.generator_terms(images, masks, adversarial)
    return (weighted_sum(terms), self.auxiliary.terms(pred, images, masks),
            terms)

  @property
  def auxiliary_names(self) -> Tuple[str, ...]:
    """Names of the auxiliary terms (empty without ``aux_losses``)."""
    return tuple(self.auxiliary.tunable.names) if self.auxiliary else ()


def weighted_sum(terms: Mapping[str, LossTerm]) -> tf.Tensor:
  """``sum(value * weight)`` over the terms, float32."""
  return tf.add_n([t.value * tf.cast(t.weight, tf.float32)
                   for t in terms.values()])


def check_fits(config: config_lib.ExperimentConfig,
               num_replicas: int = 1) -> None:
  """Raises ValueError for settings that do not fit together.

  (Each field's own choices and range are checked when its section is
  made.)
  """
  t, c = config.train, config.critics
  multiple = models.SIZE_MULTIPLE
  if t.image_size < multiple or t.image_size % multiple:
    raise ValueError(f'image_size: expected a positive multiple of '
                     f'{multiple}, got {t.image_size}')
  if not 1 <= c.local_size <= t.image_size:
    raise ValueError(f'local_size: expected 1..image_size ({t.image_size}), '
                     f'got {c.local_size}')
  if t.batch_size % num_replicas:
    raise ValueError(f'batch_size: expected a positive multiple of the '
                     f'{num_replicas} replicas, got {t.batch_size}')
  chunked = generator_lib.chunked_attention_layers(
      config.model.variant, t.image_size, config.model.attention_rates)
  if t.jit_compile and config.attention.attention_hole_only and chunked:
    layers = ', '.join(f'{k} ({v} positions)' for k, v in chunked.items())
    raise ValueError(
        f'jit_compile: XLA cannot compile the hole-only attention of '
        f'{layers} at image_size {t.image_size}: maps of over '
        f'{DEFAULT_WHOLE_MAP_POSITIONS} positions are computed in chunks '
        'whose sizes depend on the hole; pass --attention_hole_only=false '
        '(the full layer compiles) or leave out --jit_compile')
  if config.losses.aux_losses != 'none' and t.mixed_precision:
    raise ValueError('mixed_precision: not supported with aux_losses '
                     f'{config.losses.aux_losses!r} (the reweighters '
                     'differentiate without loss scaling)')

