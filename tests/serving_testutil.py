"""Shared fixtures of the export, inference and tool tests.

A tiny trained-looking run directory (``generator.json`` + ``ckpt/``, as
``inpaint_tf.training`` writes it) and small test images.
"""

import os

import numpy as np
import tensorflow as tf

from inpaint_tf import completion
from inpaint_tf import fileio
from inpaint_tf import inpainter
from inpaint_tf import models
from inpaint_tf import run_dir
from inpaint_tf.keras_api import keras

TINY = dict(variant='snet', cnum=4)


def inpaint(model, image, mask, pad_mode: str = 'reflect', **options):
  """``Inpainter.from_generator(model, options)(image, mask)``."""
  options = completion.CompletionOptions(pad_mode=pad_mode, **options)
  return inpainter.Inpainter.from_generator(model, options)(image, mask)


def make_generator(seed: int = 0, **kwargs) -> models.Generator:
  """A small built generator (``TINY`` unless overridden)."""
  keras.utils.set_random_seed(seed)
  gen = models.build_generator(**{**TINY, **kwargs})
  gen.build(32)
  return gen


def make_run_dir(path: str, gen: models.Generator) -> str:
  """Writes ``gen`` as a run directory; returns ``path``."""
  run_dir.save_generator_config(gen, path)
  manager = tf.train.CheckpointManager(
      tf.train.Checkpoint(generator=gen), os.path.join(path, 'ckpt'), 1)
  manager.save()
  return path


def random_image(height: int, width: int, seed: int = 0) -> np.ndarray:
  """A smooth-ish uint8 [H,W,3] image (gradients plus noise)."""
  rng = np.random.default_rng(seed)
  y, x = np.mgrid[0:height, 0:width]
  base = np.stack([x * 255. / max(width - 1, 1), y * 255. / max(height - 1, 1),
                   (x + y) * 127. / max(height + width - 2, 1)], -1)
  noise = rng.normal(0., 20., base.shape)
  return np.clip(base + noise, 0, 255).astype(np.uint8)


def box_mask(height: int, width: int, top: int, left: int, h: int,
             w: int) -> np.ndarray:
  """uint8 [H,W,1] with 255 inside the box (hole), 0 elsewhere."""
  mask = np.zeros((height, width, 1), np.uint8)
  mask[top:top + h, left:left + w] = 255
  return mask


def write_png(path: str, image: np.ndarray) -> str:
  fileio.write_image(path, image)
  return path
