"""The demo's images: photographs and textures bundled with scikit-image.

``make demo`` (and ``--data=skimage``) trains on random crops of
``DEMO_IMAGES`` but two held-out sets of other images: ``DEMO_VALIDATION``,
which the trainer scores during training and on which the demo recipe
(``flags/demo.cfg``, ``docs/training_study.md``) was chosen, and
``DEMO_TEST``, on which ``make demo`` reports the finished model. The files
ship inside the installed scikit-image package, so the demo needs no
download.
"""

from __future__ import annotations

import importlib.resources
import os
from typing import Any, List, NamedTuple, Sequence, Tuple, TypeVar

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
# Held out from demo training: the validation images (choosing recipes: a
# photograph, a texture and an object) and the test images (reporting: a
# texture, a grey and a colour photograph).
DEMO_VALIDATION = ('chelsea', 'gravel', 'rocket')
DEMO_TEST = ('brick', 'camera', 'coffee')

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


class DemoSplit(NamedTuple):
  """The demo images by role; each a list of (name, x) in ``items`` order."""
  train: List[Tuple[str, Any]]
  validation: List[Tuple[str, Any]]
  test: List[Tuple[str, Any]]


def split_demo_images(items: Sequence[Tuple[str, T]],
                      validation: Sequence[str] = DEMO_VALIDATION,
                      test: Sequence[str] = DEMO_TEST) -> DemoSplit:
  """Splits (name, x) pairs into training, validation and test by name.

  Args:
    items: e.g. ``skimage_demo_images()`` or ``skimage_demo_files()``.
    validation, test: disjoint names to hold out.

  Returns:
    A ``DemoSplit``; training gets every item in neither set.

  Raises:
    ValueError: a held-out name is not among the items, the two sets share
      a name, or nothing is left for training.
  """
  names = [name for name, _ in items]
  for argument, held_out in (('validation', validation), ('test', test)):
    unknown = sorted(set(held_out) - set(names))
    if unknown:
      raise ValueError(f'{argument}: expected names among {names}, got '
                       f'unknown {unknown}')
  shared = sorted(set(validation) & set(test))
  if shared:
    raise ValueError(f'test: expected images disjoint from the validation '
                     f'ones, got {shared} in both')
  split = DemoSplit(
      train=[i for i in items if i[0] not in validation and i[0] not in test],
      validation=[i for i in items if i[0] in validation],
      test=[i for i in items if i[0] in test])
  if not split.train:
    raise ValueError(f'validation, test: expected to leave images for '
                     f'training, got all of {names} held out')
  return split
