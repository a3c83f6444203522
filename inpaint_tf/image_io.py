"""Finding, checking and decoding image and mask files.

Everything here decodes with ``tf.io.decode_image`` so that tools see the
same pixels as the ``tf.data`` training pipeline (``inpaint_tf.data``).
Paths go through ``tf.io.gfile``, so local folders and any file system that
TensorFlow can read (``gs://`` etc.) both work.

``image_status`` is an in-graph, per-file check run before decoding: it
recognises JPEG, PNG, GIF and BMP by their signature and detects truncated
JPEG and PNG files by their missing end marker. These are the common
failures that make ``tf.io.decode_image`` raise (and would stop a
``tf.data`` iterator); the pipeline skips such files instead of decoding
them. TensorFlow 2.15 has no
WebP decoder, so ``.webp`` files are not listed.
"""

from __future__ import annotations

import os
from typing import List, Optional, Sequence, Tuple, Union

from absl import logging
import cv2
import numpy as np
import tensorflow as tf

# Extensions (lower case) of the formats tf.io.decode_image reads.
IMAGE_EXTENSIONS = ('.bmp', '.gif', '.jpeg', '.jpg', '.png')

# image_status codes.
STATUS_OK = 0
STATUS_UNKNOWN_FORMAT = 1
STATUS_TRUNCATED = 2
# Set by the input pipeline, not by ``image_status``: reading or decoding
# failed although the signature and end marker looked right.
STATUS_UNDECODABLE = 3
STATUS_MESSAGES = {
    STATUS_OK: 'ok',
    STATUS_UNKNOWN_FORMAT: 'not a JPEG, PNG, GIF or BMP image',
    STATUS_TRUNCATED: 'truncated image (no end marker)',
    STATUS_UNDECODABLE: 'unreadable or corrupt image data (the read or the '
                        'decoder failed)',
}

_JPEG_START = b'\xff\xd8\xff'
_JPEG_END = b'\xff\xd9'
_PNG_START = b'\x89PNG\r\n\x1a\n'
# The IEND chunk type and its (constant) CRC.
_PNG_END = b'IEND\xaeB`\x82'
_GIF_STARTS = (b'GIF87a', b'GIF89a')
_BMP_START = b'BM'
# Bytes at the end of a file searched for the end marker (writers may pad).
_TAIL_BYTES = 64

PathLike = Union[str, os.PathLike]
Size = Union[int, Sequence[int]]


def _is_remote(path: str) -> bool:
  return '://' in path


def _has_image_extension(name: str) -> bool:
  return os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS


def list_images(path_or_filelist: PathLike,
                check_exists: bool = True) -> List[str]:
  """Lists the image files of a folder (recursively) or of a text file list.

  A folder is walked recursively; files whose extension (any case) is one of
  ``IMAGE_EXTENSIONS`` are kept, hidden files and folders (names starting
  with '.', such as macOS ``._*`` resource forks) are not. A regular file is
  read as a list of paths, one per line; blank lines and lines starting with
  '#' are ignored and relative paths are taken relative to the list's
  folder. Listed files that do not exist are dropped with one warning each
  (when ``check_exists``; pass False for remote file systems where one
  request per file is slow: the pipeline skips unreadable files anyway).

  Args:
    path_or_filelist: folder or text file.
    check_exists: drop listed files that do not exist.

  Returns:
    Sorted (folder) or listed (file list) paths.

  Raises:
    ValueError: the path does not exist or yields no image.
  """
  path = os.fspath(path_or_filelist)
  if not tf.io.gfile.exists(path):
    raise ValueError(f'path_or_filelist: expected an existing folder or file '
                     f'list, got {path!r} (not found)')
  if tf.io.gfile.isdir(path):
    files = []
    for root, dirs, names in tf.io.gfile.walk(path):
      dirs[:] = [d for d in dirs if not d.startswith('.')]  # Prunes the walk.
      files.extend(os.path.join(root, n) for n in names
                   if not n.startswith('.') and _has_image_extension(n))
    files.sort()
    kind = 'folder'
  else:
    with tf.io.gfile.GFile(path, 'r') as f:
      lines = [line.strip() for line in f.read().splitlines()]
    base = os.path.dirname(path)
    files = []
    missing = 0
    for line in lines:
      if not line or line.startswith('#'):
        continue
      file = line if (os.path.isabs(line) or _is_remote(line)) else (
          os.path.join(base, line))
      if check_exists and not tf.io.gfile.exists(file):
        logging.warning('Skipping %s listed in %s: file not found', file, path)
        missing += 1
        continue
      files.append(file)
    if missing:
      logging.warning('%d of the files listed in %s do not exist', missing,
                      path)
    kind = 'file list'
  if not files:
    raise ValueError(
        f'path_or_filelist: expected a {kind} with at least one image '
        f'({"/".join(IMAGE_EXTENSIONS)}), got {path!r} with none')
  return files


def _starts_with(contents: tf.Tensor, prefix: bytes) -> tf.Tensor:
  return tf.equal(tf.strings.substr(contents, 0, len(prefix)), prefix)


def _contains(data: tf.Tensor, marker: bytes) -> tf.Tensor:
  """Whether the uint8 vector ``data`` contains ``marker`` as a substring."""
  positions = tf.maximum(tf.size(data) - len(marker) + 1, 0)
  found = tf.ones([positions], tf.bool)
  for offset, byte in enumerate(marker):
    found &= tf.equal(data[offset:offset + positions], byte)
  return tf.reduce_any(found)


def image_status(contents: tf.Tensor) -> tf.Tensor:
  """Cheap check of encoded image bytes, usable inside ``tf.data`` maps.

  Args:
    contents: scalar tf.string, the bytes of a file.

  Returns:
    Scalar int32: ``STATUS_OK`` if ``tf.io.decode_image`` can be expected to
    decode the bytes, ``STATUS_UNKNOWN_FORMAT`` if they do not start with a
    JPEG, PNG, GIF or BMP signature, ``STATUS_TRUNCATED`` for JPEG and PNG
    data without their end marker (what a cut-off download looks like).
    The end marker is looked for in the last 64 bytes first; only files
    without it there are searched whole.
  """
  contents = tf.convert_to_tensor(contents, tf.string)
  is_jpeg = _starts_with(contents, _JPEG_START)
  is_png = _starts_with(contents, _PNG_START)
  is_gif = tf.logical_or(_starts_with(contents, _GIF_STARTS[0]),
                         _starts_with(contents, _GIF_STARTS[1]))
  is_bmp = _starts_with(contents, _BMP_START)
  known = is_jpeg | is_png | is_gif | is_bmp
  length = tf.strings.length(contents)
  tail = tf.strings.substr(contents, tf.maximum(length - _TAIL_BYTES, 0),
                           _TAIL_BYTES)
  tail = tf.io.decode_raw(tail, tf.uint8)

  def has_end(marker):
    # Usually at the very end; otherwise (data appended after the image, as
    # in camera "motion photos") anywhere in the file. A JPEG's marker can
    # also be an embedded thumbnail's: such files go on to the decoder.
    return tf.cond(
        _contains(tail, marker), lambda: tf.constant(True),
        lambda: _contains(tf.io.decode_raw(contents, tf.uint8), marker))

  complete = tf.case([(is_jpeg, lambda: has_end(_JPEG_END)),
                      (is_png, lambda: has_end(_PNG_END))],
                     default=lambda: tf.constant(True), exclusive=True)
  return tf.where(known, tf.where(complete, STATUS_OK, STATUS_TRUNCATED),
                  STATUS_UNKNOWN_FORMAT)


def pair(name: str, value: Size, allow_zero: bool = False) -> Tuple[int, int]:
  """Turns an int or (height, width) into a pair of positive ints.

  With ``allow_zero`` the ints may also be 0 (margins, deltas).
  """
  if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
    out = (int(value), int(value))
  else:
    try:
      out = tuple(int(v) for v in value)
    except TypeError:
      out = ()
  if len(out) != 2 or min(out) < (0 if allow_zero else 1):
    kind = 'non-negative' if allow_zero else 'positive'
    raise ValueError(f'{name}: expected a {kind} int or (height, width) '
                     f'pair, got {value!r}')
  return out


def check_image_size(height: int, width: int) -> Tuple[int, int]:
  """(height, width) as ints; ValueError naming the one that is not > 0."""
  for name, value in (('height', height), ('width', width)):
    if (not isinstance(value, (int, np.integer)) or isinstance(value, bool)
        or value <= 0):
      raise ValueError(f'{name}: expected a positive int, got {value!r}')
  return int(height), int(width)


def _read_bytes(path: str, name: str) -> bytes:
  try:
    with tf.io.gfile.GFile(path, 'rb') as f:
      return f.read()
  except tf.errors.OpError as e:
    reason = e.message.split('; ')[-1]  # Drops the path TensorFlow repeats.
    raise ValueError(f'{name}: expected a readable image file, got {path!r} '
                     f'({reason})') from None


def decode_file(path: PathLike, channels: int = 0,
                name: str = 'path') -> np.ndarray:
  """Decodes an image file with ``tf.io.decode_image`` (first frame of a GIF).

  Args:
    path: image file.
    channels: 0 (as stored), 1, 3 or 4.
    name: argument name for error messages.

  Returns:
    uint8 [H,W,C] array.

  Raises:
    ValueError: the file is missing, not an image or corrupt.
  """
  path = os.fspath(path)
  contents = _checked_bytes(path, name)
  try:
    image = tf.io.decode_image(contents, channels=channels, dtype=tf.uint8,
                               expand_animations=False)
  except tf.errors.OpError as e:
    raise _undecodable(name, path, e) from None
  return image.numpy()


def _checked_bytes(path: str, name: str) -> bytes:
  """The bytes of ``path`` after ``image_status``; ValueError naming ``name``."""
  contents = _read_bytes(path, name)
  if not contents:
    raise ValueError(f'{name}: expected a JPEG, PNG, GIF or BMP image, got '
                     f'{path!r} (an empty file)')
  status = int(image_status(tf.constant(contents)))
  if status != STATUS_OK:
    raise ValueError(f'{name}: expected a JPEG, PNG, GIF or BMP image, got '
                     f'{path!r} ({STATUS_MESSAGES[status]})')
  return contents


def _undecodable(name: str, path: str, err: tf.errors.OpError) -> ValueError:
  return ValueError(f'{name}: expected a decodable image, got {path!r} '
                    f'({err.message.strip()})')


def load_image(path: PathLike, size: Optional[Size] = None,
               name: str = 'path') -> np.ndarray:
  """Loads an RGB image (grey is replicated, alpha dropped).

  Args:
    path: JPEG, PNG, GIF or BMP file.
    size: optional (height, width) or int: bilinear resize (antialiased when
      shrinking), like the training pipeline.
    name: argument name for error messages.

  Returns:
    uint8 [H,W,3] array.

  Raises:
    ValueError: the file is missing, not an image or corrupt.
  """
  image = decode_file(path, channels=3, name=name)
  if size is not None:
    size = pair('size', size)
    if image.shape[:2] != size:
      image = tf.image.resize(image, size, 'bilinear', antialias=True)
      image = tf.cast(tf.round(tf.clip_by_value(image, 0., 255.)), tf.uint8)
      image = image.numpy()
  return image


def resize_mask_nearest(mask: np.ndarray, size: Size) -> np.ndarray:
  """Nearest-neighbour resize of a [H,W] or [H,W,1] mask (pixel centres)."""
  height, width = pair('size', size)
  squeeze = mask.ndim == 3
  plane = mask[..., 0] if squeeze else mask
  if plane.shape != (height, width):
    dtype = plane.dtype
    plane = cv2.resize(plane.astype(np.uint8), (width, height),
                       interpolation=cv2.INTER_NEAREST_EXACT).astype(dtype)
  return plane[..., None] if squeeze else plane


# A lossy (JPEG) mask's hole: colour values above this fraction of the full
# range (127 of 255 in 8 bits), so compression ringing around a hole's edge
# and the noise in the black are not holes. Lossless formats use "non-zero".
LOSSY_MASK_THRESHOLD = 0.5


def decode_hole_map(contents: tf.Tensor) -> tf.Tensor:
  """Hole map of an encoded mask image of any bit depth; usable in graphs.

  A pixel is a hole when any colour channel is non-zero (alpha ignored),
  whether the file holds 8 or 16 bits per channel: it is decoded as uint16,
  so a 16-bit value of 1 stays a hole. JPEG data (lossy) is thresholded at
  ``LOSSY_MASK_THRESHOLD`` of the range instead.

  Args:
    contents: scalar tf.string, an encoded PNG, JPEG, GIF or BMP (grey,
      grey + alpha, RGB or RGBA).

  Returns:
    [H,W,1] tf.bool, True = hole.
  """
  contents = tf.convert_to_tensor(contents, tf.string)
  image = tf.io.decode_image(contents, channels=0, dtype=tf.uint16,
                             expand_animations=False)
  c = tf.shape(image)[-1]
  colour = tf.where(tf.logical_or(tf.equal(c, 2), tf.equal(c, 4)), c - 1, c)
  threshold = tf.where(_starts_with(contents, _JPEG_START),
                       int(LOSSY_MASK_THRESHOLD * 65535), 0)
  return tf.reduce_any(tf.cast(image[..., :colour], tf.int32) > threshold,
                       axis=-1, keepdims=True)


def load_mask(path: PathLike, size: Optional[Size] = None,
              invert: bool = False, name: str = 'path') -> np.ndarray:
  """Loads a hole mask from an image file of any bit depth.

  A pixel is a hole when any colour channel is non-zero (alpha ignored;
  8- and 16-bit files alike; JPEG files above half the range, see
  ``decode_hole_map``), so white-on-black masks such as NVIDIA's irregular
  *testing* masks load as they are. Pass ``invert=True`` for sets that
  store holes in black (e.g. NVIDIA's irregular *training* masks).

  Args:
    path: JPEG, PNG, GIF or BMP file.
    size: optional (height, width) or int: nearest-neighbour resize.
    invert: holes are the zero pixels instead.
    name: argument name for error messages.

  Returns:
    float32 [H,W,1] in {0, 1}, 1 = hole.

  Raises:
    ValueError: the file is missing, not an image or corrupt.
  """
  path = os.fspath(path)
  contents = _checked_bytes(path, name)
  try:
    hole = decode_hole_map(tf.constant(contents)).numpy()
  except tf.errors.OpError as e:
    raise _undecodable(name, path, e) from None
  if invert:
    hole = ~hole
  mask = hole.astype(np.float32)
  if size is not None:
    mask = resize_mask_nearest(mask, size)
  return mask


def as_batch(name: str, x, channels: int = 3,
             dtype: Optional[type] = None) -> Tuple[np.ndarray, bool]:
  """``x`` as an [N,H,W,C] array, and whether it was a single image.

  Args:
    name: the argument's name, which starts the error.
    x: [H,W,C] or [N,H,W,C] (also [H,W] when ``channels`` is 1).
    channels: C.
    dtype: the required dtype (None: any).

  Raises:
    ValueError: another rank, channel count or dtype.
  """
  a = np.asarray(x)
  if a.ndim == 2 and channels == 1:
    a = a[..., None]
  if (a.ndim not in (3, 4) or a.shape[-1] != channels
      or (dtype is not None and a.dtype != dtype)):
    kind = f'{np.dtype(dtype).name} ' if dtype is not None else ''
    shapes = '[H,W,1], [H,W]' if channels == 1 else f'[H,W,{channels}]'
    got = f'shape {list(np.shape(x))}'
    if dtype is not None:
      got += f' dtype {a.dtype}'
    raise ValueError(f'{name}: expected {kind}{shapes} or [N,H,W,{channels}], '
                     f'got {got}')
  return (a[None], True) if a.ndim == 3 else (a, False)
