"""Tests of inpaint_tf.models.critics (GEPE-Net Tables I and II)."""

import numpy as np
import tensorflow as tf

from inpaint_tf import config as config_lib
from inpaint_tf import ops
from inpaint_tf.keras_api import keras
from inpaint_tf.models import critics
import numpy_conv


def _numpy_critic(critic, x):
  h = x
  for conv in critic.convs:
    kernel, bias = conv.get_weights()
    h = numpy_conv.leaky_relu(numpy_conv.conv2d(h, kernel, bias, stride=2))
  kernel, bias = critic.score.get_weights()
  return h.reshape(h.shape[0], -1) @ kernel + bias


class CriticTest(tf.test.TestCase):

  def test_defaults_follow_tables(self):
    cfg = config_lib.CriticConfig()
    self.assertEqual(critics.LocalCritic().filters, cfg.local_filters)
    self.assertEqual(critics.GlobalCritic().filters, cfg.global_filters)
    self.assertEqual(cfg.local_filters, (64, 128, 256, 512))
    self.assertEqual(cfg.global_filters, (64, 128, 256, 256))

  def test_matches_numpy(self):
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, (3, 16, 12, 3)).astype(np.float32)
    for cls in (critics.LocalCritic, critics.GlobalCritic):
      critic = cls(filters=(4, 6, 8, 5))
      scores = critic(tf.constant(x))
      self.assertEqual(scores.shape, (3, 1))
      self.assertAllClose(scores, _numpy_critic(critic, x), atol=1e-5)
      # 16x12 input -> 1x1 spatial after four stride-2 convs.
      self.assertEqual(critic.score.kernel.shape, (5, 1))

  def test_none_batch_and_size_check(self):
    critic = critics.GlobalCritic(filters=(2, 2, 2, 2))
    fn = tf.function(critic, input_signature=[
        tf.TensorSpec([None, 32, 32, 3], tf.float32)])
    self.assertEqual(fn(tf.zeros([2, 32, 32, 3])).shape, (2, 1))
    self.assertEqual(fn(tf.zeros([5, 32, 32, 3])).shape, (5, 1))
    with self.assertRaisesRegex(ValueError, r'x: expected \[B,32,32,3\]'):
      critic(tf.zeros([1, 16, 16, 3]))
    with self.assertRaisesRegex(ValueError, r'x: expected \[B,h,w,3\]'):
      critic(tf.zeros([1, 32, 32, 1]))

  def test_config_round_trip(self):
    critic = critics.LocalCritic(filters=(2, 3, 4, 5), name='local')
    x = tf.random.normal([2, 16, 16, 3], seed=1)
    y = critic(x)
    config = critic.get_config()
    clone = critics.LocalCritic.from_config(config)
    self.assertEqual(clone.get_config(), config)
    clone(x)
    clone.set_weights(critic.get_weights())
    self.assertAllClose(clone(x), y)
    restored = keras.utils.deserialize_keras_object(
        keras.utils.serialize_keras_object(critic))
    self.assertIsInstance(restored, critics.LocalCritic)


class HoleCropTest(tf.test.TestCase):

  def test_exact_square_crop_per_sample(self):
    rng = np.random.default_rng(2)
    images = rng.uniform(-1, 1, (3, 20, 24, 3)).astype(np.float32)
    mask = np.zeros((3, 20, 24, 1), np.float32)
    mask[0, 2:10, 5:13] = 1
    mask[1, 12:20, 16:24] = 1  # touches the bottom-right corner
    mask[2, 0:8, 0:8] = 1
    crops = critics.hole_crop(tf.constant(images), tf.constant(mask), 8)
    expected = np.stack([images[0, 2:10, 5:13], images[1, 12:20, 16:24],
                         images[2, 0:8, 0:8]])
    self.assertAllClose(crops, expected, atol=1e-5)
    mask_crops = critics.hole_crop(tf.constant(mask), tf.constant(mask), 8)
    self.assertAllClose(mask_crops, np.ones_like(mask_crops), atol=1e-5)

  def test_free_form_empty_and_shared_mask(self):
    images = np.arange(2 * 9 * 9, dtype=np.float32).reshape(2, 9, 9, 1)
    mask = np.zeros((1, 9, 9, 1), np.float32)
    mask[0, 2, 6] = 1  # two strokes: bbox rows 2..6, cols 2..6
    mask[0, 6, 2] = 1
    crops = critics.hole_crop(tf.constant(images), tf.constant(mask), 3)
    # A 5x5 box sampled at 3 points per axis: rows/cols 2, 4, 6.
    self.assertAllClose(crops, images[:, 2:7:2, 2:7:2], atol=1e-4)
    boxes = ops.hole_bboxes(tf.constant(np.zeros((1, 9, 9, 1),
                                                     np.float32)))
    self.assertAllEqual(boxes, [[0, 0, 8, 8]])
    whole = critics.hole_crop(tf.constant(images), tf.zeros([2, 9, 9, 1]), 5)
    self.assertAllClose(whole, images[:, ::2, ::2], atol=1e-4)

  def test_matches_crop_and_resize(self):
    # Values and image gradient as tf.image.crop_and_resize with the boxes
    # of ops.hole_bboxes normalised by (H-1, W-1): a free-form mask, one
    # hole pixel, a hole over the whole image, no hole.
    rng = np.random.default_rng(5)
    images = tf.constant(rng.uniform(-1, 1, (4, 20, 24, 3)), tf.float32)
    mask = np.zeros((4, 20, 24, 1), np.float32)
    mask[0] = rng.uniform(size=(20, 24, 1)) > 0.97
    mask[1, 7, 9] = 1
    mask[2] = 1
    mask = tf.constant(mask)
    scale = tf.constant([19.0, 23.0, 19.0, 23.0])  # (H-1, W-1) twice
    boxes = tf.cast(ops.hole_bboxes(mask), tf.float32) / scale
    dy = tf.constant(rng.standard_normal((4, 6, 6, 3)), tf.float32)
    with tf.GradientTape(persistent=True) as tape:
      tape.watch(images)
      crops = critics.hole_crop(images, mask, 6)
      stock = tf.image.crop_and_resize(images, boxes, tf.range(4), [6, 6])
    self.assertAllClose(crops, stock, atol=1e-5)
    self.assertAllClose(tape.gradient(crops, images, dy),
                        tape.gradient(stock, images, dy), atol=1e-5)

  def test_gradient_flows_and_bad_mask(self):
    images = tf.random.uniform([1, 8, 8, 3], seed=3)
    mask = np.zeros((1, 8, 8, 1), np.float32)
    mask[0, 2:6, 2:6] = 1
    with tf.GradientTape() as tape:
      tape.watch(images)
      total = tf.reduce_sum(critics.hole_crop(images, tf.constant(mask), 4))
    grad = tape.gradient(total, images).numpy()
    self.assertAllClose(grad[0, ..., 0], mask[0, ..., 0], atol=1e-4)
    with self.assertRaisesRegex(ValueError, r'mask: expected \[B,8,8,1\]'):
      critics.hole_crop(images, tf.zeros([1, 4, 4, 1]), 4)


if __name__ == '__main__':
  tf.test.main()
