"""Atomic output files (images, tables) and directories (SavedModels).

Every file the tools write appears complete or not at all: content goes to
a temporary name in the same directory, then ``os.replace`` moves it into
place (atomic on POSIX within one file system). A directory (a SavedModel)
is written to a temporary directory beside the target and then renamed.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import tempfile
from typing import Iterator, Union

import numpy as np
import tensorflow as tf


def atomic_write(path: str, data: Union[bytes, str],
                 name: str = 'output') -> None:
  """Writes ``data`` to ``path`` through a temporary file and a rename.

  Args:
    path: destination file; its parent directory is created if missing.
    data: bytes, or text written as UTF-8.
    name: argument name for error messages.

  Raises:
    ValueError: ``path`` is a directory (nothing is written).
  """
  check_output_file(path, name)
  if isinstance(data, str):
    data = data.encode('utf-8')
  parent = os.path.dirname(os.path.abspath(path))
  os.makedirs(parent, exist_ok=True)
  fd, tmp = tempfile.mkstemp(prefix=f'.{os.path.basename(path)}.',
                             suffix='.tmp', dir=parent)
  try:
    with os.fdopen(fd, 'wb') as f:
      f.write(data)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)
  except BaseException:
    if os.path.exists(tmp):
      os.remove(tmp)
    raise


def write_npz(path: str, arrays, compressed: bool = False,
              name: str = 'output') -> None:
  """Writes ``{name: array}`` as an ``.npz`` file, atomically."""
  buffer = io.BytesIO()
  (np.savez_compressed if compressed else np.savez)(buffer, **arrays)
  atomic_write(path, buffer.getvalue(), name)


def check_output_file(path: str, name: str = 'output') -> None:
  """Raises ValueError naming ``name`` if ``path`` is an existing directory."""
  if os.path.isdir(path):
    raise ValueError(f'{name}: expected a file name, got the directory '
                     f'{path!r}')


def check_output_dir(path: str, overwrite: bool = False) -> None:
  """Raises ValueError if ``path`` is a file, or a non-empty directory."""
  if os.path.isfile(path):
    raise ValueError(f'output_dir: expected a directory, got the file {path}')
  if os.path.isdir(path) and os.listdir(path) and not overwrite:
    raise ValueError(f'output_dir: {path} exists and is not empty '
                     '(use --overwrite to replace it)')


@contextlib.contextmanager
def atomic_directory(path: str, overwrite: bool = False) -> Iterator[str]:
  """Yields a temporary directory that becomes ``path`` on success.

  The temporary directory lies beside ``path`` (same file system). On an
  exception it is removed and ``path`` is left as it was.

  Args:
    path: destination directory.
    overwrite: replace an existing non-empty ``path``; otherwise that is a
      ``ValueError`` (raised before anything is written).
  """
  path = os.path.abspath(path)
  check_output_dir(path, overwrite)
  parent = os.path.dirname(path)
  os.makedirs(parent, exist_ok=True)
  tmp = tempfile.mkdtemp(prefix=f'.{os.path.basename(path)}.', suffix='.tmp',
                         dir=parent)
  try:
    yield tmp
    os.chmod(tmp, 0o755)
    old = None
    if os.path.isdir(path):
      old = tempfile.mkdtemp(prefix=f'.{os.path.basename(path)}.',
                             suffix='.old', dir=parent)
      os.rmdir(old)
      os.replace(path, old)
    os.replace(tmp, path)
    if old is not None:
      shutil.rmtree(old, ignore_errors=True)
  except BaseException:
    shutil.rmtree(tmp, ignore_errors=True)
    raise


def encode_image(path: str, image, name: str = 'output') -> bytes:
  """Encodes a uint8 [H,W,3] (or [H,W,1]) RGB image for ``path``'s extension.

  PNG for ``.png``, JPEG (quality 95) for ``.jpg``/``.jpeg``.

  Raises:
    ValueError: another extension (naming ``name``), or not a uint8
      [H,W,1|3] array.
  """
  image = np.asarray(image)
  if (image.dtype != np.uint8 or image.ndim != 3
      or image.shape[-1] not in (1, 3)):
    raise ValueError(f'image: expected uint8 [H,W,3] or [H,W,1], got shape '
                     f'{list(image.shape)} dtype {image.dtype}')
  ext = os.path.splitext(path)[1].lower()
  if ext == '.png':
    return tf.io.encode_png(image).numpy()
  if ext in ('.jpg', '.jpeg'):
    return tf.io.encode_jpeg(image, quality=95).numpy()
  raise ValueError(f'{name}: expected a .png, .jpg or .jpeg file name, got '
                   f'{path!r}')


def check_image_output(path: str, name: str = 'output') -> None:
  """Raises ValueError unless ``path`` can take an image (before any work)."""
  check_output_file(path, name)
  encode_image(path, np.zeros((1, 1, 3), np.uint8), name)


def write_image(path: str, image, name: str = 'output') -> None:
  """Atomically writes a uint8 RGB image; format from the extension."""
  atomic_write(path, encode_image(path, image, name), name)
