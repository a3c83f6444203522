"""inpaint_tf: GEPE-Net and AWA image inpainting in TensorFlow 2."""

__version__ = '0.1.0'
