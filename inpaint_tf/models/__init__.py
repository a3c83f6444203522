"""GEPE-Net generator variants, WGAN critics and checkpoint helpers."""

from inpaint_tf.models.critics import GlobalCritic
from inpaint_tf.models.critics import hole_crop
from inpaint_tf.models.critics import LocalCritic
from inpaint_tf.models.generator import build_generator
from inpaint_tf.models.generator import Generator
from inpaint_tf.models.generator import GeneratorOutput
from inpaint_tf.models.generator import load_generator
from inpaint_tf.models.generator import save_generator_config

__all__ = [
    'GlobalCritic', 'hole_crop', 'LocalCritic',
    'build_generator', 'Generator', 'GeneratorOutput', 'load_generator',
    'save_generator_config',
]
