"""Pretrained weight files: the Keras cache or a path; nothing is downloaded.

One resolver serves VGG-16 (perceptual losses), InceptionV3 (FID) and LPIPS:
``resolve(argument, weights, ...)`` turns the user's setting into the path
of an existing file, or raises ``WeightsNotFoundError`` with one line that
names the argument, says where the file was looked for and where to get it.

The Keras cache is where ``keras.utils.get_file`` stores downloads:
``$KERAS_HOME/models`` (when set), ``~/.keras/models``, and Keras' fallback
for a read-only home, ``/tmp/.keras/models``.
"""

from __future__ import annotations

import os
from typing import List, Optional

# The setting that means "the file in the Keras cache".
FROM_CACHE = 'imagenet'
# Keras' cache when the home folder is not writable.
KERAS_FALLBACK_DIR = os.path.join('/tmp', '.keras')


class WeightsNotFoundError(FileNotFoundError, ValueError):
  """A weights file is missing (a ValueError too, for the tools' errors)."""


def keras_cache_dirs() -> List[str]:
  """The folders of the Keras model cache, in the order they are searched."""
  homes = []
  if os.environ.get('KERAS_HOME'):
    homes.append(os.environ['KERAS_HOME'])
  homes += [os.path.join(os.path.expanduser('~'), '.keras'),
            KERAS_FALLBACK_DIR]
  folders = []
  for home in homes:
    folder = os.path.join(home, 'models')
    if folder not in folders:
      folders.append(folder)
  return folders


def cached(filename: str) -> Optional[str]:
  """Path of ``filename`` in the Keras cache, or None if it is not there."""
  for folder in keras_cache_dirs():
    path = os.path.join(folder, filename)
    if os.path.isfile(path):
      return path
  return None


def resolve(argument: str, weights: Optional[str], *, what: str,
            cache_file: Optional[str] = None, url: Optional[str] = None,
            hint: str = '') -> str:
  """The path of the weights file that ``weights`` names.

  Args:
    argument: the setting's name, which starts every error (``vgg_weights``).
    weights: ``FROM_CACHE`` (``'imagenet'``: ``cache_file`` in the Keras
      cache; only when ``cache_file`` is given) or a path (``~`` expands).
    what: what the file holds, for the messages (``'VGG-16 ImageNet
      weights'``).
    cache_file: the file's name in the Keras cache.
    url: where to download it, for the messages.
    hint: how else to make the file, for the messages.

  Returns:
    The path of an existing file.

  Raises:
    WeightsNotFoundError: no such file (or no setting at all).
  """
  where = f' from {url}' if url else ''
  more = f'; {hint}' if hint else ''
  if weights == FROM_CACHE and cache_file:
    path = cached(cache_file)
    if path is None:
      folders = keras_cache_dirs()
      raise WeightsNotFoundError(
          f'{argument}: expected {what} in the Keras cache, got none: '
          f'download {cache_file}{where} to {folders[0]}/ (also searched: '
          f'{", ".join(folders[1:])}) or pass its path{more}')
    return path
  if not weights:
    raise WeightsNotFoundError(
        f'{argument}: expected a file of {what}, got none{more}')
  path = os.path.expanduser(os.fspath(weights))
  if not os.path.isfile(path):
    example = f' such as {cache_file}' if cache_file else ''
    raise WeightsNotFoundError(
        f'{argument}: expected a file of {what}{example}{where}, got '
        f'{path!r} (no such file){more}')
  return path
