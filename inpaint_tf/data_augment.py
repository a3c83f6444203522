"""The input pipeline's per-image stage: crop or resize, augment, draw a mask.

``prepare_stage`` turns each decoded image of ``data.read_stage`` into an
``image_size`` float image in [-1, 1] and its hole mask, as
``PipelineOptions`` selects: an optional CelebA centre crop, then a resize
of the whole image or a crop at its own resolution, then random flips and
rotations while training. ``data`` describes the whole pipeline and how its
random choices are seeded.
"""

from __future__ import annotations

import dataclasses
from typing import Tuple

import numpy as np
import tensorflow as tf

from inpaint_tf import masks as masks_lib

# Side of the centre crop applied to CelebA's aligned 178x218 images.
CELEBA_CROP = 178


@dataclasses.dataclass(frozen=True)
class PipelineOptions:
  """How ``data.make_dataset`` reads and augments its images.

  Attributes:
    training: shuffle, and apply ``flip``, ``random_crop`` and ``rotate90``
      at random. Evaluation keeps the file order and uses centre crops.
    repeat: repeat forever (reshuffled every epoch).
    celeba_crop: centre crop 178x178 (CelebA aligned faces) before resizing.
    flip: random horizontal flips (training only).
    random_crop: instead of resizing the whole image, take a random
      ``image_size`` window at the image's own resolution (images smaller
      than ``image_size`` are first scaled up, keeping their aspect ratio);
      a centre window when not training. Useful on few large images.
    min_crop_scale: with ``random_crop`` while training, the image is first
      scaled by a factor drawn uniformly from ``[min_crop_scale, 1]`` (at
      least enough to cover ``image_size``), so crops show the content at
      several scales; 1 keeps the image's own resolution.
    rotate90: rotate training images by a random multiple of 90 degrees
      (square ``image_size`` only); with ``flip`` this gives all eight
      symmetries of the square.
    include_path: add 'path' ([B] tf.string) to each batch.
  """
  training: bool = True
  repeat: bool = True
  celeba_crop: bool = False
  flip: bool = True
  random_crop: bool = False
  min_crop_scale: float = 1.0
  rotate90: bool = False
  include_path: bool = False

  def check(self, height: int, width: int) -> None:
    """Raises ValueError for options that do not fit the image size."""
    if not 0.0 < self.min_crop_scale <= 1.0:
      raise ValueError(f'min_crop_scale: expected a value in (0, 1], got '
                       f'{self.min_crop_scale!r}')
    if self.rotate90 and height != width:
      raise ValueError(f'rotate90: expected a square image_size, got '
                       f'{height}x{width}')


def prepare_stage(ds: tf.data.Dataset, size: Tuple[int, int], seed: int,
                  mask_fn: masks_lib.MaskFn,
                  options: PipelineOptions) -> tf.data.Dataset:
  """Read elements -> ``{'image', 'mask'}`` (+ 'path'), in parallel.

  Every random choice of an element is drawn from ``(seed, index)``.
  """

  def draw_mask(element_seed):
    rng = np.random.default_rng([seed, int(element_seed)])
    return np.asarray(mask_fn(rng), np.float32)

  def prepare(element):
    base = tf.stack([tf.constant(seed, tf.int64), element['index']])
    image = _augment(tf.cast(element['image'], tf.float32), base, size,
                     options)
    mask = tf.numpy_function(draw_mask, [element['index']], tf.float32,
                             stateful=False)
    out = {'image': image, 'mask': tf.ensure_shape(mask, [*size, 1])}
    if options.include_path:
      out['path'] = element['path']
    return out

  return ds.map(prepare, num_parallel_calls=tf.data.AUTOTUNE,
                deterministic=True)


def _augment(image: tf.Tensor, base: tf.Tensor, size: Tuple[int, int],
             options: PipelineOptions) -> tf.Tensor:
  """A float [h,w,3] image in [0,255] -> [H,W,3] in [-1,1], augmented.

  ``base`` is the element's [2] int64 seed; each random choice folds in
  its own constant (1 crop, 2 flip, 3 scale, 4 rotation).
  """
  height, width = size
  training = options.training
  if options.celeba_crop:
    image = tf.image.resize_with_crop_or_pad(image, CELEBA_CROP, CELEBA_CROP)
  if options.random_crop:
    if training and options.min_crop_scale < 1.0:
      scale_seed = tf.random.experimental.stateless_fold_in(base, 3)
      scale = tf.random.stateless_uniform([], scale_seed,
                                          options.min_crop_scale, 1.0)
      shape = tf.cast(tf.shape(image)[:2], tf.float32)
      new = tf.cast(tf.math.round(shape * scale), tf.int32)
      image = tf.image.resize(image, new, 'bilinear', antialias=True)
    image = _cover(image, size)
    if training:
      crop_seed = tf.random.experimental.stateless_fold_in(base, 1)
      image = tf.image.stateless_random_crop(image, [height, width, 3],
                                             crop_seed)
    else:
      image = tf.image.resize_with_crop_or_pad(image, height, width)
  else:
    image = tf.image.resize(image, size, 'bilinear', antialias=True)
  image = tf.clip_by_value(image, 0., 255.) / 127.5 - 1.
  if training and options.flip:
    flip_seed = tf.random.experimental.stateless_fold_in(base, 2)
    image = tf.image.stateless_random_flip_left_right(image, flip_seed)
  if training and options.rotate90:
    turns = tf.random.stateless_uniform(
        [], tf.random.experimental.stateless_fold_in(base, 4), 0, 4,
        dtype=tf.int32)
    image = tf.image.rot90(image, turns)
  return tf.ensure_shape(image, [height, width, 3])


def _cover(image: tf.Tensor, size: Tuple[int, int]) -> tf.Tensor:
  """Scales a float [h,w,3] image up, keeping its aspect, to cover ``size``."""
  shape = tf.cast(tf.shape(image)[:2], tf.float32)
  scale = tf.reduce_max(tf.constant(size, tf.float32) / shape)
  new = tf.cast(tf.math.ceil(shape * scale), tf.int32)
  new = tf.maximum(new, tf.constant(size, tf.int32))
  return tf.cond(scale > 1.,
                 lambda: tf.image.resize(image, new, 'bilinear'),
                 lambda: image)
