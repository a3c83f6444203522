"""Generator (S-Net, PE-Net, GEPE-Net) and the local and global critics."""

from inpaint_tf.models.critics import GlobalCritic
from inpaint_tf.models.critics import hole_crop
from inpaint_tf.models.critics import LocalCritic
from inpaint_tf.models.generator import build_generator
from inpaint_tf.models.generator import Generator
from inpaint_tf.models.generator import GeneratorOutput
from inpaint_tf.models.generator import SIZE_MULTIPLE

__all__ = [
    'build_generator', 'Generator', 'GeneratorOutput', 'GlobalCritic',
    'hole_crop', 'LocalCritic', 'SIZE_MULTIPLE',
]
