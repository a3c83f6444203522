"""Hyperparameters of GEPE-Net and AWA, defined once.

Every default here is the value from the papers (GEPE-Net Eq. 10 and
Sec. IV; AWA Sec. 4 and its authors' trainer) or from the original TF1 code
the papers build on (DeepFill v1, GMCNN). Command-line flags in
``tools/`` and the flagfiles in ``flags/`` override these values; nothing
else in the package repeats them.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Optional, Tuple

GENERATOR_VARIANTS = ('snet', 'penet', 'gepenet')
# 'mixed': a square hole or free-form strokes, each with probability 1/2.
MASK_TYPES = ('square', 'center', 'free_form', 'mixed', 'folder')
REWEIGHTERS = ('fixed', 'awa', 'adaloss', 'gradnorm', 'gradsim')
GUIDANCE_METRICS = ('lpips', 'mae')
# What the spatial-variant L1 is averaged over (losses.svw_reconstruction_loss).
SVW_NORMALIZATIONS = ('hole_bbox', 'image')


@dataclasses.dataclass(frozen=True)
class AttentionConfig:
  """Contextual attention (DeepFill v1 defaults)."""
  ksize: int = 3
  stride: int = 1
  fuse_k: int = 3
  softmax_scale: float = 10.0
  fuse: bool = True


@dataclasses.dataclass(frozen=True)
class GeneratorConfig:
  """Generator architecture (SPEC 4.2)."""
  variant: str = 'gepenet'
  cnum: int = 32
  aspc: bool = True
  # Dilation rates of the ASPC branches.
  aspc_rates: Tuple[int, ...] = (2, 4, 8, 16)
  # Attention rate of encoder layers E3, E4, E5.
  attention_rates: Tuple[int, ...] = (2, 1, 1)


@dataclasses.dataclass(frozen=True)
class LossConfig:
  """Loss weights and options (GEPE-Net Eq. 10, GMCNN)."""
  gamma_igl: float = 0.08
  gamma_adv: float = 0.01
  gamma_svw: float = 1.0
  # GMCNN's known-region L1 term (``ae_loss``); the paper's Eq. 10 has none.
  gamma_ae: float = 0.0
  theta_gp: float = 10.0
  # Treat E_i(Igt) as a fixed target in the IGL. Eq. 4-6 write no
  # stop-gradient; with one the IGL diverges in training from scratch
  # (docs/training_study.md), see losses.iterative_guidance_loss.
  igl_stop_gradient: bool = False
  # GMCNN's: the spatial-variant L1 averaged over each hole's bounding box
  # (losses.svw_reconstruction_loss); the paper's weights assume it.
  svw_normalization: str = 'hole_bbox'
  svw_size: int = 64
  svw_sigma: float = 1.0 / 40.0
  svw_iterations: int = 7


@dataclasses.dataclass(frozen=True)
class CriticConfig:
  """Local and global WGAN critics (Tables I and II)."""
  local_filters: Tuple[int, ...] = (64, 128, 256, 512)
  global_filters: Tuple[int, ...] = (64, 128, 256, 256)
  local_size: int = 128


@dataclasses.dataclass(frozen=True)
class OptimizerConfig:
  """Adam for generator and critics (GEPE-Net Sec. IV)."""
  learning_rate: float = 1e-4
  # Rate of both optimisers once the critics train (GMCNN fine-tunes its
  # reconstruction-pretrained network adversarially at 1e-5); None: the
  # same as ``learning_rate``.
  adversarial_learning_rate: Optional[float] = None
  # Exponential decay: rates are multiplied by 0.5 ** (step / lr_half_life);
  # 0 keeps them constant (the paper's setting).
  lr_half_life: int = 0
  beta_1: float = 0.5
  beta_2: float = 0.9
  n_critic: int = 5
  pretrain_steps: int = 0


@dataclasses.dataclass(frozen=True)
class MaskConfig:
  """Hole generation (GMCNN's random_bbox/bbox2mask, free-form strokes)."""
  mask_type: str = 'square'
  hole_size: int = 128
  margin: int = 0
  max_delta: int = 32
  ff_max_vertex: int = 16
  ff_max_length: int = 80
  ff_max_brush_width: int = 20
  ff_max_angle: int = 360
  ff_parts: int = 8


@dataclasses.dataclass(frozen=True)
class AugmentConfig:
  """Augmentation of the training images (``data.make_dataset``).

  Horizontal flips are always used. ``min_crop_scale`` applies to random
  crops (``--data=skimage``): each image is scaled by a factor drawn from
  ``[min_crop_scale, 1]`` before the crop. ``rotate90`` adds rotations by
  multiples of 90 degrees. The defaults (off) are the papers' pipelines.
  """
  min_crop_scale: float = 1.0
  rotate90: bool = False


@dataclasses.dataclass(frozen=True)
class AWAConfig:
  """Tunable auxiliary losses and their reweighting (AWA paper, authors' code)."""
  perceptual_base: float = 0.1
  perceptual_scale: float = 20.0
  style_base: float = 250.0
  style_scale: float = 3.0
  lookahead_steps: int = 1
  guidance: str = 'lpips'
  lr: float = 1e-3
  beta_1: float = 0.5
  beta_2: float = 0.9
  weight_decay: float = 0.2
  # AdamW epsilon of PyTorch's AdamW, which the authors use.
  epsilon: float = 1e-8
  all_parameters: bool = False
  # AWA: update the generator with the weights from before this step's phi
  # update and reuse its gradient as the look-ahead direction (one backward
  # pass through VGG fewer; the weights lag Algorithm 1 by one step).
  reuse_generator_gradient: bool = False
  # Baselines: AdaLoss running-mean momentum (Hu et al.), GradNorm's
  # restoring-force exponent alpha (Chen et al., 1.5 in their NYUv2 runs).
  adaloss_momentum: float = 0.99
  gradnorm_alpha: float = 1.5

  @property
  def phi_init(self) -> Tuple[float, float]:
    """Initial phi of the perceptual and style weights: ``-log(scale - 1)``."""
    return (-math.log(self.perceptual_scale - 1.0),
            -math.log(self.style_scale - 1.0))
