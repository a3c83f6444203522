"""Tests of inpaint_tf.layers.aspc (GEPE-Net Sec. III-B)."""

import os

import numpy as np
import tensorflow as tf

from inpaint_tf import config as config_lib
from inpaint_tf.keras_api import keras
from inpaint_tf.layers import aspc as aspc_lib
import numpy_conv


class ASPCTest(tf.test.TestCase):

  def test_separable_parameter_count_matches_paper(self):
    # Paper: a 3x3 conv 16 -> 32 has (3*3*16)*32 = 4608 weights, the
    # depthwise-separable one 16*3*3 + 16*32*1*1 = 656 (biases not counted).
    # Every atrous branch of ASPC is such a factorisation: its depthwise and
    # pointwise kernels hold 656 weights, and composed into one 3x3 kernel
    # K[i,j,c,o] = D[i,j,c] P[c,o] (4608 weights) they give its output.
    rng = np.random.default_rng(1)
    x = rng.standard_normal((1, 9, 10, 16)).astype(np.float32)
    layer = aspc_lib.ASPC(32, rates=(1, 2, 4))
    layer(tf.constant(x))
    for rate, branch in zip(layer.rates, layer.atrous_branches):
      depth, point, bias = branch.get_weights()
      self.assertEqual(depth.shape, (3, 3, 16, 1))
      self.assertEqual(point.shape, (1, 1, 16, 32))
      self.assertEqual(depth.size + point.size, 656)
      composed = depth[:, :, :, 0, None] * point[0, 0][None, None]
      self.assertEqual(composed.size, 4608)
      expected = numpy_conv.elu(numpy_conv.conv2d(x, composed, bias,
                                                  dilation=rate))
      self.assertAllClose(branch(tf.constant(x)), expected, atol=1e-4,
                          rtol=1e-4, msg=f'rate {rate}')

  def test_default_rates_and_parameter_count(self):
    layer = aspc_lib.ASPC(32)
    self.assertEqual(layer.rates, config_lib.GeneratorConfig.aspc_rates)
    layer(tf.zeros([1, 4, 4, 16]))
    n = len(layer.rates)
    expected = (16 * 32 + 32  # 1x1 branch
                + n * (16 * 9 + 16 * 32 + 32)  # separable branches
                + (n + 1) * 32 * 32 + 32)  # fuse
    self.assertEqual(layer.count_params(), expected)

  def test_matches_numpy(self):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 6, 7, 3)).astype(np.float32)
    layer = aspc_lib.ASPC(4, rates=(1, 2, 4))
    y = layer(tf.constant(x)).numpy()

    def branch_1x1(conv):
      kernel, bias = conv.get_weights()
      return numpy_conv.elu(numpy_conv.conv2d(x, kernel, bias))

    outs = [branch_1x1(layer.pointwise_branch)]
    for rate, sep in zip(layer.rates, layer.atrous_branches):
      depth_kernel, point_kernel, bias = sep.get_weights()
      h = numpy_conv.depthwise_conv2d(x, depth_kernel, dilation=rate)
      outs.append(numpy_conv.elu(numpy_conv.conv2d(h, point_kernel, bias)))
    kernel, bias = layer.fuse.get_weights()
    expected = numpy_conv.elu(
        numpy_conv.conv2d(np.concatenate(outs, -1), kernel, bias))
    self.assertEqual(y.shape, (2, 6, 7, 4))
    self.assertAllClose(y, expected, atol=1e-5, rtol=1e-5)

  def test_config_round_trip(self):
    layer = aspc_lib.ASPC(8, rates=(2, 4), name='pyr')
    x = tf.random.normal([1, 8, 8, 3], seed=1)
    y = layer(x)
    config = layer.get_config()
    self.assertEqual(config['filters'], 8)
    self.assertEqual(config['rates'], [2, 4])
    clone = keras.layers.deserialize(keras.layers.serialize(layer))
    self.assertIsInstance(clone, aspc_lib.ASPC)
    self.assertEqual(clone.get_config(), config)
    clone(x)
    clone.set_weights(layer.get_weights())
    self.assertAllClose(clone(x), y)

  def test_uses_deterministic_separable_branches(self):
    layer = aspc_lib.ASPC(4, rates=(2, 4))
    layer(tf.zeros([1, 8, 8, 3]))
    for branch in layer.atrous_branches:
      self.assertIsInstance(branch, aspc_lib.DeterministicSeparableConv2D)

  def test_bad_input(self):
    layer = aspc_lib.ASPC(4)
    with self.assertRaisesRegex(ValueError, r'x: expected \[B,H,W,C\]'):
      layer(tf.zeros([4, 4, 3]))
    with self.assertRaisesRegex(ValueError, 'rates'):
      aspc_lib.ASPC(4, rates=(0, 2))


class DeterministicSeparableConv2DTest(tf.test.TestCase):
  """Against Keras's SeparableConv2D (DepthwiseConv2dNative) on the CPU."""

  def _pair(self, x, **kwargs):
    """The layer and a stock one with the same random weights."""
    ours = aspc_lib.DeterministicSeparableConv2D(6, activation='elu',
                                                  **kwargs)
    stock = keras.layers.SeparableConv2D(6, activation='elu', **kwargs)
    ours(x)
    stock(x)
    rng = np.random.default_rng(7)
    stock.set_weights([rng.standard_normal(w.shape).astype(w.dtype)
                       for w in stock.get_weights()])
    ours.set_weights(stock.get_weights())
    return ours, stock

  def test_values_and_gradients_match_keras(self):
    x = tf.constant(np.random.default_rng(6).standard_normal((2, 11, 13, 5)),
                    tf.float32)
    for kernel, rate, padding in ((3, 1, 'same'), (3, 2, 'same'),
                                  (3, 4, 'same'), (3, 16, 'same'),
                                  (3, 2, 'valid'), ((2, 5), 3, 'same')):
      ours, stock = self._pair(x, kernel_size=kernel, dilation_rate=rate,
                               padding=padding)
      with tf.GradientTape(persistent=True) as tape:
        tape.watch(x)
        y, expected = ours(x), stock(x)
        loss, stock_loss = (tf.reduce_sum(t * tf.sin(t))
                            for t in (y, expected))
      msg = f'kernel {kernel}, rate {rate}, {padding}'
      self.assertAllClose(y, expected, atol=1e-5, rtol=1e-5, msg=msg)
      grads = tape.gradient(loss, [x] + ours.trainable_variables)
      stock_grads = tape.gradient(stock_loss, [x] + stock.trainable_variables)
      for grad, stock_grad in zip(grads, stock_grads):
        self.assertAllClose(grad, stock_grad, atol=1e-4, rtol=1e-5, msg=msg)

  def test_mixed_precision_and_stock_checkpoint(self):
    x = tf.constant(np.random.default_rng(8).standard_normal((1, 9, 9, 4)),
                    tf.float32)
    _, stock = self._pair(x, kernel_size=3, dilation_rate=2, padding='same')
    path = tf.train.Checkpoint(layer=stock).save(
        os.path.join(self.get_temp_dir(), 'stock'))
    policy = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy('mixed_float16')
    try:
      ours = aspc_lib.DeterministicSeparableConv2D(
          6, 3, dilation_rate=2, padding='same', activation='elu')
      ours(x)
    finally:
      keras.mixed_precision.set_global_policy(policy)
    tf.train.Checkpoint(layer=ours).restore(path).assert_consumed()
    self.assertEqual([v.name.split('/')[-1] for v in ours.weights],
                     [v.name.split('/')[-1] for v in stock.weights])
    y = ours(x)
    self.assertEqual(y.dtype, tf.float16)
    self.assertAllClose(tf.cast(y, tf.float32), stock(x), atol=2e-2,
                        rtol=1e-2)

  def test_bad_arguments(self):
    with self.assertRaisesRegex(ValueError, 'expected strides 1'):
      aspc_lib.DeterministicSeparableConv2D(4, 3, strides=2)
    with self.assertRaisesRegex(ValueError, 'depth_multiplier 2'):
      aspc_lib.DeterministicSeparableConv2D(4, 3, depth_multiplier=2)


if __name__ == '__main__':
  tf.test.main()
