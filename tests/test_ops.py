"""Tests of inpaint_tf.ops: the resize and crop gradients against TF's ops.

The gradients replace kernels without a deterministic GPU implementation;
they are compared here on the CPU with TensorFlow's own (deterministic on
the CPU) kernels. That they are deterministic on a GPU follows from the ops
they are made of (tests/test_gpu_determinism.py); no GPU runs here.
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


class CropAndResizeTest(tf.test.TestCase):

  def _compare(self, images, boxes, crop_size):
    """Max |difference| of values and image gradients against the op."""
    images = tf.constant(images, tf.float32)
    boxes = tf.constant(boxes, tf.float32)
    dy = tf.random.stateless_normal(
        [images.shape[0], *crop_size, images.shape[3]], seed=[1, 2])
    ours = ops.crop_and_resize(images, boxes, crop_size)
    stock = tf.image.crop_and_resize(images, boxes, tf.range(len(boxes)),
                                     crop_size)
    self.assertAllClose(ours, stock, atol=1e-5, rtol=1e-5)
    grad = _gradient(lambda t: ops.crop_and_resize(t, boxes, crop_size),
                     images, dy)
    stock_grad = _gradient(lambda t: tf.image.crop_and_resize(
        t, boxes, tf.range(len(boxes)), crop_size), images, dy)
    self.assertAllClose(grad, stock_grad, atol=1e-5, rtol=1e-5)

  def test_random_boxes(self):
    # Boxes partly outside the image (extrapolated as 0) and flipped ones.
    rng = np.random.default_rng(3)
    for _ in range(20):
      height, width = rng.integers(1, 20, size=2)
      crop_size = tuple(int(s) for s in rng.integers(1, 12, size=2))
      self._compare(rng.standard_normal((3, height, width, 2)),
                    rng.uniform(-0.3, 1.3, (3, 4)), crop_size)

  def test_pixel_boxes(self):
    # Boxes on pixel rows and columns, as hole_crop makes them: one pixel,
    # the whole image, an exact 4x4 region; crops of 1 and 4 pixels.
    images = np.random.default_rng(4).standard_normal((3, 9, 11, 3))
    scale = np.array([8.0, 10.0, 8.0, 10.0], np.float32)
    boxes = np.array([[3, 5, 3, 5], [0, 0, 8, 10], [2, 6, 5, 9]],
                     np.float32) / scale
    for crop_size in ((1, 1), (4, 4), (5, 7)):
      self._compare(images, boxes, crop_size)


if __name__ == '__main__':
  tf.test.main()
