"""Tests of inpaint_tf.ops: the resize gradient against TF's op.

The gradients replace kernels without a deterministic GPU implementation;
they are compared here on the CPU with TensorFlow's own (deterministic on
the CPU) kernels. That they are deterministic on a GPU follows from the ops
they are made of; no GPU runs here.
"""

import numpy as np
import tensorflow as tf
from absl.testing import parameterized

from inpaint_tf import ops

# (input height, width, output height, width): down- and upsampling,
# one-pixel inputs and outputs, odd ratios.
_RESIZES = ((8, 8, 4, 4), (7, 9, 3, 5), (5, 5, 1, 1), (1, 1, 4, 3),
            (4, 6, 9, 13), (17, 3, 6, 2), (2, 2, 5, 5), (32, 32, 16, 16),
            (3, 10, 1, 7))


def _stock_resize_gradient(dy, in_size):
  return tf.raw_ops.ResizeNearestNeighborGrad(
      grads=dy, size=in_size, align_corners=True, half_pixel_centers=False)


def _gradient(fn, x, dy):
  with tf.GradientTape() as tape:
    tape.watch(x)
    y = fn(x)
  return tape.gradient(y, x, output_gradients=dy)


class ResizeNearestTest(tf.test.TestCase, parameterized.TestCase):

  @parameterized.parameters(*_RESIZES)
  def test_gradient_matches_stock_kernel(self, in_h, in_w, out_h, out_w):
    rng = np.random.default_rng(in_h * 100 + out_w)
    x = tf.constant(rng.standard_normal((2, in_h, in_w, 3)), tf.float32)
    dy = tf.constant(rng.standard_normal((2, out_h, out_w, 3)), tf.float32)
    grad = _gradient(lambda t: ops.resize_nearest(t, [out_h, out_w]), x, dy)
    self.assertAllClose(grad, _stock_resize_gradient(dy, [in_h, in_w]),
                        atol=1e-6, rtol=1e-6)

  def test_dynamic_shapes_and_dtypes(self):
    rng = np.random.default_rng(1)

    @tf.function(input_signature=[
        tf.TensorSpec([None, None, None, 2], tf.float64),
        tf.TensorSpec([None, None, None, 2], tf.float64)])
    def grad_fn(x, dy):
      size = [tf.shape(dy)[1], tf.shape(dy)[2]]
      return _gradient(lambda t: ops.resize_nearest(t, size), x, dy)

    for in_h, in_w, out_h, out_w in _RESIZES[:4]:
      x = rng.standard_normal((3, in_h, in_w, 2))
      dy = rng.standard_normal((3, out_h, out_w, 2))
      self.assertAllClose(grad_fn(x, dy), _stock_resize_gradient(
          tf.constant(dy), [in_h, in_w]), atol=1e-12)
    x16 = tf.constant(rng.standard_normal((1, 6, 6, 2)), tf.float16)
    dy16 = tf.constant(rng.standard_normal((1, 3, 4, 2)), tf.float16)
    grad16 = _gradient(lambda t: ops.resize_nearest(t, [3, 4]), x16, dy16)
    self.assertEqual(grad16.dtype, tf.float16)
    self.assertAllClose(grad16, _stock_resize_gradient(dy16, [6, 6]),
                        atol=1e-2)

  def test_integer_values(self):
    x = tf.reshape(tf.range(20, dtype=tf.int32), [1, 4, 5, 1])
    expected = tf.compat.v1.image.resize_nearest_neighbor(
        x, [7, 3], align_corners=True)
    self.assertAllEqual(ops.resize_nearest(x, [7, 3]), expected)

  def test_gradient_is_differentiable(self):
    # The gradient is linear in dy: <grad(dy), v> has gradient resize(v).
    rng = np.random.default_rng(2)
    x = tf.constant(rng.standard_normal((2, 7, 9, 3)), tf.float32)
    dy = tf.constant(rng.standard_normal((2, 4, 5, 3)), tf.float32)
    v = tf.constant(rng.standard_normal((2, 7, 9, 3)), tf.float32)
    with tf.GradientTape() as outer:
      outer.watch(dy)
      inner = tf.reduce_sum(_gradient(
          lambda t: ops.resize_nearest(t, [4, 5]), x, dy) * v)
    self.assertAllClose(outer.gradient(inner, dy),
                        ops.resize_nearest(v, [4, 5]), atol=1e-6)


if __name__ == '__main__':
  tf.test.main()
