"""Shared pieces of the training tests: synthetic images and tiny configs."""

import dataclasses
import os
import shutil
import tempfile

import cv2
import numpy as np
import tensorflow as tf

from inpaint_tf import config as config_lib
from inpaint_tf import data as data_lib

IMAGE_SIZE = 32
# Square 16x16 holes (shrunk by up to 2 pixels a side) in 32x32 images.
MASK_CONFIG = dataclasses.replace(config_lib.MaskConfig(), hole_size=16,
                                  max_delta=4)


def write_images(folder, count=6, height=40, width=48, seed=0):
  """Writes ``count`` smooth random-colour PNGs into ``folder``."""
  os.makedirs(folder, exist_ok=True)
  rng = np.random.default_rng(seed)
  y, x = np.mgrid[0:height, 0:width] / float(height)
  for i in range(count):
    freq = rng.uniform(1.0, 6.0, size=3)
    phase = rng.uniform(0.0, 6.0, size=3)
    image = np.stack([np.sin(x * freq[0] + phase[0]),
                      np.cos(y * freq[1] + phase[1]),
                      np.sin((x + y) * freq[2] + phase[2])], axis=-1)
    image = (image * 0.4 + 0.5) * 255 + rng.normal(0.0, 8.0, image.shape)
    assert cv2.imwrite(os.path.join(folder, f'image_{i}.png'),
                       image.clip(0, 255).astype(np.uint8))
  return folder


def tiny_config(variant='gepenet', batch_size=2, seed=0, **fields):
  """An ExperimentConfig of a 32x32 model small enough for tests.

  ``fields`` replace any setting by its name (``ExperimentConfig.replace``).
  """
  config = config_lib.ExperimentConfig().replace(
      variant=variant, cnum=4, local_size=16, local_filters=(4, 8, 8, 8),
      global_filters=(4, 8, 8, 8), svw_size=8, image_size=IMAGE_SIZE,
      batch_size=batch_size, seed=seed, log_every=1, image_every=100,
      checkpoint_every=100, hole_size=MASK_CONFIG.hole_size,
      max_delta=MASK_CONFIG.max_delta)
  return config.replace(**fields)


def checkpoint_values(ckpt_dir):
  """Name -> value of every variable of the latest checkpoint in ``ckpt_dir``.

  The save counter (it counts saves, not training) is left out.
  """
  reader = tf.train.load_checkpoint(ckpt_dir)
  return {name: reader.get_tensor(name)
          for name in reader.get_variable_to_shape_map()
          if 'save_counter' not in name and '_CHECKPOINTABLE' not in name}


class TrainingTestCase(tf.test.TestCase):
  """A class-wide temporary folder of images and a batch-2 ``DatasetFn``."""

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    cls.root = tempfile.mkdtemp()
    cls.addClassCleanup(shutil.rmtree, cls.root, ignore_errors=True)
    cls.images = write_images(os.path.join(cls.root, 'images'))
    cls.dataset_fn = staticmethod(data_lib.make_dataset_fn(
        tiny_config(data=cls.images)))
