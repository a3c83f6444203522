"""Reading PyTorch weight files, for the converters (``convert_*``).

Only the converters import this, and only they need PyTorch (and
torchvision, for its pretrained VGG-16); the library and the other tools do
not.
"""

import os
from typing import Dict, Optional

import numpy as np


# Help of the converters' flag that names a VGG-16 state-dict file.
VGG16_FLAG_HELP = ("torchvision's VGG-16 state dict (vgg16-397923af.pth); "
                   "default: torchvision's pretrained vgg16.")


def import_torch():
  """Imports PyTorch, or raises a ValueError saying how to get it."""
  try:
    import torch  # pylint: disable=g-import-not-at-top
  except ImportError:
    raise ValueError('this converter needs PyTorch to read .pth files '
                     '(pip install torch torchvision, in any environment); '
                     'the converted .npz then works without it') from None
  return torch


def _to_numpy(state) -> Dict[str, np.ndarray]:
  if isinstance(state, dict) and 'state_dict' in state:
    state = state['state_dict']
  if not isinstance(state, dict):
    raise ValueError(f'expected a state dict, got {type(state).__name__}')
  return {k: v.detach().cpu().numpy() for k, v in state.items()
          if hasattr(v, 'detach')}


def load_state_dict(path: str, name: str) -> Dict[str, np.ndarray]:
  """A PyTorch state dict from ``path`` as numpy arrays.

  Args:
    path: a ``.pth`` file.
    name: the flag that named it, which starts every error.
  """
  torch = import_torch()
  if not os.path.isfile(path):
    raise ValueError(f'{name}: no such file {path!r}')
  try:
    state = torch.load(path, map_location='cpu')
  except Exception as err:  # pylint: disable=broad-except
    raise ValueError(f'{name}: cannot read {path!r} with torch.load '
                     f'({err})') from err
  return _to_numpy(state)


def vgg16_state_dict(path: Optional[str], name: str
                     ) -> Dict[str, np.ndarray]:
  """The VGG-16 state dict in ``path`` (the flag ``name``), or torchvision's
  pretrained one when ``path`` is empty."""
  return load_state_dict(path, name) if path else torchvision_vgg16(name)


def torchvision_vgg16(name: str) -> Dict[str, np.ndarray]:
  """torchvision's pretrained VGG-16 state dict as numpy arrays.

  Args:
    name: the flag that would name a state-dict file instead, for the
      error without torchvision.
  """
  import_torch()
  try:
    from torchvision import models  # pylint: disable=g-import-not-at-top
  except ImportError:
    raise ValueError(f'without --{name}, this converter needs torchvision '
                     f'(pip install torchvision) or pass --{name}='
                     'vgg16-397923af.pth') from None
  try:
    net = models.vgg16(weights=models.VGG16_Weights.IMAGENET1K_V1)
  except AttributeError:  # torchvision < 0.13
    net = models.vgg16(pretrained=True)
  return _to_numpy(net.state_dict())
