r"""Writes ``tests/data/vgg16_torchvision_reference.npz`` with PyTorch.

The features AWA's trainer computes for its perceptual and style losses:
torchvision's VGG-16 ``features[:5]``, ``[5:10]`` and ``[10:17]`` (the first
three max pools) of images in [-1, 1], RGB, NCHW, with no further
normalisation. The weights are :func:`random_state_dict` (random, in
torchvision's layout), so the test can rebuild them without PyTorch and
pass them through the project's converter.

Run once, in an environment with torch and torchvision (the test run needs
neither)::

    python tests/make_vgg_reference.py

Keys of the file: ``images`` [2,32,32,3] float32 in [-1, 1] (NHWC);
``pool1`` [2,16,16,64], ``pool2`` [2,8,8,128], ``pool3`` [2,4,4,256]
float32 (NHWC, transposed from PyTorch's NCHW); ``weight_sums`` the float64
sum of each tensor of the state dict, in the order of its keys, to check
that the test rebuilt the same weights; ``versions`` the torch and
torchvision versions.
"""

import os
from typing import Dict

import numpy as np

OUTPUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'data',
                      'vgg16_torchvision_reference.npz')
SEED = 20261203
# ``features`` indices of the convolutions of blocks 1-3, and their widths.
CONV_INDICES = (0, 2, 5, 7, 10, 12, 14)
WIDTHS = (64, 64, 128, 128, 256, 256, 256)


def random_state_dict(seed: int = SEED) -> Dict[str, np.ndarray]:
  """He-normal VGG-16 blocks 1-3 in torchvision's layout, float32.

  Keys ``features.{i}.weight`` [Cout,Cin,3,3] and ``features.{i}.bias``
  [Cout]. ``np.random.RandomState`` keeps its stream across NumPy versions.
  """
  rng = np.random.RandomState(seed)
  state, cin = {}, 3
  for index, cout in zip(CONV_INDICES, WIDTHS):
    std = np.sqrt(2.0 / (9 * cin))
    state[f'features.{index}.weight'] = (
        rng.standard_normal((cout, cin, 3, 3)) * std).astype(np.float32)
    state[f'features.{index}.bias'] = (
        rng.standard_normal(cout) * 0.05).astype(np.float32)
    cin = cout
  return state


def reference_images(seed: int = SEED) -> np.ndarray:
  """[2,32,32,3] float32 in [-1, 1]: a smooth image and uniform noise."""
  rng = np.random.RandomState(seed + 1)
  y, x = np.mgrid[0:32, 0:32] / 31.0
  smooth = np.stack([np.sin(3 * x + y), np.cos(2 * y), x * y * 2 - 1], -1)
  noise = rng.uniform(-1, 1, (32, 32, 3))
  return np.stack([smooth, noise]).astype(np.float32)


def main():
  import torch  # pylint: disable=g-import-not-at-top
  import torchvision  # pylint: disable=g-import-not-at-top

  state = random_state_dict()
  net = torchvision.models.vgg16(weights=None)
  features = net.features
  missing = features.load_state_dict(
      {k[len('features.'):]: torch.from_numpy(v) for k, v in state.items()},
      strict=False)
  # Blocks 4 and 5 keep torchvision's initialisation; they are not used.
  assert not missing.unexpected_keys, missing
  features.eval()
  images = reference_images()
  x = torch.from_numpy(images.transpose(0, 3, 1, 2))
  pools = {}
  with torch.no_grad():
    for name, (start, stop) in zip(('pool1', 'pool2', 'pool3'),
                                   ((0, 5), (5, 10), (10, 17))):
      x = features[start:stop](x)
      pools[name] = x.numpy().transpose(0, 2, 3, 1).astype(np.float32)
  np.savez_compressed(
      OUTPUT, images=images, **pools,
      weight_sums=np.array([v.astype(np.float64).sum()
                            for v in state.values()]),
      versions=np.array([torch.__version__, torchvision.__version__]))
  print(f'wrote {OUTPUT}: ' + ', '.join(
      f'{k} {list(v.shape)}' for k, v in pools.items()))


if __name__ == '__main__':
  main()
