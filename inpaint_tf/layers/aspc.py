"""Atrous separable pyramid convolution (ASPC), GEPE-Net Sec. III-B, Fig. 4.

The deepest encoder feature ``x5p`` is processed by parallel branches with
different receptive fields: one 1x1 convolution and one depthwise-separable
3x3 convolution per dilation rate (2, 4, 8, 16 by default). The branch
outputs are concatenated and fused by a 1x1 convolution.

A depthwise-separable 3x3 convolution from ``c_in`` to ``c_out`` channels
has ``9 * c_in + c_in * c_out`` kernel weights (the paper's example: 656 for
16 -> 32, against ``9 * 16 * 32 = 4608`` for a standard 3x3 convolution;
biases are not counted there).

Every convolution is followed by ELU, the activation used throughout the
generator (as in GMCNN and DeepFill).
"""

from __future__ import annotations

from typing import Any, Dict, Sequence

import tensorflow as tf

from inpaint_tf import config as config_lib
from inpaint_tf import ops
from inpaint_tf.keras_api import keras


@keras.utils.register_keras_serializable('inpaint_tf')
class ASPC(keras.layers.Layer):
  """Atrous separable pyramid convolution.

  Call: ``y = layer(x)`` with x ``[B,H,W,C]`` float -> y ``[B,H,W,filters]``.

  Args:
    filters: output channels of every branch and of the fusion convolution.
    rates: dilation rates of the depthwise-separable 3x3 branches.
    **kwargs: standard Keras layer arguments (``name``, ``dtype``, ...).
  """

  def __init__(self, filters: int,
               rates: Sequence[int] = config_lib.GeneratorConfig.aspc_rates,
               **kwargs):
    super().__init__(**kwargs)
    if int(filters) < 1:
      raise ValueError(f'filters: expected a positive int, got {filters!r}')
    rates = tuple(int(r) for r in rates)
    if not rates or min(rates) < 1:
      raise ValueError(f'rates: expected positive ints, got {rates!r}')
    self.filters = int(filters)
    self.rates = rates

  def build(self, input_shape):
    self.pointwise_branch = keras.layers.Conv2D(
        self.filters, 1, padding='same', activation='elu', name='conv1x1',
        dtype=self.dtype_policy)
    self.atrous_branches = [
        keras.layers.SeparableConv2D(
            self.filters, 3, padding='same', dilation_rate=rate,
            activation='elu', name=f'sepconv3x3_rate{rate}',
            dtype=self.dtype_policy)
        for rate in self.rates
    ]
    self.fuse = keras.layers.Conv2D(
        self.filters, 1, padding='same', activation='elu', name='fuse',
        dtype=self.dtype_policy)
    super().build(input_shape)

  def call(self, x: tf.Tensor) -> tf.Tensor:
    """Applies the pyramid.

    Args:
      x: [B,H,W,C] float feature map.

    Returns:
      [B,H,W,filters] feature map of the compute dtype.
    """
    ops.check_tensor('x', x, 4, '[B,H,W,C] float')
    branches = [self.pointwise_branch(x)]
    branches += [branch(x) for branch in self.atrous_branches]
    return self.fuse(tf.concat(branches, axis=-1))

  def compute_output_shape(self, input_shape):
    input_shape = tf.TensorShape(input_shape)
    return input_shape[:-1].concatenate([self.filters])

  def get_config(self) -> Dict[str, Any]:
    config = super().get_config()
    config.update({'filters': self.filters, 'rates': list(self.rates)})
    return config
