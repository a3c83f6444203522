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

from absl import flags

from inpaint_tf import fileio
from inpaint_tf import lpips

from . import _torch

FLAGS = flags.FLAGS
flags.DEFINE_string('input', None, "The lpips package's weights/v0.1/vgg.pth.")
flags.DEFINE_string('backbone', None, _torch.VGG16_FLAG_HELP)
flags.DEFINE_string('output', None, '.npz file to write.')


def main(argv):
  del argv
  _cli.require(input=FLAGS.input, output=FLAGS.output)
  heads = _torch.load_state_dict(FLAGS.input, 'input')
  backbone = _torch.vgg16_state_dict(FLAGS.backbone, 'backbone')
  arrays = lpips.arrays_from_torch(heads, backbone)
  fileio.write_npz(FLAGS.output, arrays)
  print(f'wrote {FLAGS.output}: {len(arrays)} arrays (5 linear heads, 13 '
        'VGG-16 convolutions)')


if __name__ == '__main__':
  _cli.run_main(main)
