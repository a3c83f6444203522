"""The demo's images: photographs and textures bundled with scikit-image.

``make demo`` (and ``--data=skimage``) trains on random crops of
``DEMO_IMAGES`` but ``DEMO_HELD_OUT``, which validation and evaluation use;
the files ship inside the installed scikit-image package, so the demo
needs no download.
"""

from __future__ import annotations

import importlib.resources
import os
from typing import List, Sequence, Tuple, TypeVar

import numpy as np

from inpaint_tf import image_io

# ``data`` value that selects scikit-image's bundled demo images.
SKIMAGE_DATA = 'skimage'
# scikit-image's bundled photographs and textures (file name in
# skimage/data), in a fixed order. Synthetic images (chessboards, colour
# charts, logos, phantoms, silhouettes) and the motion-blurred clock are
# left out.
DEMO_IMAGES = (
    ('astronaut', 'astronaut.png'),
    ('brick', 'brick.png'),
    ('camera', 'camera.png'),
    ('cell', 'cell.png'),
    ('chelsea', 'chelsea.png'),
    ('coffee', 'coffee.png'),
    ('coins', 'coins.png'),
    ('grass', 'grass.png'),
    ('gravel', 'gravel.png'),
    ('hubble_deep_field', 'hubble_deep_field.jpg'),
    ('immunohistochemistry', 'ihc.png'),
    ('moon', 'moon.png'),
    ('motorcycle_left', 'motorcycle_left.png'),
    ('motorcycle_right', 'motorcycle_right.png'),
    ('page', 'page.png'),
    ('retina', 'retina.jpg'),
    ('rocket', 'rocket.jpg'),
    ('text', 'text.png'),
)
# Held out from demo training: a photograph, a texture and an object.
DEMO_HELD_OUT = ('chelsea', 'gravel', 'rocket')

T = TypeVar('T')


def _skimage_data_dir() -> str:
  return str(importlib.resources.files('skimage') / 'data')


def skimage_demo_files() -> List[Tuple[str, str]]:
  """(name, path) of scikit-image's bundled demo images (``DEMO_IMAGES``).

  The files ship inside the installed scikit-image package; nothing is
  downloaded.

  Raises:
    ValueError: a file is missing from the installed package.
  """
  folder = _skimage_data_dir()
  out = []
  for name, filename in DEMO_IMAGES:
    path = os.path.join(folder, filename)
    if not os.path.isfile(path):
      raise ValueError(f'skimage: expected the bundled image {filename} in '
                       f'{folder}, got no such file (scikit-image install?)')
    out.append((name, path))
  return out


def skimage_demo_images() -> List[Tuple[str, np.ndarray]]:
  """The photographs and textures bundled with scikit-image.

  Returns:
    [(name, uint8 [H,W,3] RGB array)] in ``DEMO_IMAGES`` order (grey images
    replicated to RGB), decoded like the training pipeline decodes them.
  """
  return [(name, image_io.load_image(path))
          for name, path in skimage_demo_files()]


def split_demo_images(
    items: Sequence[Tuple[str, T]],
    held_out: Sequence[str] = DEMO_HELD_OUT,
) -> Tuple[List[Tuple[str, T]], List[Tuple[str, T]]]:
  """Splits (name, x) pairs into training and held-out lists by name.

  Args:
    items: e.g. ``skimage_demo_images()`` or ``skimage_demo_files()``.
    held_out: names to hold out.

  Returns:
    (train, held_out) lists, each in the order of ``items``.

  Raises:
    ValueError: a held-out name is not among the items, or nothing is left
      for training.
  """
  names = [name for name, _ in items]
  unknown = sorted(set(held_out) - set(names))
  if unknown:
    raise ValueError(f'held_out: expected names among {names}, got unknown '
                     f'{unknown}')
  train = [item for item in items if item[0] not in held_out]
  test = [item for item in items if item[0] in held_out]
  if not train:
    raise ValueError(f'held_out: expected to leave images for training, got '
                     f'all of {names} held out')
  return train, test
