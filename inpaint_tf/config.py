"""Every setting of an experiment, defined once: ``ExperimentConfig``.

An experiment is one ``ExperimentConfig``: nine sections (model, attention,
losses, critics, optimizer, masks, awa, train, data), each a frozen
dataclass. Every default is the value from the papers (GEPE-Net Eq. 10 and
Sec. IV; AWA Sec. 4 and its authors' trainer) or from the original TF1
code the papers build on (DeepFill v1, GMCNN); nothing else in the package
repeats them.

Field names are unique across the sections, and each field is the
command-line flag of the same name (``config_flags``). How a field is
declared (help text, choices, ranges, ``scaled`` and ``resumable``) is
``config_fields``'s.
"""

from __future__ import annotations

import dataclasses
import math
import typing
from typing import Any, Dict, Iterator, Mapping, Optional, Tuple

from inpaint_tf.config_fields import PAPER_IMAGE_SIZE
from inpaint_tf.config_fields import Section
from inpaint_tf.config_fields import field
from inpaint_tf.config_fields import scaled_size

GENERATOR_VARIANTS = ('snet', 'penet', 'gepenet')
# 'mixed': a square hole or free-form strokes, each with probability 1/2.
MASK_TYPES = ('square', 'center', 'free_form', 'mixed', 'folder')
REWEIGHTERS = ('fixed', 'awa', 'adaloss', 'gradnorm', 'gradsim')
GUIDANCE_METRICS = ('lpips', 'mae')
# What the spatial-variant L1 is averaged over (losses.svw_reconstruction_loss).
SVW_NORMALIZATIONS = ('hole_bbox', 'image')
# Auxiliary generator losses: none, or TPL + TSL (AWA paper Eqs. 4-5).
AUX_LOSSES = ('none', 'tpl_tsl')
# The VGG-16 of TPL/TSL and its input (vgg.VGGFeatures): torchvision's fed
# [-1, 1] RGB (AWA's trainer), or Keras' Caffe-converted fed BGR 0-255 minus
# the ImageNet mean.
VGG_CONVENTIONS = ('torchvision', 'keras_caffe')
STRATEGIES = ('default', 'mirrored', 'multi_worker')
# Seeds seed NumPy and TensorFlow, which take 0 .. 2**32 - 1.
MAX_SEED = 2**32 - 1


@dataclasses.dataclass(frozen=True)
class GeneratorConfig(Section):
  """Generator architecture (SPEC 4.2)."""
  variant: str = field('gepenet', 'snet (no perception, IGL, ASPC), penet '
                       '(no IGL) or gepenet.', choices=GENERATOR_VARIANTS)
  cnum: int = field(32, 'Generator width (channels of E1 / 2).', minimum=1)
  aspc: bool = field(True, 'Atrous separable pyramid convolution '
                     '(penet/gepenet).')
  aspc_rates: Tuple[int, ...] = field((2, 4, 8, 16),
                                      'Dilation rates of the ASPC branches.')
  attention_rates: Tuple[int, ...] = field(
      (2, 1, 1), 'Contextual attention rate of E3, E4, E5.')


@dataclasses.dataclass(frozen=True)
class AttentionConfig(Section):
  """Contextual attention (DeepFill v1 defaults)."""
  attention_ksize: int = field(3, 'Contextual attention patch size.',
                               minimum=1)
  attention_stride: int = field(1, 'Contextual attention patch stride.',
                                minimum=1)
  attention_fuse_k: int = field(3, 'Contextual attention fusion kernel '
                                'size.', minimum=1)
  attention_softmax_scale: float = field(10.0, 'Contextual attention '
                                         'softmax scale.')
  attention_fuse: bool = field(True, 'Fuse contextual attention scores '
                               '(DeepFill).')
  # The generator keeps p's output only inside the hole; computing only
  # there gives the same values with time and memory that follow the hole
  # (layers/query_attention.py). The full computation compiles with XLA.
  attention_hole_only: bool = field(
      True, 'Compute contextual attention only inside the hole (same '
      'values; memory grows with the image, not its square). False computes '
      'every position, which XLA can compile.', resumable=True)


@dataclasses.dataclass(frozen=True)
class LossConfig(Section):
  """Loss weights and options (GEPE-Net Eq. 10, GMCNN)."""
  gamma_igl: float = field(0.08, 'Weight of the iterative guidance loss '
                           '(gepenet).')
  gamma_adv: float = field(0.01, 'Weight of each adversarial term (local, '
                           'global).')
  gamma_svw: float = field(1.0, 'Weight of the spatial-variant-weight L1 '
                           'loss.')
  # GMCNN's known-region L1 term (``ae_loss``); the paper's Eq. 10 has none.
  gamma_ae: float = field(0.0, "Weight of GMCNN's known-region L1 (0 = off, "
                          'as in Eq. 10).')
  theta_gp: float = field(10.0, 'Gradient penalty weight.')
  # Eq. 4-6 write no stop-gradient; with one the IGL diverges in training
  # from scratch (docs/training_study.md), see losses.iterative_guidance_loss.
  igl_stop_gradient: bool = field(False, 'Treat the IGL targets E_i(Igt) '
                                  'as constants.')
  # GMCNN's: the spatial-variant L1 averaged over each hole's bounding box
  # (losses.svw_reconstruction_loss); the paper's weights assume it.
  svw_normalization: str = field(
      'hole_bbox', "What the spatial-variant L1 is averaged over: each hole's "
      'bounding box (GMCNN) or the whole image.', choices=SVW_NORMALIZATIONS)
  svw_size: int = field(64, 'Kernel size of the confidence propagation '
                        '(M_w).', scaled=True, minimum=1)
  svw_sigma: float = field(1.0 / 40.0, 'M_w kernel sigma.')
  svw_iterations: int = field(7, 'M_w propagation iterations.', minimum=1)
  aux_losses: str = field('none', 'Auxiliary generator losses: none, or TPL '
                          '+ TSL on VGG-16 features.', choices=AUX_LOSSES)
  vgg_convention: str = field(
      'torchvision', "VGG-16 of TPL/TSL: torchvision's ImageNet weights fed "
      "[-1,1] RGB, as AWA's trainer (a .npz from tools.convert_vgg), or "
      "keras_caffe: Keras' Caffe-converted weights fed BGR 0-255 minus the "
      'ImageNet mean (another loss scale than the paper weights assume).',
      choices=VGG_CONVENTIONS)
  vgg_weights: Optional[str] = field(
      'imagenet', "VGG-16 weights for TPL/TSL: 'imagenet' (the Keras cache "
      "file of the convention, vgg16_torchvision.npz or Keras' "
      'vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5) or a path to '
      'such a file.', resumable=True)


@dataclasses.dataclass(frozen=True)
class CriticConfig(Section):
  """Local and global WGAN critics (Tables I and II)."""
  local_filters: Tuple[int, ...] = field(
      (64, 128, 256, 512), 'Filters of the local critic convolutions.')
  global_filters: Tuple[int, ...] = field(
      (64, 128, 256, 256), 'Filters of the global critic convolutions.')
  local_size: int = field(128, 'Input side of the local critic (hole '
                          'bounding box resized to it).', scaled=True,
                          minimum=1)


@dataclasses.dataclass(frozen=True)
class OptimizerConfig(Section):
  """Adam for generator and critics (GEPE-Net Sec. IV), and the schedule."""
  learning_rate: float = field(1e-4, 'Adam learning rate (G and D).',
                               resumable=True)
  # GMCNN fine-tunes its reconstruction-pretrained network adversarially at
  # 1e-5.
  adversarial_learning_rate: Optional[float] = field(
      None, 'Adam learning rate (G and D) once the critics train; default: '
      '--learning_rate.', resumable=True)
  lr_half_life: int = field(0, 'Steps over which the learning rates halve '
                            '(exponential decay); 0 = constant (the '
                            "paper's).", resumable=True, minimum=0)
  beta_1: float = field(0.5, 'Adam beta_1.', resumable=True)
  beta_2: float = field(0.9, 'Adam beta_2.', resumable=True)
  n_critic: int = field(5, 'Critic updates per generator update.',
                        resumable=True, minimum=1)
  pretrain_steps: int = field(0, 'Reconstruction-only steps (no critics) at '
                              'the start.', resumable=True, minimum=0)

  def __post_init__(self):
    super().__post_init__()
    for name in ('learning_rate', 'adversarial_learning_rate'):
      rate = getattr(self, name)
      if rate is not None and not rate > 0:
        raise ValueError(f'{name}: expected > 0, got {rate}')


@dataclasses.dataclass(frozen=True)
class MaskConfig(Section):
  """Hole generation (GMCNN's random_bbox/bbox2mask, free-form strokes)."""
  mask_type: str = field('square', 'Hole generator.', choices=MASK_TYPES)
  mask_dir: Optional[str] = field(None, 'Folder or file list of mask images '
                                  'for --mask_type=folder.', resumable=True)
  hole_size: int = field(128, 'Side of the square hole.', scaled=True,
                         minimum=0)
  margin: int = field(0, 'Margin between the square hole and the border.',
                      scaled=True, minimum=0)
  max_delta: int = field(32, 'Largest random shrink of the square hole.',
                         scaled=True, minimum=0)
  ff_max_vertex: int = field(16, 'Free-form strokes: most vertices per '
                             'stroke.', minimum=1)
  ff_max_length: int = field(80, 'Free-form strokes: longest segment.',
                             scaled=True, minimum=0)
  ff_max_brush_width: int = field(20, 'Free-form strokes: widest brush.',
                                  scaled=True, minimum=0)
  ff_max_angle: int = field(360, 'Free-form strokes: largest turn '
                            '(degrees).')
  ff_parts: int = field(8, 'Free-form strokes: strokes per mask.', minimum=1)


@dataclasses.dataclass(frozen=True)
class AWAConfig(Section):
  """Tunable auxiliary losses and their reweighting (AWA paper, authors' code)."""
  reweight: str = field('fixed', 'Reweighting of the auxiliary terms '
                        '(fixed: the standard perceptual and style losses).',
                        choices=REWEIGHTERS)
  perceptual_base: float = field(0.1, 'Initial weight of each perceptual '
                                 'term.')
  perceptual_scale: float = field(20.0, 'Perceptual weights range over (0, '
                                  'base * scale).')
  style_base: float = field(250.0, 'Initial weight of each style term.')
  style_scale: float = field(3.0, 'Style weights range over (0, base * '
                             'scale).')
  lookahead_steps: int = field(1, "AWA's look-ahead steps K.", minimum=1)
  guidance: str = field('lpips', "AWA's guidance metric.",
                        choices=GUIDANCE_METRICS)
  lpips_weights: Optional[str] = field(
      None, 'LPIPS .npz (tools/convert_lpips.py) for AWA with '
      '--guidance=lpips.', resumable=True)
  awa_lr: float = field(1e-3, 'AdamW learning rate of phi.')
  awa_beta_1: float = field(0.5, 'AdamW beta_1 of phi.')
  awa_beta_2: float = field(0.9, "AdamW beta_2 of phi (the paper says 0.999, "
                            "the authors' code 0.9).")
  awa_weight_decay: float = field(0.2, 'AdamW weight decay of phi.')
  # PyTorch's AdamW epsilon, which the authors use.
  awa_epsilon: float = field(1e-8, 'AdamW epsilon of phi.')
  awa_all_parameters: bool = field(
      False, 'AWA/GradNorm/GradSim gradients over all generator parameters '
      'instead of its output layer.')
  reuse_generator_gradient: bool = field(
      False, 'AWA: update the generator with the weights from before the '
      "step's phi update and reuse its gradient as the look-ahead direction "
      '(one backward pass through VGG fewer; the weights lag Algorithm 1 by '
      'one step).')
  adaloss_momentum: float = field(0.99, "AdaLoss's running-mean momentum "
                                  '(Hu et al.).')
  gradnorm_alpha: float = field(1.5, "GradNorm's restoring-force exponent "
                                '(Chen et al., 1.5 in their NYUv2 runs).')

  @property
  def phi_init(self) -> Tuple[float, float]:
    """Initial phi of the perceptual and style weights: ``-log(scale - 1)``."""
    return (-math.log(self.perceptual_scale - 1.0),
            -math.log(self.style_scale - 1.0))


@dataclasses.dataclass(frozen=True)
class TrainConfig(Section):
  """The run: resolution, batch, length, cadence, devices, validation.

  ``image_size`` is the papers' resolution; ``batch_size`` and ``max_steps``
  are GMCNN's training defaults (``options/train_options.py``), which the
  GEPE-Net paper does not state.
  """
  image_size: int = field(PAPER_IMAGE_SIZE, 'Training resolution (square; '
                          'a multiple of 16).', minimum=1)
  batch_size: int = field(16, 'Global batch size (split over replicas).',
                          resumable=True, minimum=1)
  max_steps: int = field(40000, 'Generator updates in total (a resumed run '
                         'continues).', resumable=True, minimum=1)
  seed: int = field(0, 'Random seed.', minimum=0, maximum=MAX_SEED)
  log_every: int = field(10, 'Steps between TensorBoard scalars (averaged '
                         'over them).', resumable=True, minimum=1)
  image_every: int = field(500, 'Steps between TensorBoard image grids.',
                           resumable=True, minimum=1)
  checkpoint_every: int = field(1000, 'Steps between checkpoints.',
                                resumable=True, minimum=1)
  keep_checkpoints: int = field(5, 'Checkpoints kept.', resumable=True,
                                minimum=1)
  max_images: int = field(4, 'Samples in each TensorBoard image grid.',
                          resumable=True, minimum=1)
  strategy: str = field('default', 'tf.distribute strategy.',
                        choices=STRATEGIES, resumable=True)
  mixed_precision: bool = field(False, 'mixed_float16 with loss scaling '
                                '(GPUs).')
  deterministic: bool = field(False, 'Enable TensorFlow op determinism '
                              '(bit-reproducible runs).', resumable=True)
  jit_compile: bool = field(
      False, "Compile each replica's loss and gradient computation with XLA "
      "(the reweighters' steps and the optimiser updates run uncompiled).",
      resumable=True)
  eval_every: int = field(
      0, 'Steps between held-out evaluations (PSNR, SSIM, L1 of completed '
      'crops, with cv2 TELEA/NS beside them) written to <log_dir>/eval.csv '
      'and TensorBoard; also at the start and the end. 0 = none.',
      resumable=True, minimum=0)
  eval_crops_per_image: int = field(
      4, 'Crops of --image_size cut from each held-out image; each gets a '
      'square and a free-form hole.', minimum=1)
  eval_seed: int = field(1234, 'Seed of the held-out crops and holes.',
                         minimum=0, maximum=MAX_SEED)


@dataclasses.dataclass(frozen=True)
class DataConfig(Section):
  """Training and held-out images, and their augmentation.

  Horizontal flips are always used; the other augmentations are off by
  default (the papers' pipelines).
  """
  data: Optional[str] = field(
      None, 'Training images: a folder (searched recursively), a text file '
      'listing image paths, or "skimage" for the training split of '
      "scikit-image's bundled photographs (random crops).", resumable=True)
  celeba_crop: bool = field(False, 'Centre-crop CelebA images to 178x178 '
                            'before resizing.')
  min_crop_scale: float = field(
      1.0, 'With --data=skimage: scale each image by a random factor in '
      '[min_crop_scale, 1] before the random crop.')
  rotate90: bool = field(False, 'Rotate training images by random multiples '
                         'of 90 degrees.')
  eval_data: Optional[str] = field(
      None, 'Held-out images for --eval_every: a folder or a text file list. '
      "Default with --data=skimage: the demo's validation images.",
      resumable=True)


# Section name -> its dataclass, in ``ExperimentConfig`` order.
SECTIONS = {
    'model': GeneratorConfig,
    'attention': AttentionConfig,
    'losses': LossConfig,
    'critics': CriticConfig,
    'optimizer': OptimizerConfig,
    'masks': MaskConfig,
    'awa': AWAConfig,
    'train': TrainConfig,
    'data': DataConfig,
}


def _section(name: str) -> Any:
  return dataclasses.field(default_factory=SECTIONS[name])


@dataclasses.dataclass(frozen=True)
class ExperimentConfig:
  """One experiment: every setting, by section (see the module docstring)."""
  model: GeneratorConfig = _section('model')
  attention: AttentionConfig = _section('attention')
  losses: LossConfig = _section('losses')
  critics: CriticConfig = _section('critics')
  optimizer: OptimizerConfig = _section('optimizer')
  masks: MaskConfig = _section('masks')
  awa: AWAConfig = _section('awa')
  train: TrainConfig = _section('train')
  data: DataConfig = _section('data')

  def replace(self, **values: Any) -> 'ExperimentConfig':
    """A copy with fields replaced by their (unique) names.

    ``config.replace(variant='snet', image_size=64)``; an unknown name is a
    ValueError.
    """
    owners = field_sections()
    updates: Dict[str, Dict[str, Any]] = {}
    for name, value in values.items():
      if name not in owners:
        raise ValueError(f'{name}: expected a field of ExperimentConfig, '
                         'got an unknown name')
      updates.setdefault(owners[name], {})[name] = value
    return dataclasses.replace(self, **{
        section: dataclasses.replace(getattr(self, section), **fields)
        for section, fields in updates.items()})

  def scaled(self, explicit: Tuple[str, ...] = ()) -> 'ExperimentConfig':
    """The ``scaled`` sizes follow ``train.image_size``, except ``explicit``.

    A size ``s`` given at ``PAPER_IMAGE_SIZE`` becomes ``round(s *
    image_size / PAPER_IMAGE_SIZE)``; the current value is the one scaled.
    """
    size = self.train.image_size
    return self.replace(**{
        f.name: scaled_size(self.value(f.name), size)
        for _, f in fields()
        if f.metadata['scaled'] and f.name not in explicit})

  def value(self, name: str) -> Any:
    """The value of the field called ``name``."""
    return getattr(getattr(self, field_sections()[name]), name)

  def to_dict(self) -> Dict[str, Dict[str, Any]]:
    """JSON-ready nested dict (tuples become lists)."""
    return {section: {k: list(v) if isinstance(v, tuple) else v
                      for k, v in dataclasses.asdict(getattr(self, section)
                                                     ).items()}
            for section in SECTIONS}

  @classmethod
  def from_dict(cls, values: Mapping[str, Mapping[str, Any]]
                ) -> 'ExperimentConfig':
    """Inverse of ``to_dict``; unknown fields are a ValueError."""
    flat = {}
    for section in values.values():
      for name, value in section.items():
        flat[name] = tuple(value) if isinstance(value, list) else value
    return cls().replace(**flat)


def fields() -> Iterator[Tuple[str, dataclasses.Field]]:
  """``(section name, field)`` of every setting, in order."""
  for section, cls in SECTIONS.items():
    for f in dataclasses.fields(cls):
      yield section, f


def field_sections() -> Dict[str, str]:
  """Field name -> name of its section."""
  owners = {}
  for section, f in fields():
    if f.name in owners:
      raise TypeError(f'{f.name}: defined in sections {owners[f.name]!r} and '
                      f'{section!r}; field names must be unique')
    owners[f.name] = section
  return owners


def field_type(section: str, name: str) -> Any:
  """The annotated type of a field (``int``, ``Optional[str]``, ...)."""
  return typing.get_type_hints(SECTIONS[section])[name]

