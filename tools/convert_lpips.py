r"""Converts LPIPS (VGG, v0.1) weights from PyTorch to ``inpaint_tf``'s .npz.

  python -m tools.convert_lpips \
      --input=<site-packages>/lpips/weights/v0.1/vgg.pth \
      [--backbone=~/.cache/torch/hub/checkpoints/vgg16-397923af.pth] \
      --output=lpips_vgg.npz

``--input`` is the ``lpips`` package's linear-head file. The backbone LPIPS
was calibrated on is torchvision's ImageNet VGG-16 (not Keras' weights):
``--backbone`` names its state-dict file; without it, torchvision's
pretrained ``vgg16`` is loaded (from torchvision's cache, or downloaded).
The result holds both (see ``inpaint_tf.lpips``); pass it to training and
evaluation as ``--lpips_weights``.

This tool needs PyTorch (and torchvision when ``--backbone`` is not given);
the library does not.
"""

from . import _cli  # pylint: disable=g-bad-import-order

import io
import os
from typing import Dict

from absl import flags
import numpy as np

from inpaint_tf import fileio
from inpaint_tf import lpips

FLAGS = flags.FLAGS
flags.DEFINE_string('input', None, "The lpips package's weights/v0.1/vgg.pth.")
flags.DEFINE_string('backbone', None,
                    "torchvision's VGG-16 state dict (vgg16-397923af.pth); "
                    "default: torchvision's pretrained vgg16.")
flags.DEFINE_string('output', None, '.npz file to write.')


def import_torch():
  """Imports PyTorch, or raises a ValueError saying how to get it."""
  try:
    import torch  # pylint: disable=g-import-not-at-top
  except ImportError:
    raise ValueError('convert_lpips needs PyTorch to read .pth files '
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
  """A PyTorch state dict from ``path`` as numpy arrays."""
  torch = import_torch()
  if not os.path.isfile(path):
    raise ValueError(f'{name}: no such file {path!r}')
  try:
    state = torch.load(path, map_location='cpu')
  except Exception as err:  # pylint: disable=broad-except
    raise ValueError(f'{name}: cannot read {path!r} with torch.load '
                     f'({err})') from err
  return _to_numpy(state)


def torchvision_vgg16() -> Dict[str, np.ndarray]:
  """torchvision's pretrained VGG-16 state dict as numpy arrays."""
  import_torch()
  try:
    from torchvision import models  # pylint: disable=g-import-not-at-top
  except ImportError:
    raise ValueError('without --backbone, convert_lpips needs torchvision '
                     '(pip install torchvision) or pass --backbone='
                     'vgg16-397923af.pth') from None
  try:
    net = models.vgg16(weights=models.VGG16_Weights.IMAGENET1K_V1)
  except AttributeError:  # torchvision < 0.13
    net = models.vgg16(pretrained=True)
  return _to_numpy(net.state_dict())


def main(argv):
  del argv
  _cli.require(input=FLAGS.input, output=FLAGS.output)
  heads = load_state_dict(FLAGS.input, 'input')
  backbone = (load_state_dict(FLAGS.backbone, 'backbone') if FLAGS.backbone
              else torchvision_vgg16())
  arrays = lpips.arrays_from_torch(heads, backbone)
  buffer = io.BytesIO()
  np.savez(buffer, **arrays)
  fileio.atomic_write(FLAGS.output, buffer.getvalue())
  print(f'wrote {FLAGS.output}: {len(arrays)} arrays (5 linear heads, 13 '
        'VGG-16 convolutions)')


if __name__ == '__main__':
  _cli.run_main(main)
