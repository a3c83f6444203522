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

The separable branches are ``DeterministicSeparableConv2D``: Keras's
``SeparableConv2D`` with the depthwise step written as shifted products,
whose gradients are deterministic on GPUs.
"""

from __future__ import annotations

from typing import Any, Dict, Sequence

import tensorflow as tf

from inpaint_tf import config as config_lib
from inpaint_tf import ops
from inpaint_tf.keras_api import keras


@keras.utils.register_keras_serializable('inpaint_tf')
class DeterministicSeparableConv2D(keras.layers.SeparableConv2D):
  """``SeparableConv2D`` whose depthwise step is a sum of shifted products.

  Keras's layer runs DepthwiseConv2dNative, whose filter gradient
  (DepthwiseConv2dNativeBackpropFilter) has no deterministic GPU kernel off
  the cuDNN path and fails under
  ``tf.config.experimental.enable_op_determinism``. Here the depthwise
  convolution is the sum over the kernel taps of a shifted slice of the
  (zero-padded) input times that tap's per-channel weights; its gradients
  are pads, slices, products and sums, deterministic on GPUs (by
  construction; the tests run on the CPU). The pointwise 1x1 convolution,
  bias and activation follow as in Keras's layer. The variables are the
  stock layer's (``depthwise_kernel``, ``pointwise_kernel``, ``bias``), and
  so are the checkpoints; the values are equal to float rounding.

  Args:
    *args, **kwargs: those of ``keras.layers.SeparableConv2D``, with strides
      1, ``depth_multiplier`` 1 and ``channels_last`` (ValueError
      otherwise).
  """

  def __init__(self, *args, **kwargs):
    super().__init__(*args, **kwargs)
    if (tuple(self.strides) != (1, 1) or self.depth_multiplier != 1
        or self.data_format != 'channels_last'):
      raise ValueError(
          'expected strides 1, depth_multiplier 1 and channels_last, got '
          f'strides {self.strides}, depth_multiplier '
          f'{self.depth_multiplier}, {self.data_format}')

  def call(self, inputs: tf.Tensor) -> tf.Tensor:
    """Applies the layer.

    Args:
      inputs: [B,H,W,C] float of the compute dtype.

    Returns:
      [B,H',W',filters] (H' = H with 'same' padding).
    """
    kernel = tf.cast(self.depthwise_kernel, inputs.dtype)  # [kh,kw,C,1]
    rate_h, rate_w = self.dilation_rate
    reach_h = rate_h * (kernel.shape[0] - 1)
    reach_w = rate_w * (kernel.shape[1] - 1)
    x = inputs
    if self.padding == 'same':
      x = tf.pad(x, [[0, 0], [reach_h // 2, reach_h - reach_h // 2],
                     [reach_w // 2, reach_w - reach_w // 2], [0, 0]])
    size = [tf.shape(x)[1] - reach_h, tf.shape(x)[2] - reach_w]
    depthwise = tf.add_n([
        tf.slice(x, [0, i * rate_h, j * rate_w, 0], [-1] + size + [-1]) *
        kernel[i, j, :, 0]
        for i in range(kernel.shape[0]) for j in range(kernel.shape[1])])
    outputs = tf.nn.conv2d(
        depthwise, tf.cast(self.pointwise_kernel, inputs.dtype), 1, 'VALID')
    if self.use_bias:
      outputs = tf.nn.bias_add(outputs, tf.cast(self.bias, inputs.dtype))
    return outputs if self.activation is None else self.activation(outputs)


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
        DeterministicSeparableConv2D(
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
