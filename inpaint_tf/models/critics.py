"""Local and global WGAN critics (GEPE-Net Tables I and II) and hole crops.

Both critics are four conv5x5 stride-2 layers with LeakyReLU(0.2), a
flatten and a dense layer with one output, as GMCNN's
``wgan_local_discriminator``/``wgan_global_discriminator`` + ``dense``. The
tables list a LeakyReLU on the final FC layer too; a WGAN critic needs an
unbounded linear score, so the output here is linear (GMCNN's ``dout_*_fc``
are linear as well).

The local critic sees the hole's bounding-box crop (``hole_crop``). For the
paper's square holes that is the hole itself (GMCNN's ``local_patch``). For
free-form masks the crop is the bounding box of all hole pixels, resized
bilinearly to the local size, so the local critic still looks at the
damaged area at a fixed resolution (GMCNN's free-form branch instead feeds
the whole image to a masked patch critic).
"""

from __future__ import annotations

from typing import Any, Dict, Sequence

import tensorflow as tf

from inpaint_tf import config as config_lib
from inpaint_tf import ops
from inpaint_tf.keras_api import keras

_CRITIC = config_lib.CriticConfig()


class _Critic(keras.Model):
  """conv5x5/2 + LeakyReLU stack, flatten, dense 1 (linear).

  The dense layer's input size depends on the image size, so it is fixed in
  ``build([B, h, w, 3])`` (or by the first call); later calls must use the
  same height and width.
  """

  def __init__(self, filters: Sequence[int], **kwargs):
    super().__init__(**kwargs)
    filters = tuple(int(f) for f in filters)
    if not filters or min(filters) < 1:
      raise ValueError(f'filters: expected positive ints, got {filters!r}')
    self.filters = filters
    # tf.nn.leaky_relu's default slope is 0.2, GMCNN's (and Table I's).
    self.convs = [
        keras.layers.Conv2D(
            f, 5, strides=2, padding='same', activation=tf.nn.leaky_relu,
            name=f'conv{i + 1}', dtype=self.dtype_policy)
        for i, f in enumerate(filters)
    ]
    self.flatten = keras.layers.Flatten(dtype=self.dtype_policy)
    self.score = keras.layers.Dense(1, name='fc', dtype=self.dtype_policy)
    self.input_size = None

  def build(self, input_shape) -> None:
    """Creates the variables for [B,h,w,3] inputs; fixes (h, w).

    Args:
      input_shape: [B,h,w,3] with static h and w.
    """
    shape = tf.TensorShape(input_shape)
    if (shape.rank != 4 or shape[1] is None or shape[2] is None
        or shape[3] != 3):
      raise ValueError(f'x: expected a static height and width ([B,h,w,3]), '
                       f'got shape {shape.as_list()}')
    self.input_size = (int(shape[1]), int(shape[2]))
    for conv in self.convs:
      conv.build(shape)
      shape = conv.compute_output_shape(shape)
    self.flatten.build(shape)
    self.score.build(self.flatten.compute_output_shape(shape))
    self.built = True

  def call(self, x: tf.Tensor, training=None) -> tf.Tensor:
    """Scores images.

    Args:
      x: [B,h,w,3] float in [-1,1]; h, w static and equal to those of the
        first call.
      training: unused (no dropout or normalisation).

    Returns:
      [B,1] float32 linear scores.
    """
    del training
    ops.check_tensor('x', x, 4, '[B,h,w,3] float', channels=3)
    if tuple(x.shape[1:3]) != self.input_size:
      height, width = self.input_size
      raise ValueError(
          f'x: expected [B,{height},{width},3] (the size this critic was '
          f'built for), got shape {x.shape.as_list()}')
    h = x
    for conv in self.convs:
      h = conv(h)
    return tf.cast(self.score(self.flatten(h)), self.dtype)

  def get_config(self) -> Dict[str, Any]:
    # The layer's base config (name, trainable, dtype policy); that of a
    # subclassed Model is empty.
    config = keras.layers.Layer.get_config(self)
    config.update({'filters': list(self.filters)})
    return config

  @classmethod
  def from_config(cls, config: Dict[str, Any], custom_objects=None):
    del custom_objects
    return cls(**config)


@keras.utils.register_keras_serializable('inpaint_tf')
class LocalCritic(_Critic):
  """Local critic (Table I) on ``CriticConfig.local_size`` hole crops.

  Args:
    filters: widths of the four conv5x5 stride-2 layers.
    **kwargs: Keras model arguments.
  """

  def __init__(self, filters: Sequence[int] = _CRITIC.local_filters,
               **kwargs):
    super().__init__(filters, **kwargs)


@keras.utils.register_keras_serializable('inpaint_tf')
class GlobalCritic(_Critic):
  """Global critic (Table II) on whole images.

  Args:
    filters: widths of the four conv5x5 stride-2 layers.
    **kwargs: Keras model arguments.
  """

  def __init__(self, filters: Sequence[int] = _CRITIC.global_filters,
               **kwargs):
    super().__init__(filters, **kwargs)


def hole_crop(images: tf.Tensor, mask: tf.Tensor,
              size: int = _CRITIC.local_size) -> tf.Tensor:
  """Crops each sample to its hole's bounding box, resized to size x size.

  Bilinear sampling as ``tf.image.crop_and_resize`` with boxes normalised
  by ``(H-1, W-1)``, so a bounding box of exactly ``size x size`` pixels
  gives those pixels (to float32 rounding) and the crop is differentiable in
  the images; computed by ``ops.crop_and_resize``, whose gradient is
  deterministic on GPUs. A sample with no hole is resized whole. Free-form
  masks: the box spans all hole pixels and is stretched to ``size x size``.

  Args:
    images: [B,H,W,C] float (images, or the mask itself to crop it along).
    mask: [B,H,W,1] or [1,H,W,1] float, 1 = hole.
    size: output side length (``CriticConfig.local_size`` by default).

  Returns:
    [B,size,size,C] float32.
  """
  ops.check_tensor('images', images, 4, '[B,H,W,C] float')
  ops.check_tensor('mask', mask, 4, '[B,H,W,1] or [1,H,W,1] float',
                   channels=1)
  image_hw, mask_hw = images.shape[1:3], mask.shape[1:3]
  if (image_hw.is_fully_defined() and mask_hw.is_fully_defined()
      and image_hw != mask_hw):
    raise ValueError(
        f'mask: expected [B,{images.shape[1]},{images.shape[2]},1] to match '
        f'images, got shape {mask.shape.as_list()}')
  mask = tf.cast(mask, tf.float32) * tf.ones_like(
      images[..., :1], dtype=tf.float32)
  boxes = tf.cast(ops.hole_bboxes(mask), tf.float32)
  height = tf.cast(tf.shape(images)[1], tf.float32)
  width = tf.cast(tf.shape(images)[2], tf.float32)
  scale = tf.stack([height - 1.0, width - 1.0, height - 1.0, width - 1.0])
  boxes = boxes / tf.maximum(scale, 1.0)
  return ops.crop_and_resize(tf.cast(images, tf.float32), boxes, (size, size))
