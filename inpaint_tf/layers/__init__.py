"""Custom Keras layers: contextual attention (DeepFill v1) and ASPC (GEPE-Net)."""

from inpaint_tf.layers.aspc import ASPC
from inpaint_tf.layers.contextual_attention import ContextualAttention

__all__ = ['ASPC', 'ContextualAttention']
