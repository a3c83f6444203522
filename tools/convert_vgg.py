r"""Converts torchvision's VGG-16 weights to ``inpaint_tf``'s .npz.

  python -m tools.convert_vgg [--input=vgg16-397923af.pth] \
      --output=$HOME/.keras/models/vgg16_torchvision.npz

The perceptual and style losses (TPL/TSL, ``--aux_losses=tpl_tsl``) use
torchvision's ImageNet VGG-16 by default (``--vgg_convention=torchvision``),
the network AWA's trainer computes them on. ``--input`` names its state-dict
file; without it, torchvision's pretrained ``vgg16`` is loaded (from
torchvision's cache, or downloaded). Written to the Keras cache as above, it
is what ``--vgg_weights=imagenet`` finds; anywhere else, pass its path as
``--vgg_weights``.

This tool needs PyTorch (and torchvision when ``--input`` is not given);
the library does not.
"""

from . import _cli  # pylint: disable=g-bad-import-order

from absl import flags

from inpaint_tf import fileio
from inpaint_tf import vgg

from . import _torch

FLAGS = flags.FLAGS
flags.DEFINE_string('input', None, _torch.VGG16_FLAG_HELP)
flags.DEFINE_string('output', None, '.npz file to write.')


def main(argv):
  del argv
  _cli.require(output=FLAGS.output)
  state = _torch.vgg16_state_dict(FLAGS.input, 'input')
  fileio.write_npz(FLAGS.output,
                   vgg.torchvision_arrays(state, argument='input'))
  print(f'wrote {FLAGS.output}: the 13 VGG-16 convolutions')


if __name__ == '__main__':
  _cli.run_main(main)
