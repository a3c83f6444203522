r"""Trains GEPE-Net (or its S-Net / PE-Net ablations) with WGAN-GP critics.

  python -m tools.train --flagfile=flags/demo.cfg --log_dir=DIR --max_steps=N

Every flag can be overridden after the flagfile. Hyperparameter defaults
are those of ``inpaint_tf.config`` (the paper's values) and
``inpaint_tf.training.TrainConfig``. Sizes given in pixels at the paper's
256x256 resolution (square hole size, its random shrink and margin,
free-form stroke length and width, local critic input, SVW kernel) scale
with ``--image_size`` unless set explicitly.

The run directory ``--log_dir`` holds ``generator.json``, checkpoints in
``ckpt/`` (a run resumes from the latest one automatically) and TensorBoard
events in ``tb/``. A NaN/inf loss stops the run with exit status 1 and a
message naming the term; the last good checkpoint is kept. SIGTERM (a
scheduler's pre-emption) and SIGINT (Ctrl-C) finish the current step,
write a checkpoint and exit with status 143 / 130; the same command then
continues the run exactly. Image files that cannot be read are skipped and
counted (one warning per file, the count at the end); data with no
readable image stops before the run directory is made.
"""

from . import _cli  # pylint: disable=g-bad-import-order

import dataclasses
import os
import sys
from typing import Optional

from absl import flags

from inpaint_tf import config as config_lib
from inpaint_tf import data as data_lib
from inpaint_tf import training
from inpaint_tf import validation

FLAGS = flags.FLAGS

_GEN = config_lib.GeneratorConfig()
_ATT = config_lib.AttentionConfig()
_AWA = config_lib.AWAConfig()
_LOSS = config_lib.LossConfig()
_CRITIC = config_lib.CriticConfig()
_OPT = config_lib.OptimizerConfig()
_MASK = config_lib.MaskConfig()
_AUG = config_lib.AugmentConfig()
_TRAIN = training.TrainConfig()

_PAPER_SIZE = _TRAIN.image_size


def _scaled_help(text: str, default: int) -> str:
  return (f'{text} Default: {default} at {_PAPER_SIZE}x{_PAPER_SIZE}, '
          'scaled with --image_size.')


# Data.
flags.DEFINE_string(
    'data', None, 'Training images: a folder (searched recursively), a text '
    'file listing image paths, or "skimage" for the training split of '
    "scikit-image's bundled photographs (random crops).")
flags.DEFINE_integer('image_size', _TRAIN.image_size,
                     'Training resolution (square; a multiple of 16).')
flags.DEFINE_bool('celeba_crop', False,
                  f'Centre-crop CelebA images to {data_lib.CELEBA_CROP}x'
                  f'{data_lib.CELEBA_CROP} before resizing.')
flags.DEFINE_float('min_crop_scale', _AUG.min_crop_scale,
                   'With --data=skimage: scale each image by a random factor '
                   'in [min_crop_scale, 1] before the random crop.')
flags.DEFINE_bool('rotate90', _AUG.rotate90,
                  'Rotate training images by random multiples of 90 degrees.')
flags.DEFINE_enum('mask_type', _MASK.mask_type, list(config_lib.MASK_TYPES),
                  'Hole generator.')
flags.DEFINE_string('mask_dir', None,
                    'Folder of mask images for --mask_type=folder.')
flags.DEFINE_integer('hole_size', None,
                     _scaled_help('Side of the square hole.', _MASK.hole_size))
flags.DEFINE_integer('max_delta', None, _scaled_help(
    'Largest random shrink of the square hole.', _MASK.max_delta))
flags.DEFINE_integer('margin', None, _scaled_help(
    'Margin between the square hole and the border.', _MASK.margin))
flags.DEFINE_integer('ff_max_vertex', _MASK.ff_max_vertex,
                     'Free-form strokes: most vertices per stroke.')
flags.DEFINE_integer('ff_max_length', None, _scaled_help(
    'Free-form strokes: longest segment.', _MASK.ff_max_length))
flags.DEFINE_integer('ff_max_brush_width', None, _scaled_help(
    'Free-form strokes: widest brush.', _MASK.ff_max_brush_width))
flags.DEFINE_integer('ff_max_angle', _MASK.ff_max_angle,
                     'Free-form strokes: largest turn (degrees).')
flags.DEFINE_integer('ff_parts', _MASK.ff_parts,
                     'Free-form strokes: strokes per mask.')

# Generator.
flags.DEFINE_enum('variant', _GEN.variant, list(config_lib.GENERATOR_VARIANTS),
                  'snet (no perception, IGL, ASPC), penet (no IGL) or gepenet.')
flags.DEFINE_integer('cnum', _GEN.cnum, 'Generator width (channels of E1 / 2).')
flags.DEFINE_bool('aspc', _GEN.aspc,
                  'Atrous separable pyramid convolution (penet/gepenet).')
flags.DEFINE_list('aspc_rates', [str(r) for r in _GEN.aspc_rates],
                  'Dilation rates of the ASPC branches.')
flags.DEFINE_list('attention_rates', [str(r) for r in _GEN.attention_rates],
                  'Contextual attention rate of E3, E4, E5.')
flags.DEFINE_integer('attention_ksize', _ATT.ksize,
                     'Contextual attention patch size.')
flags.DEFINE_integer('attention_stride', _ATT.stride,
                     'Contextual attention patch stride.')
flags.DEFINE_integer('attention_fuse_k', _ATT.fuse_k,
                     'Contextual attention fusion kernel size.')
flags.DEFINE_float('softmax_scale', _ATT.softmax_scale,
                   'Contextual attention softmax scale.')
flags.DEFINE_bool('attention_fuse', _ATT.fuse,
                  'Fuse contextual attention scores (DeepFill).')

# Losses.
flags.DEFINE_float('gamma_igl', _LOSS.gamma_igl,
                   'Weight of the iterative guidance loss (gepenet).')
flags.DEFINE_float('gamma_adv', _LOSS.gamma_adv,
                   'Weight of each adversarial term (local, global).')
flags.DEFINE_float('gamma_svw', _LOSS.gamma_svw,
                   'Weight of the spatial-variant-weight L1 loss.')
flags.DEFINE_float('gamma_ae', _LOSS.gamma_ae,
                   "Weight of GMCNN's known-region L1 (0 = off, as in Eq. 10).")
flags.DEFINE_float('theta_gp', _LOSS.theta_gp, 'Gradient penalty weight.')
flags.DEFINE_bool('igl_stop_gradient', _LOSS.igl_stop_gradient,
                  'Treat the IGL targets E_i(Igt) as constants.')
flags.DEFINE_enum('svw_normalization', _LOSS.svw_normalization,
                  list(config_lib.SVW_NORMALIZATIONS),
                  'What the spatial-variant L1 is averaged over: each '
                  "hole's bounding box (GMCNN) or the whole image.")
flags.DEFINE_integer('svw_size', None, _scaled_help(
    'Kernel size of the confidence propagation (M_w).', _LOSS.svw_size))
flags.DEFINE_float('svw_sigma', _LOSS.svw_sigma, 'M_w kernel sigma.')
flags.DEFINE_integer('svw_iterations', _LOSS.svw_iterations,
                     'M_w propagation iterations.')

# Critics and optimisation.
flags.DEFINE_integer('local_size', None, _scaled_help(
    'Input side of the local critic (hole bounding box resized to it).',
    _CRITIC.local_size))
flags.DEFINE_list('local_filters', [str(f) for f in _CRITIC.local_filters],
                  'Filters of the local critic convolutions.')
flags.DEFINE_list('global_filters', [str(f) for f in _CRITIC.global_filters],
                  'Filters of the global critic convolutions.')
flags.DEFINE_float('lr', _OPT.learning_rate, 'Adam learning rate (G and D).')
flags.DEFINE_float('adversarial_learning_rate', None,
                   'Adam learning rate (G and D) once the critics train; '
                   'default: --lr.')
flags.DEFINE_integer('lr_half_life', _OPT.lr_half_life,
                     'Steps over which the learning rates halve '
                     '(exponential decay); 0 = constant.')
flags.DEFINE_float('beta1', _OPT.beta_1, 'Adam beta_1.')
flags.DEFINE_float('beta2', _OPT.beta_2, 'Adam beta_2.')
flags.DEFINE_integer('n_critic', _OPT.n_critic,
                     'Critic updates per generator update.')
flags.DEFINE_integer('pretrain_steps', _OPT.pretrain_steps,
                     'Reconstruction-only steps (no critics) at the start.')

# Auxiliary losses and their reweighting (AWA paper).
flags.DEFINE_enum('aux_losses', training.AUX_LOSSES[0],
                  list(training.AUX_LOSSES),
                  'Auxiliary generator losses: none, or TPL + TSL on VGG-16 '
                  'features.')
flags.DEFINE_enum('reweight', config_lib.REWEIGHTERS[0],
                  list(config_lib.REWEIGHTERS),
                  'Reweighting of the auxiliary terms (fixed: the standard '
                  'perceptual and style losses).')
flags.DEFINE_enum('guidance', _AWA.guidance, list(config_lib.GUIDANCE_METRICS),
                  "AWA's guidance metric.")
flags.DEFINE_string('vgg_weights', 'imagenet',
                    "VGG-16 weights for TPL/TSL: 'imagenet' (Keras cache "
                    'file) or a path to a Keras no-top .h5 file.')
flags.DEFINE_string('lpips_weights', None,
                    'LPIPS .npz (tools/convert_lpips.py) for AWA with '
                    '--guidance=lpips.')
flags.DEFINE_integer('lookahead_steps', _AWA.lookahead_steps,
                     "AWA's look-ahead steps K.")
flags.DEFINE_bool('awa_all_parameters', _AWA.all_parameters,
                  'AWA/GradNorm/GradSim gradients over all generator '
                  'parameters instead of its output layer.')
flags.DEFINE_float('awa_lr', _AWA.lr, 'AdamW learning rate of phi.')
flags.DEFINE_float('awa_beta1', _AWA.beta_1, 'AdamW beta_1 of phi.')
flags.DEFINE_float('awa_beta2', _AWA.beta_2,
                   'AdamW beta_2 of phi (the paper says 0.999, the authors\' '
                   'code 0.9).')
flags.DEFINE_float('awa_weight_decay', _AWA.weight_decay,
                   'AdamW weight decay of phi.')
flags.DEFINE_float('awa_epsilon', _AWA.epsilon, 'AdamW epsilon of phi.')
flags.DEFINE_float('perceptual_base', _AWA.perceptual_base,
                   'Initial weight of each perceptual term.')
flags.DEFINE_float('perceptual_scale', _AWA.perceptual_scale,
                   'Perceptual weights range over (0, base * scale).')
flags.DEFINE_float('style_base', _AWA.style_base,
                   'Initial weight of each style term.')
flags.DEFINE_float('style_scale', _AWA.style_scale,
                   'Style weights range over (0, base * scale).')
flags.DEFINE_float('adaloss_momentum', _AWA.adaloss_momentum,
                   "AdaLoss's running-mean momentum.")
flags.DEFINE_float('gradnorm_alpha', _AWA.gradnorm_alpha,
                   "GradNorm's restoring-force exponent.")

# Run.
# absl.logging defines --log_dir (used only by logging.use_absl_log_file,
# which nothing here calls); it is this tool's run directory.
flags.FLAGS['log_dir'].help = ('Run directory: generator.json, ckpt/, tb/ '
                               '(required).')
flags.DEFINE_integer('max_steps', _TRAIN.max_steps,
                     'Generator updates in total (a resumed run continues).')
flags.DEFINE_integer('batch_size', _TRAIN.batch_size,
                     'Global batch size (split over replicas).')
flags.DEFINE_integer('seed', _TRAIN.seed, 'Random seed.')
flags.DEFINE_bool('deterministic', _TRAIN.deterministic,
                  'Enable TensorFlow op determinism (bit-reproducible runs).')
flags.DEFINE_enum('strategy', _TRAIN.strategy, list(training.STRATEGIES),
                  'tf.distribute strategy.')
flags.DEFINE_bool('mixed_precision', _TRAIN.mixed_precision,
                  'mixed_float16 with loss scaling (GPUs).')
flags.DEFINE_integer('log_every', _TRAIN.log_every,
                     'Steps between TensorBoard scalars.')
flags.DEFINE_integer('image_every', _TRAIN.image_every,
                     'Steps between TensorBoard image grids.')
flags.DEFINE_integer('checkpoint_every', _TRAIN.checkpoint_every,
                     'Steps between checkpoints.')
flags.DEFINE_integer('keep_checkpoints', _TRAIN.keep_checkpoints,
                     'Checkpoints kept.')

# Held-out validation.
flags.DEFINE_integer('eval_every', _TRAIN.eval_every,
                     'Steps between held-out evaluations (PSNR, SSIM, L1 of '
                     'completed crops, with cv2 TELEA/NS beside them) written '
                     'to <log_dir>/eval.csv and TensorBoard; also at the '
                     'start and the end. 0 = none.')
flags.DEFINE_string('eval_data', None,
                    'Held-out images for --eval_every: a folder or a text '
                    'file list. Default with --data=skimage: the held-out '
                    'demo images.')
flags.DEFINE_integer('eval_crops_per_image', _TRAIN.eval_crops_per_image,
                     'Crops of --image_size cut from each held-out image; '
                     'each gets a square and a free-form hole.')
flags.DEFINE_integer('eval_seed', _TRAIN.eval_seed,
                     'Seed of the held-out crops and holes.')


def _scaled(value, default: int) -> int:
  if value is not None:
    return value
  return max(0, int(round(default * FLAGS.image_size / _PAPER_SIZE)))


def _int_list(name: str, values) -> tuple:
  try:
    return tuple(int(v) for v in values)
  except ValueError:
    raise ValueError(f'--{name}: expected comma-separated integers, got '
                     f'{",".join(values)!r}') from None


def build_configs() -> dict:
  """``Trainer`` keyword arguments from the flags (``dataclasses.replace``)."""
  return dict(
      generator_config=dataclasses.replace(
          _GEN, variant=FLAGS.variant, cnum=FLAGS.cnum, aspc=FLAGS.aspc,
          aspc_rates=_int_list('aspc_rates', FLAGS.aspc_rates),
          attention_rates=_int_list('attention_rates', FLAGS.attention_rates)),
      attention_config=dataclasses.replace(
          _ATT, ksize=FLAGS.attention_ksize, stride=FLAGS.attention_stride,
          fuse_k=FLAGS.attention_fuse_k, softmax_scale=FLAGS.softmax_scale,
          fuse=FLAGS.attention_fuse),
      loss_config=dataclasses.replace(
          _LOSS, gamma_igl=FLAGS.gamma_igl, gamma_adv=FLAGS.gamma_adv,
          gamma_svw=FLAGS.gamma_svw, gamma_ae=FLAGS.gamma_ae,
          theta_gp=FLAGS.theta_gp, igl_stop_gradient=FLAGS.igl_stop_gradient,
          svw_normalization=FLAGS.svw_normalization,
          svw_size=_scaled(FLAGS.svw_size, _LOSS.svw_size),
          svw_sigma=FLAGS.svw_sigma, svw_iterations=FLAGS.svw_iterations),
      critic_config=dataclasses.replace(
          _CRITIC, local_size=_scaled(FLAGS.local_size, _CRITIC.local_size),
          local_filters=_int_list('local_filters', FLAGS.local_filters),
          global_filters=_int_list('global_filters', FLAGS.global_filters)),
      optimizer_config=dataclasses.replace(
          _OPT, learning_rate=FLAGS.lr,
          adversarial_learning_rate=FLAGS.adversarial_learning_rate,
          lr_half_life=FLAGS.lr_half_life, beta_1=FLAGS.beta1,
          beta_2=FLAGS.beta2, n_critic=FLAGS.n_critic,
          pretrain_steps=FLAGS.pretrain_steps),
      train_config=dataclasses.replace(
          _TRAIN, image_size=FLAGS.image_size, batch_size=FLAGS.batch_size,
          max_steps=FLAGS.max_steps, seed=FLAGS.seed,
          deterministic=FLAGS.deterministic, strategy=FLAGS.strategy,
          mixed_precision=FLAGS.mixed_precision, log_every=FLAGS.log_every,
          image_every=FLAGS.image_every,
          checkpoint_every=FLAGS.checkpoint_every,
          keep_checkpoints=FLAGS.keep_checkpoints,
          eval_every=FLAGS.eval_every,
          eval_crops_per_image=FLAGS.eval_crops_per_image,
          eval_seed=FLAGS.eval_seed),
      aux_losses=FLAGS.aux_losses,
      reweight=FLAGS.reweight,
      awa_config=dataclasses.replace(
          _AWA, perceptual_base=FLAGS.perceptual_base,
          perceptual_scale=FLAGS.perceptual_scale,
          style_base=FLAGS.style_base, style_scale=FLAGS.style_scale,
          lookahead_steps=FLAGS.lookahead_steps, guidance=FLAGS.guidance,
          lr=FLAGS.awa_lr, beta_1=FLAGS.awa_beta1, beta_2=FLAGS.awa_beta2,
          weight_decay=FLAGS.awa_weight_decay, epsilon=FLAGS.awa_epsilon,
          all_parameters=FLAGS.awa_all_parameters,
          adaloss_momentum=FLAGS.adaloss_momentum,
          gradnorm_alpha=FLAGS.gradnorm_alpha),
      vgg_weights=FLAGS.vgg_weights,
      lpips_weights=FLAGS.lpips_weights,
  )


def build_mask_config() -> config_lib.MaskConfig:
  return dataclasses.replace(
      _MASK, mask_type=FLAGS.mask_type,
      hole_size=_scaled(FLAGS.hole_size, _MASK.hole_size),
      max_delta=_scaled(FLAGS.max_delta, _MASK.max_delta),
      margin=_scaled(FLAGS.margin, _MASK.margin),
      ff_max_vertex=FLAGS.ff_max_vertex,
      ff_max_length=_scaled(FLAGS.ff_max_length, _MASK.ff_max_length),
      ff_max_brush_width=_scaled(FLAGS.ff_max_brush_width,
                                 _MASK.ff_max_brush_width),
      ff_max_angle=FLAGS.ff_max_angle, ff_parts=FLAGS.ff_parts)


def build_validation_set(train_config: training.TrainConfig,
                         mask_config: config_lib.MaskConfig
                         ) -> Optional[validation.ValidationSet]:
  """The held-out crops of ``--eval_every`` (None when it is 0)."""
  if train_config.eval_every < 0:
    raise ValueError(f'--eval_every: expected >= 0, got '
                     f'{train_config.eval_every}')
  if not train_config.eval_every:
    if FLAGS.eval_data:
      raise ValueError('--eval_data: given, but --eval_every is 0 (no '
                       'evaluation); set --eval_every=N')
    return None
  images = validation.default_eval_images(FLAGS.data, FLAGS.eval_data)
  if images is None:
    raise ValueError(f'--eval_every: expected --eval_data (a folder or file '
                     f'list of held-out images) with --data={FLAGS.data}, got '
                     'none')
  return validation.ValidationSet(
      images, train_config.image_size, mask_config,
      train_config.eval_crops_per_image, train_config.eval_seed)


def main(argv):
  if len(argv) > 1:
    raise ValueError(f'unexpected arguments: {" ".join(argv[1:])}')
  _cli.require(data=FLAGS.data, log_dir=FLAGS.log_dir)
  configs = build_configs()
  train_config = configs['train_config']
  # Before any other TensorFlow work: multi-worker collectives must be
  # configured at program start-up.
  strategy = training.make_strategy(train_config.strategy)
  training.configure_determinism(train_config.seed, train_config.deterministic)
  mask_config = build_mask_config()
  skipped = data_lib.SkipCounter()
  dataset_fn = training.make_dataset_fn(
      FLAGS.data, image_size=train_config.image_size,
      batch_size=train_config.batch_size, mask_config=mask_config,
      celeba_crop=FLAGS.celeba_crop, mask_dir=FLAGS.mask_dir,
      seed=train_config.seed, augment=config_lib.AugmentConfig(
          min_crop_scale=FLAGS.min_crop_scale, rotate90=FLAGS.rotate90),
      skip_counter=skipped)
  validation_set = build_validation_set(train_config, mask_config)
  trainer = training.Trainer(FLAGS.log_dir, dataset_fn, strategy=strategy,
                             validation_set=validation_set, **configs)
  if trainer.restored_from:
    print(f'resuming from {trainer.restored_from} '
          f'(step {int(trainer.step.numpy())})', file=sys.stderr)
  try:
    with training.stop_on_signals(trainer):
      trainer.train(train_config.max_steps)
  except training.TrainingInterrupted as err:
    print(f'{err}; {skipped.summary()}', file=sys.stderr, flush=True)
    return err.exit_status
  except training.NonFiniteLossError as err:
    print(_cli.error_line(err), file=sys.stderr, flush=True)
    return 1
  print(skipped.summary(), file=sys.stderr)
  print(f'trained to step {int(trainer.step.numpy())}; checkpoints in '
        f'{trainer.manager.directory}', file=sys.stderr)
  if trainer.eval_seconds:
    share = trainer.eval_seconds / max(trainer.train_seconds, 1e-9)
    print(f'validation: {trainer.eval_seconds:.1f} s, {100 * share:.1f}% of '
          f'the {trainer.train_seconds:.1f} s of training steps; scores in '
          f'{os.path.join(FLAGS.log_dir, validation.EVAL_CSV)}',
          file=sys.stderr)
  return 0


if __name__ == '__main__':
  _cli.run_main(main)
