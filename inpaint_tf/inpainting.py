"""Inpainting with a trained model: load it and complete image files.

``load_model`` reads a SavedModel (``inpaint_tf.export``) or a training run
directory (``inpaint_tf.run_dir``); ``inpaint_files`` is the file-level
function behind ``tools/inpaint.py`` (``inference.inpaint`` does the work).
"""

from __future__ import annotations

import os
from typing import Optional, Union

from absl import logging
import numpy as np

from inpaint_tf import export
from inpaint_tf import fileio
from inpaint_tf import image_io
from inpaint_tf import inference
from inpaint_tf import plots
from inpaint_tf import run_dir


def load_model(saved_model_dir: Union[str, None] = None,
               checkpoint_dir: Union[str, None] = None):
  """Loads the model used by ``inpaint`` from exactly one of two sources.

  Args:
    saved_model_dir: a directory written by ``inpaint_tf.export``.
    checkpoint_dir: a training run directory (``generator.json`` + ``ckpt/``).

  Returns:
    A loaded SavedModel or an ``inpaint_tf.models.Generator``, either of which
    ``inference.inpaint`` accepts.
  """
  if (saved_model_dir is None) == (checkpoint_dir is None):
    raise ValueError('expected exactly one of --saved_model and '
                     f'--checkpoint_dir, got saved_model={saved_model_dir!r} '
                     f'and checkpoint_dir={checkpoint_dir!r}')
  if saved_model_dir is not None:
    return export.load_saved_model(saved_model_dir)
  return run_dir.load_generator(checkpoint_dir)


def inpaint_files(image_path: str, mask_path: str, output_path: str,
                  saved_model_dir: Optional[str] = None,
                  checkpoint_dir: Optional[str] = None,
                  grid_path: Optional[str] = None,
                  pad_mode: str = 'reflect') -> np.ndarray:
  """Inpaints one image file with one mask file and writes the result.

  Everything is checked before the model is loaded; outputs are written
  atomically (temporary file, then rename), so a failure leaves no partial
  file.

  Args:
    image_path: JPEG, PNG, GIF or BMP image of any size (grey is replicated
      to RGB, alpha dropped).
    mask_path: an image of the same size and any bit depth; a pixel is a
      hole when any colour channel is non-zero (``image_io.load_mask``).
    output_path: ``.png`` or ``.jpg`` file to write.
    saved_model_dir: SavedModel from ``inpaint_tf.export`` (exactly one of
      this and ``checkpoint_dir``).
    checkpoint_dir: training run directory.
    grid_path: optional ``.png``/``.jpg``: image | image with white holes |
      result, side by side.
    pad_mode: ``'reflect'`` or ``'constant'`` (checkpoints only; a
      SavedModel uses the mode it was exported with).

  Returns:
    The result, uint8 [H,W,3]. With a mask that has no hole, the input
    image, unchanged (a warning is logged; the model is not loaded).

  Raises:
    ValueError: unreadable or non-image files, sizes that differ, a bad
      output name, a checkpoint of another variant, ...; each message
      starts with the argument at fault (``image``, ``mask``, ``output``,
      ``grid``, ``saved_model``, ``checkpoint_dir``).
  """
  if (saved_model_dir is None) == (checkpoint_dir is None):
    raise ValueError('expected exactly one of saved_model_dir and '
                     'checkpoint_dir')
  if pad_mode not in inference.PAD_MODES:
    raise ValueError(f'pad_mode: expected one of {inference.PAD_MODES}, got '
                     f'{pad_mode!r}')
  for path, name in ((output_path, 'output'), (grid_path, 'grid')):
    if path is not None:  # Fails on a bad name before any work.
      fileio.check_image_output(path, name)
  image = image_io.load_image(image_path, name='image')
  mask = image_io.load_mask(mask_path, name='mask')
  if mask.shape[:2] != image.shape[:2]:
    raise ValueError(f'mask: expected a {image.shape[0]}x{image.shape[1]} '
                     f'mask (the size of {os.path.basename(image_path)}), got '
                     f'{mask.shape[0]}x{mask.shape[1]} from {mask_path!r}')
  if not np.any(mask):
    logging.warning('mask %s has no hole pixels: the output is the input '
                    'image unchanged', mask_path)
    result = image.copy()
  else:
    model = load_model(saved_model_dir, checkpoint_dir)
    result = inference.inpaint(model, image, mask, pad_mode)
  fileio.write_image(output_path, result, 'output')
  if grid_path is not None:
    fileio.write_image(grid_path, plots.side_by_side(
        [image, plots.show_holes(image, mask), result]), 'grid')
  return result
