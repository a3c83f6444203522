"""One callable for a trained model, and inpainting of files and folders.

``load_inpainter`` reads a SavedModel (``inpaint_tf.export``) or a training
run directory (``inpaint_tf.run_dir``) and returns an ``Inpainter``:
``inpainter(image_uint8, mask) -> uint8``, whatever the source, with the
padding and HD strategy of ``completion.CompletionOptions``. ``Inpainter``
also wraps a generator in memory (``Inpainter.from_generator``).
``inpaint_file`` and ``inpaint_folder`` are the file-level functions behind
``tools/inpaint.py``.
"""

from __future__ import annotations

import dataclasses
import os
import time
from typing import Callable, Dict, List, Optional, Tuple

from absl import logging
import numpy as np
import tensorflow as tf

from inpaint_tf import completion
from inpaint_tf import export
from inpaint_tf import fileio
from inpaint_tf import image_io
from inpaint_tf import plots
from inpaint_tf import run_dir
from inpaint_tf.keras_api import keras
from inpaint_tf.progress import ProgressBar

# Peak memory of the 'original' strategy per padded pixel and unit of the
# generator width cnum, measured on the exported cnum=32 GEPE-Net at
# 2048x2048 (tools/benchmark.py --sections=inference; BUILD.md).
ORIGINAL_BYTES_PER_PIXEL_CNUM = 45.
# Memory that TensorFlow and the model need besides (measured at 256x256).
BASE_BYTES = 0.8e9

# uint8 images [N,H,W,3], holes [N,H,W,1] uint8, options -> uint8 images.
CompleteFn = Callable[[tf.Tensor, tf.Tensor, completion.CompletionOptions],
                      tf.Tensor]


def _available_memory() -> Optional[float]:
  """Bytes the system can still give (MemAvailable), None if unknown."""
  try:
    with open('/proc/meminfo') as f:
      for line in f:
        if line.startswith('MemAvailable:'):
          return float(line.split()[1]) * 1024.
  except OSError:
    pass
  return None


def original_bytes(height: int, width: int, cnum: int) -> float:
  """Estimated peak memory of the 'original' strategy on an image."""
  padded = (-(-height // 16) * 16) * (-(-width // 16) * 16)
  return BASE_BYTES + ORIGINAL_BYTES_PER_PIXEL_CNUM * cnum * padded


class Inpainter:
  """Fills the holes of 8-bit images with a trained model.

  Args:
    complete_fn: ``(image, hole, options) -> inpainted``, see
      ``CompleteFn``.
    options: the default ``completion.CompletionOptions``.
    generator_config: the generator's ``get_config()`` if known (its
      ``cnum`` sizes the memory estimate; ``variant`` names the model).
  """

  def __init__(self, complete_fn: CompleteFn,
               options: completion.CompletionOptions,
               generator_config: Optional[Dict] = None):
    self._complete_fn = complete_fn
    self.options = options
    config = generator_config or {}
    self.cnum = config.get('cnum')
    self.variant = config.get('variant')

  @classmethod
  def from_generator(cls, generator,
                     options: Optional[completion.CompletionOptions] = None
                     ) -> 'Inpainter':
    """Wraps a Keras generator or a callable ``fn(masked, mask) -> pred``.

    Args:
      generator: an ``inpaint_tf.models.Generator`` (traced once, any
        size), or a callable on float32 ``masked`` [N,H,W,3] in [-1,1] and
        ``mask`` [N,H,W,1] {0,1} returning [N,H,W,3] in [-1,1] (run
        eagerly).
      options: default ``CompletionOptions``.
    """
    options = options or completion.CompletionOptions()
    if isinstance(generator, keras.Model):
      generator_fn = lambda masked, m: generator((masked, m), training=False)
      traced = tf.function(
          lambda image, hole, strategy, margin, limit, pad_mode:
          completion.complete_hd(generator_fn, image, hole, strategy, margin,
                                 limit, pad_mode),
          reduce_retracing=True)
      complete = lambda image, hole, o: traced(
          image, hole, tf.constant(o.hd_strategy),
          tf.constant(o.hd_crop_margin), tf.constant(o.hd_resize_limit),
          o.pad_mode)
      return cls(complete, options, generator.get_config())
    if not callable(generator):
      raise ValueError('generator: expected a Keras generator or a callable '
                       f'(masked, mask) -> pred, got '
                       f'{type(generator).__name__}')
    return cls(lambda image, hole, o: completion.complete_hd(
        generator, image, hole, o.hd_strategy, o.hd_crop_margin,
        o.hd_resize_limit, o.pad_mode), options)

  def _check_memory(self, shape: Tuple[int, ...],
                    options: completion.CompletionOptions) -> None:
    if options.hd_strategy != 'original' or self.cnum is None:
      return
    needed = original_bytes(shape[1], shape[2], self.cnum) * shape[0]
    available = _available_memory()
    if available is not None and needed > available:
      raise ValueError(_too_large(shape, needed, available))

  def __call__(self, image_uint8, mask,
               options: Optional[completion.CompletionOptions] = None
               ) -> np.ndarray:
    """Fills the holes of 8-bit images of any size.

    Args:
      image_uint8: [H,W,3] or [N,H,W,3] uint8 in [0,255].
      mask: [H,W], [H,W,1] or [N,H,W,1] (or [1,H,W,1] for a batch) of any
        numeric or bool dtype; non-zero = hole.
      options: ``CompletionOptions`` for this call (default: the
        inpainter's).

    Returns:
      uint8 array shaped like ``image_uint8``: generated pixels in the
      hole, the input pixels (bit for bit) elsewhere. Without a hole the
      input comes back (a copy) and the model is not run.

    Raises:
      ValueError: a wrong shape or dtype, a mask of another size, or an
        image that the 'original' strategy could not fit in memory.
    """
    options = options or self.options
    image, single = image_io.as_batch('image', image_uint8, 3)
    if image.dtype != np.uint8:
      raise ValueError(f'image: expected uint8 in [0,255], got {image.dtype}')
    m, _ = image_io.as_batch('mask', mask, 1)
    if m.shape[1:3] != image.shape[1:3] or m.shape[0] not in (
        1, image.shape[0]):
      raise ValueError(f'mask: expected [{image.shape[1]},{image.shape[2]}] '
                       f'matching the image (N={image.shape[0]} or 1), got '
                       f'shape {list(np.shape(mask))}')
    hole = np.broadcast_to(m != 0, image.shape[:3] + (1,))
    if not hole.any():
      return np.array(image_uint8, copy=True)
    self._check_memory(image.shape, options)
    try:
      out = self._complete_fn(tf.constant(image),
                              tf.constant(hole.astype(np.uint8)), options)
    except tf.errors.ResourceExhaustedError:
      raise ValueError(_too_large(image.shape, None, None)) from None
    out = out.numpy()
    return out[0] if single else out


def _too_large(shape, needed, available) -> str:
  size = f'{shape[2]}x{shape[1]}'
  if needed is None:
    amount = 'more memory than there is'
  else:
    amount = (f'about {needed / 1e9:.1f} GB, more than the '
              f'{available / 1e9:.1f} GB available')
  return (f"hd_strategy: with 'original' the {size} image needs {amount}; "
          'use --hd_strategy=crop or --hd_strategy=resize')


def _saved_model_complete(loaded, pad_mode: str) -> CompleteFn:
  """The ``serving_hd`` signature as a ``CompleteFn``."""
  serve = loaded.signatures.get(export.SERVING_HD)
  if serve is None:
    raise ValueError(f'saved_model: expected the {export.SERVING_HD!r} '
                     f'signature (export again with tools.export), got only '
                     f'{sorted(loaded.signatures.keys())}')

  def complete(image, hole, options):
    if options.pad_mode != pad_mode:
      logging.log_first_n(
          logging.WARNING, 'pad_mode: the SavedModel pads with %r (chosen at '
          'export); %r is ignored', 1, pad_mode, options.pad_mode)
    return serve(image=image, mask=hole,
                 hd_strategy=tf.constant(options.hd_strategy),
                 hd_crop_margin=tf.constant(options.hd_crop_margin),
                 hd_resize_limit=tf.constant(options.hd_resize_limit)
                 )[export.OUTPUT]

  return complete


def load_inpainter(saved_model: Optional[str] = None,
                   checkpoint_dir: Optional[str] = None,
                   options: Optional[completion.CompletionOptions] = None
                   ) -> Inpainter:
  """Loads a model from exactly one of two sources.

  Args:
    saved_model: a directory written by ``inpaint_tf.export``; it pads
      with the mode chosen at export, and its default options are the
      export's.
    checkpoint_dir: a training run directory (``generator.json`` +
      ``ckpt/``).
    options: default ``CompletionOptions`` (default: the SavedModel's, or
      the library's).

  Returns:
    An ``Inpainter``.

  Raises:
    ValueError: not exactly one source, or a source that cannot be loaded
      (the message starts with ``saved_model`` or ``checkpoint_dir``).
  """
  if (saved_model is None) == (checkpoint_dir is None):
    raise ValueError('expected exactly one of --saved_model and '
                     f'--checkpoint_dir, got saved_model={saved_model!r} '
                     f'and checkpoint_dir={checkpoint_dir!r}')
  if checkpoint_dir is not None:
    return Inpainter.from_generator(run_dir.load_generator(checkpoint_dir),
                                    options)
  loaded = export.load_saved_model(saved_model)
  config = export.read_export_config(saved_model)
  exported = config['options']
  if options is None:
    options = completion.CompletionOptions(**exported)
  return Inpainter(_saved_model_complete(loaded, exported['pad_mode']),
                   options, config['generator'])


@dataclasses.dataclass
class FolderReport:
  """What ``inpaint_folder`` did: files written and pairs skipped."""
  written: List[str]
  skipped: Dict[str, str]


class SizeMismatchError(ValueError):
  """A mask that is not the size of its image."""


def _read_pair(image_path: str, mask_path: str):
  image = image_io.load_image(image_path, name='image')
  mask = image_io.load_mask(mask_path, name='mask')
  if mask.shape[:2] != image.shape[:2]:
    raise SizeMismatchError(
        f'mask: expected a {image.shape[0]}x{image.shape[1]} mask (the size '
        f'of {os.path.basename(image_path)}), got {mask.shape[0]}x'
        f'{mask.shape[1]} from {mask_path!r}')
  return image, mask


def inpaint_file(load: Callable[[], Inpainter], image_path: str,
                 mask_path: str, output_path: str,
                 grid_path: Optional[str] = None) -> np.ndarray:
  """Inpaints one image file with one mask file and writes the result.

  Everything is checked before the model is loaded; outputs are written
  atomically (temporary file, then rename), so a failure leaves no partial
  file.

  Args:
    load: returns the ``Inpainter`` (called only when there is a hole).
    image_path: JPEG, PNG, GIF or BMP image of any size (grey is replicated
      to RGB, alpha dropped).
    mask_path: an image of the same size and any bit depth; a pixel is a
      hole when any colour channel is non-zero (``image_io.load_mask``).
    output_path: ``.png`` or ``.jpg`` file to write.
    grid_path: optional ``.png``/``.jpg``: image | image with white holes |
      result, side by side.

  Returns:
    The result, uint8 [H,W,3]. With a mask that has no hole, the input
    image, unchanged (a warning is logged; the model is not loaded).

  Raises:
    ValueError: unreadable or non-image files, sizes that differ, a bad
      output name, ...; each message starts with the argument at fault
      (``image``, ``mask``, ``output``, ``grid``, ``saved_model``,
      ``checkpoint_dir``).
  """
  for path, name in ((output_path, 'output'), (grid_path, 'grid')):
    if path is not None:  # Fails on a bad name before any work.
      fileio.check_image_output(path, name)
  image, mask = _read_pair(image_path, mask_path)
  if not np.any(mask):
    logging.warning('mask %s has no hole pixels: the output is the input '
                    'image unchanged', mask_path)
    result = image.copy()
  else:
    result = load()(image, mask)
  fileio.write_image(output_path, result, 'output')
  if grid_path is not None:
    fileio.write_image(grid_path, plots.side_by_side(
        [image, plots.show_holes(image, mask), result]), 'grid')
  return result


def folder_pairs(image_dir: str, mask_dir: str) -> List[Tuple[str, str, str]]:
  """Images and masks whose file names match, extension aside.

  Returns:
    Sorted ``(name, image path, mask path)``; an image without a mask is
    left out with a warning.

  Raises:
    ValueError: a folder is missing or no pair matches (naming
      ``image_dir`` or ``mask_dir``).
  """
  for name, path in (('image_dir', image_dir), ('mask_dir', mask_dir)):
    if not tf.io.gfile.isdir(path):
      raise ValueError(f'{name}: expected a folder of images, got {path!r}')

  def by_stem(name, folder):
    try:
      files = image_io.list_images(folder)
    except ValueError as e:
      raise ValueError(f'{name}: {str(e).split(": ", 1)[-1]}') from None
    return {os.path.splitext(os.path.basename(p))[0]: p for p in files}

  images, masks = by_stem('image_dir', image_dir), by_stem('mask_dir',
                                                           mask_dir)
  pairs = [(stem, images[stem], masks[stem])
           for stem in sorted(images) if stem in masks]
  for stem in sorted(set(images) - set(masks)):
    logging.warning('%s: no mask named %s.* in %s; skipped', images[stem],
                    stem, mask_dir)
  if not pairs:
    raise ValueError(f'mask_dir: expected masks named like the images of '
                     f'{image_dir!r}, found none in {mask_dir!r}')
  return pairs


def _check_folder_pairs(pairs) -> Dict[str, str]:
  """Reads every pair once, before anything is written.

  Returns:
    ``{name: reason}`` of the unreadable pairs (a warning each).

  Raises:
    ValueError: a readable pair whose mask is not the size of its image.
  """
  unreadable = {}
  for name, image_path, mask_path in pairs:
    try:
      _read_pair(image_path, mask_path)
    except SizeMismatchError as e:
      raise ValueError(f'mask_dir: {str(e).split(": ", 1)[1]}') from None
    except ValueError as e:
      unreadable[name] = str(e)
      logging.warning('%s: skipped (%s)', image_path, e)
  return unreadable


def inpaint_folder(load: Callable[[], Inpainter], image_dir: str,
                   mask_dir: str, output_dir: str,
                   progress_stream=None) -> FolderReport:
  """Inpaints every image of a folder with the mask of the same name.

  Every pair is read first: a mask of another size than its image stops
  everything before the model is loaded or a file is written; an
  unreadable image or mask is skipped with one warning. Results are
  written atomically as ``<output_dir>/<name>.png``, with a progress bar.

  Args:
    load: returns the ``Inpainter`` (called once, after the checks).
    image_dir: folder of images (searched recursively).
    mask_dir: folder of masks named like the images (any extension).
    output_dir: folder for the results (created if needed).
    progress_stream: text stream of the progress bar (default stderr).

  Returns:
    A ``FolderReport``.

  Raises:
    ValueError: a missing folder, no pair, a size mismatch, or an
      ``output_dir`` that is a file (the message names the argument).
  """
  if tf.io.gfile.exists(output_dir) and not tf.io.gfile.isdir(output_dir):
    raise ValueError(f'output_dir: expected a folder, got the file '
                     f'{output_dir!r}')
  pairs = folder_pairs(image_dir, mask_dir)
  skipped = _check_folder_pairs(pairs)
  pairs = [p for p in pairs if p[0] not in skipped]
  inpainter = load()
  tf.io.gfile.makedirs(output_dir)
  bar = ProgressBar(len(pairs), progress_stream, every=1)
  written, start = [], time.perf_counter()
  for done, (name, image_path, mask_path) in enumerate(pairs, 1):
    try:
      image, mask = _read_pair(image_path, mask_path)
    except ValueError as e:  # Changed since it was checked.
      skipped[name] = str(e)
      logging.warning('%s: skipped (%s)', image_path, e)
      continue
    result = inpainter(image, mask) if mask.any() else image
    path = os.path.join(output_dir, name + '.png')
    fileio.write_image(path, result, 'output_dir')
    written.append(path)
    elapsed = time.perf_counter() - start
    bar.update(done, {}, done / elapsed,
               elapsed / done * (len(pairs) - done))
  bar.close()
  return FolderReport(written, skipped)
