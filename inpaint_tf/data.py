"""Input pipeline: image files -> batches of (image, mask) for inpainting.

``make_dataset`` builds a ``tf.data`` pipeline in the spirit of GMCNN's
``DataLoader`` (shepnerd/inpainting_gmcnn, ``tensorflow/data/data.py``) and
DeepFill's file-list feeding, with what a long TF2 run needs:

  paths -> [seeded shuffle] -> [repeat] -> enumerate
        -> read + check + decode (parallel)      unreadable files counted
        -> drop the unreadable
        -> [CelebA crop] -> resize or crop -> [flip] -> mask (parallel)
        -> batch -> prefetch

The cropping, augmentation and mask stage is ``data_augment``'s.

Determinism: the order is fixed by ``seed`` (seeded shuffle, deterministic
parallel maps). Every random choice made for an element (flip, crop, mask)
is drawn from a seed derived from ``(seed, n)``, where ``n`` is the
element's position in the repeated stream, so it does not depend on thread
timing, and skipping a bad file does not change the draws of the others.

Unreadable files: the bytes of every file are checked in the graph
(``image_io.image_status``: known signature, JPEG/PNG end marker) before
decoding. The check reads the first bytes and the last 64 of each file (the
whole file only when the end marker is not there), so it scales to
millions of files and stays in the parallel graph. Failures that the check
cannot predict (a corrupt body with intact ends, a file deleted mid-run)
are caught per file: each file is read and decoded in a one-element
dataset whose errors are ignored, and an empty result stands for
``image_io.STATUS_UNDECODABLE``. Either way the file is dropped, logged
once (absl warning naming the file and the reason) and counted in a
``SkipCounter`` (``summary()`` gives the line the training tool prints at
the end). A long run never stops on a file. If every file is unreadable,
iteration fails with an ``InvalidArgumentError`` whose message is
``files: expected at least one readable image, ...`` instead of looping
forever.

``data='skimage'`` (``demo_images.SKIMAGE_DATA``) trains on random crops
of the training split of the photographs bundled with scikit-image.
"""

from __future__ import annotations

import functools
import os
import threading
from typing import Callable, Dict, Optional, Sequence, Tuple, Union

from absl import logging
import numpy as np
import tensorflow as tf

from inpaint_tf import config as config_lib
from inpaint_tf import demo_images
from inpaint_tf import image_io
from inpaint_tf import mask_folder
from inpaint_tf import masks as masks_lib
from inpaint_tf import ops
from inpaint_tf.data_augment import PipelineOptions
from inpaint_tf.data_augment import prepare_stage

MaskSpec = Union[config_lib.MaskConfig, masks_lib.MaskFn]

# Files read and decoded at the same time by a pipeline.
_READ_PARALLELISM = max(2, min(16, os.cpu_count() or 2))


class SkipCounter:
  """Collects the files skipped as unreadable, warning once per file.

  Thread-safe; shared by the parallel calls of a pipeline. Pass one to
  ``make_dataset`` to read the count during or after a run.
  """

  def __init__(self):
    self._lock = threading.Lock()
    self._reasons: Dict[str, str] = {}
    self.total_files: Optional[int] = None

  @property
  def count(self) -> int:
    """Number of distinct files skipped so far."""
    with self._lock:
      return len(self._reasons)

  @property
  def skipped(self) -> Dict[str, str]:
    """Path -> reason of every distinct file skipped so far."""
    with self._lock:
      return dict(self._reasons)

  def record(self, path: str, reason: str) -> bool:
    """Counts a skipped file; logs a warning the first time it is seen.

    Returns:
      Whether every file of the pipeline has now been skipped.
    """
    with self._lock:
      new = path not in self._reasons
      self._reasons[path] = reason
      count = len(self._reasons)
    if new:
      logging.warning('Skipping unreadable image %s: %s', path, reason)
    return self.total_files is not None and count >= self.total_files

  def summary(self) -> str:
    """One line for the end of a run."""
    return f'{self.count} unreadable image file(s) skipped'


def _record_skip(counter: SkipCounter, path: tf.Tensor,
                 status: tf.Tensor) -> bool:
  return counter.record(path.numpy().decode('utf-8', 'replace'),
                        image_io.STATUS_MESSAGES[int(status.numpy())])


def make_dataset(files: Union[str, os.PathLike, Sequence[str]],
                 image_size: image_io.Size,
                 batch_size: int,
                 mask_fn_or_config: MaskSpec,
                 seed: int,
                 options: PipelineOptions = PipelineOptions(),
                 skip_counter: Optional[SkipCounter] = None) -> tf.data.Dataset:
  """Batches of images and hole masks from image files.

  Three stages: ``read_stage`` (order, reading, decoding, dropping the
  unreadable files), ``prepare_stage`` (crop or resize, augment, draw the
  mask) and ``batch_stage``. Images are decoded with ``tf.io.decode_image``
  (first frame of GIFs, grey replicated to RGB, alpha dropped), optionally
  centre-cropped to 178x178 (CelebA), then resized to ``image_size``
  (bilinear, antialiased when shrinking) or, with ``random_crop``, cropped
  at their own resolution.

  Args:
    files: list of image paths, or a folder / file list for
      ``image_io.list_images``.
    image_size: int or (height, width) of the output images.
    batch_size: images per batch. Training drops the last partial batch
      (static batch shape); evaluation keeps it.
    mask_fn_or_config: a ``MaskConfig`` (any type but 'folder') or a
      function ``rng -> float32 [H,W,1]`` such as ``masks.make_mask_fn``
      returns.
    seed: non-negative int; fixes the order and every random choice.
    options: ``PipelineOptions``.
    skip_counter: collects the unreadable files; one is created if None.

  Returns:
    ``tf.data.Dataset`` of dicts ``{'image': [B,H,W,3] float32 in [-1,1],
    'mask': [B,H,W,1] float32 in {0,1} (1 = hole)}`` (+ 'path').

  Raises:
    ValueError: bad arguments or no files.
  """
  if isinstance(files, (str, os.PathLike)):
    files = image_io.list_images(files)
  files = [os.fspath(f) for f in files]
  if not files:
    raise ValueError('files: expected at least one image path, got an empty '
                     'list')
  size = image_io.pair('image_size', image_size)
  if (not isinstance(batch_size, (int, np.integer)) or isinstance(
      batch_size, bool) or batch_size <= 0):
    raise ValueError(f'batch_size: expected a positive int, got {batch_size!r}')
  if (not isinstance(seed, (int, np.integer)) or isinstance(seed, bool)
      or seed < 0):
    raise ValueError(f'seed: expected a non-negative int, got {seed!r}')
  options.check(*size)
  mask_fn = _mask_fn(mask_fn_or_config, size)
  counter = SkipCounter() if skip_counter is None else skip_counter
  ds = read_stage(files, int(seed), options, counter)
  ds = prepare_stage(ds, size, int(seed), mask_fn, options)
  ds = batch_stage(ds, batch_size, options.training)
  deterministic = tf.data.Options()
  deterministic.deterministic = True
  return ds.with_options(deterministic)


def _mask_fn(mask_fn_or_config: MaskSpec,
             size: Tuple[int, int]) -> masks_lib.MaskFn:
  """The mask function of a ``MaskSpec``, checked on one draw."""
  if isinstance(mask_fn_or_config, config_lib.MaskConfig):
    mask_fn = masks_lib.make_mask_fn(mask_fn_or_config, *size)
  elif callable(mask_fn_or_config):
    mask_fn = mask_fn_or_config
  else:
    raise ValueError(f'mask_fn_or_config: expected a MaskConfig or a function '
                     f'rng -> mask, got {mask_fn_or_config!r}')
  probe = np.asarray(mask_fn(np.random.default_rng(0)))
  if probe.shape != (*size, 1) or probe.dtype != np.float32:
    raise ValueError(
        f'mask_fn_or_config: expected a function returning float32 '
        f'[{size[0]},{size[1]},1] masks, got shape {list(probe.shape)} dtype '
        f'{probe.dtype}')
  return mask_fn


def read_stage(files: Sequence[str], seed: int, options: PipelineOptions,
               counter: SkipCounter) -> tf.data.Dataset:
  """Paths -> readable decoded images, in a seeded order.

  Returns:
    Elements ``{'index': int64 position in the (repeated) stream, 'path',
    'status', 'image': uint8 [h,w,3]}``; unreadable files are counted in
    ``counter`` and dropped (module docstring).
  """
  counter.total_files = len(set(files))
  ds = tf.data.Dataset.from_tensor_slices(files)
  if options.training:
    ds = ds.shuffle(len(files), seed=seed, reshuffle_each_iteration=True)
  if options.repeat:
    ds = ds.repeat()
  ds = ds.enumerate()
  ds = ds.interleave(_read_or_mark, cycle_length=_READ_PARALLELISM,
                     block_length=1, num_parallel_calls=tf.data.AUTOTUNE,
                     deterministic=True)
  return ds.filter(functools.partial(_keep_readable, counter))


def _read(index, path):
  contents = tf.io.read_file(path)
  status = image_io.image_status(contents)

  def decode():
    return tf.io.decode_image(contents, channels=3, expand_animations=False)

  def skip():
    return tf.zeros([1, 1, 3], tf.uint8)

  image = tf.cond(tf.equal(status, image_io.STATUS_OK), decode, skip)
  return {'index': index, 'path': path, 'status': status, 'image': image}


def _read_or_mark(index, path):
  # A read or decoder error empties the one-element dataset; the fallback
  # element then carries the path with STATUS_UNDECODABLE.
  failed = {'index': index, 'path': path,
            'status': tf.constant(image_io.STATUS_UNDECODABLE),
            'image': tf.zeros([1, 1, 3], tf.uint8)}
  return (tf.data.Dataset.from_tensors((index, path)).map(_read)
          .ignore_errors()
          .concatenate(tf.data.Dataset.from_tensors(failed)).take(1))


def _keep_readable(counter: SkipCounter, element) -> tf.Tensor:
  """True for a readable element; records the others in ``counter``."""

  def record():
    all_skipped = tf.py_function(functools.partial(_record_skip, counter),
                                 [element['path'], element['status']],
                                 tf.bool)
    # Stops the stream once every file has been skipped.
    check = tf.debugging.assert_equal(
        all_skipped, False, message=(
            f'files: expected at least one readable image, got '
            f'{counter.total_files} unreadable files of '
            f'{counter.total_files}'))
    with tf.control_dependencies([check]):
      return tf.constant(False)

  return tf.cond(tf.equal(element['status'], image_io.STATUS_OK),
                 lambda: tf.constant(True), record)


def batch_stage(ds: tf.data.Dataset, batch_size: int,
                training: bool) -> tf.data.Dataset:
  """Batches (training drops the last partial one) and prefetches."""
  ds = ds.batch(batch_size, drop_remainder=training,
                num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
  return ds.prefetch(tf.data.AUTOTUNE)


# start -> dataset of global batches ``{'image': [B,H,W,3] float32 in
# [-1,1], 'mask': [B,H,W,1] float32, 1 = hole}`` whose first element is
# batch number ``start`` of the training stream; every batch has the global
# batch size (``drop_remainder=True``).
DatasetFn = Callable[[int], tf.data.Dataset]


def make_dataset_fn(config: config_lib.ExperimentConfig,
                    skip_counter: Optional[SkipCounter] = None) -> DatasetFn:
  """The training stream of an experiment as a ``DatasetFn``.

  Args:
    config: the experiment: ``data`` (a folder of images searched
      recursively, a text file listing image paths, or ``'skimage'``: the
      training split of scikit-image's bundled photographs as random crops
      at their own resolution) and its augmentation, ``masks`` (``mask_type
      'folder'`` reads ``mask_dir``), ``train.image_size``, ``batch_size``
      and ``seed`` (which fixes the order, crops, flips and masks).
    skip_counter: collects the unreadable image files the stream skips
      (its ``summary()`` is the line to print).

  Returns:
    ``start -> tf.data.Dataset`` of batches, from batch ``start`` on.

  Raises:
    ValueError: no images at ``data``, no masks at ``mask_dir``, options
      that do not fit together, or no readable image among the files: the
      first batch is read now, so that such data fails before a run
      directory is made.
  """
  d, m, t = config.data, config.masks, config.train
  random_crop = d.data == demo_images.SKIMAGE_DATA
  if random_crop:
    files = [path for _, path in demo_images.split_demo_images(
        demo_images.skimage_demo_files()).train]
  else:
    try:
      files = image_io.list_images(d.data)
    except ValueError as e:
      raise ops.renamed(e, 'data') from None
  mask_spec = m
  if m.mask_type == 'folder':
    if not m.mask_dir:
      raise ValueError("mask_dir: expected a folder of masks for mask_type "
                       "'folder', got none")
    folder = mask_folder.MaskFolder(m.mask_dir, argument='mask_dir')
    mask_spec = masks_lib.make_mask_fn(m, t.image_size, t.image_size, folder)
  elif m.mask_dir:
    raise ValueError(f"mask_dir: only used with mask_type 'folder', got "
                     f'mask_type {m.mask_type!r}')

  def dataset_fn(start: int) -> tf.data.Dataset:
    dataset = make_dataset(
        files, t.image_size, t.batch_size, mask_spec, t.seed, PipelineOptions(
            celeba_crop=d.celeba_crop, random_crop=random_crop,
            min_crop_scale=d.min_crop_scale, rotate90=d.rotate90),
        skip_counter=skip_counter)
    # The stream is a deterministic function of the seed: skipping replays
    # the reading of the skipped batches, not their training.
    return dataset.skip(start) if start else dataset

  # Bad options (hole larger than the image...) fail when it is built,
  # unreadable data at its first batch.
  first = iter(dataset_fn(0).take(1))
  try:
    next(first)
    error = None
  except tf.errors.OpError as err:
    error = ops.op_error_text(err)
  # The iterator's threads must stop before the process may exit.
  del first
  if error is not None:
    raise ValueError(f'data: expected readable images, got {d.data!r} '
                     f'({error})')
  return dataset_fn
