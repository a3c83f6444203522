"""GEPE-Net generator and its ablations S-Net and PE-Net (SPEC 4.2).

A U-Net encoder-decoder (paper Fig. 1). The paper's generator tables are
not in the text; this layout follows Figs. 1, 3 and 4 (widths for
``cnum = 32``, 256x256 input):

=====  ==========================================  ================
layer  op                                          output
=====  ==========================================  ================
E1     conv5x5 s1                                  256x256 x 2c
E2     conv3x3 s2                                  128x128 x 4c
E3     conv3x3 s2, then ``p`` (rate 2) -> x3p       64x64 x 4c
E4     conv3x3 s2 on x3p, then ``p`` (rate 1)       32x32 x 8c
E5     conv3x3 s2 on x4p, then ``p`` (rate 1)       16x16 x 8c
ASPC   atrous separable pyramid on x5p             16x16 x 8c
D4     up x2 + conv3x3, concat x4p, conv3x3        32x32 x 8c
D3     up x2 + conv3x3, concat x3p, conv3x3        64x64 x 4c
D2     up x2 + conv3x3, concat x2, conv3x3         128x128 x 4c
D1     up x2 + conv3x3, concat x1, conv3x3         256x256 x 2c
out    conv3x3 to 3 channels, clip to [-1, 1]      256x256 x 3
=====  ==========================================  ================

All convolutions use SAME padding and ELU, except the linear output. The
input is ``[I, ones, M]`` (5 channels) as in GMCNN/DeepFill. The perception
operation ``p`` is DeepFill v1's contextual attention applied as
``x_p = x * (1 - m) + p(x, x, m) * m`` with ``m`` the mask resized (nearest,
``align_corners=True``) to the feature map, so known features are kept and
hole features are rebuilt from known patches (paper Eq. 1-2, Fig. 3).

Variants: ``snet`` has no ``p`` and no ASPC (plain skips); ``penet`` has
``p`` and ASPC; ``gepenet`` adds the iterative-guidance targets
``E_i(Igt)``, i = 3, 4, 5: the same encoder convolutions run on the
unmasked ground truth (mask channel zero) without ``p`` (Eq. 4-6).

Run directories (``generator.json``, checkpoints) are ``run_dir``'s.
"""

from __future__ import annotations

import collections
from typing import Any, Dict, Optional, Sequence

import tensorflow as tf

from inpaint_tf import config as config_lib
from inpaint_tf import ops
from inpaint_tf.keras_api import keras
from inpaint_tf.layers import ASPC
from inpaint_tf.layers import ContextualAttention
from inpaint_tf.layers.contextual_attention import DEFAULT_WHOLE_MAP_POSITIONS

_GEN = config_lib.GeneratorConfig()
_ATT = config_lib.AttentionConfig()

# Spatial size must be a multiple of this (four stride-2 convolutions).
SIZE_MULTIPLE = 16

GeneratorOutput = collections.namedtuple(
    'GeneratorOutput', ['image', 'features', 'targets'])
GeneratorOutput.__doc__ = """Result of ``Generator(inputs, structured=True)``.

Fields:
  image: [B,H,W,3] float32 in [-1,1], the raw prediction ``G(I)``.
  features: ``(x3p, x4p, x5p)`` perceptual encoder features for 'penet' and
    'gepenet' (shapes [B,H/4,W/4,4c], [B,H/8,W/8,8c], [B,H/16,W/16,8c]);
    ``()`` for 'snet'.
  targets: ``(E3(Igt), E4(Igt), E5(Igt))`` of the same shapes for 'gepenet'
    when the ground truth is given, else ``()``.
"""


def chunked_attention_layers(variant: str, image_size: int,
                             rates: Sequence[int] = _GEN.attention_rates
                             ) -> Dict[str, int]:
  """The perception layers that a hole-only generator computes in chunks.

  ``p3``, ``p4``, ``p5`` attend over E3-E5 (H/4, H/8, H/16) at their
  rates; a map of more than ``DEFAULT_WHOLE_MAP_POSITIONS`` positions takes
  ``ContextualAttention``'s chunked query path, whose sizes depend on the
  hole (XLA cannot compile it).

  Args:
    variant: one of ``config.GENERATOR_VARIANTS``.
    image_size: the side of square inputs.
    rates: the perception layers' rates.

  Returns:
    Layer name -> attention positions, for the chunked layers only.
  """
  if variant == 'snet':
    return {}
  out = {}
  for level, rate in zip((3, 4, 5), rates):
    positions = (image_size // 2 ** (level - 1) // rate) ** 2
    if positions > DEFAULT_WHOLE_MAP_POSITIONS:
      out[f'p{level}'] = positions
  return out


def _spatial_size(x: tf.Tensor):
  """(H, W) of ``x`` as Python ints where static, scalar tensors otherwise."""
  dynamic = tf.shape(x)
  return [x.shape[i] if x.shape[i] is not None else dynamic[i]
          for i in (1, 2)]


@keras.utils.register_keras_serializable('inpaint_tf')
class Generator(keras.Model):
  """U-Net inpainting generator (S-Net, PE-Net or GEPE-Net).

  Call: ``pred = gen((masked, mask))`` -> [B,H,W,3] float32 in [-1,1];
  ``gen((masked, mask), ground_truth=gt, structured=True)`` gives the full
  ``GeneratorOutput`` (features and IGL targets).

  Args:
    variant: one of ``config.GENERATOR_VARIANTS`` ('snet', 'penet',
      'gepenet').
    cnum: base width c (channels are 2c, 4c, 8c).
    aspc: use ASPC on x5p (the "without ASPC" ablation when False). S-Net
      never has ASPC, whatever this flag says.
    aspc_rates: dilation rates of the ASPC branches.
    attention_rates: contextual-attention rate of E3, E4, E5.
    attention_ksize, attention_stride, attention_fuse_k,
    attention_softmax_scale, attention_fuse: ContextualAttention settings.
    attention_hole_only: compute ``p`` only inside the hole (its
      ``query_mask``): the same values, with time and memory that grow
      with the image instead of its square; False computes every position
      (the form XLA compiles).
    **kwargs: Keras model arguments (``name``, ``dtype``, ...).
  """

  def __init__(self,
               variant: str = _GEN.variant,
               cnum: int = _GEN.cnum,
               aspc: bool = _GEN.aspc,
               aspc_rates: Sequence[int] = _GEN.aspc_rates,
               attention_rates: Sequence[int] = _GEN.attention_rates,
               attention_ksize: int = _ATT.attention_ksize,
               attention_stride: int = _ATT.attention_stride,
               attention_fuse_k: int = _ATT.attention_fuse_k,
               attention_softmax_scale: float = _ATT.attention_softmax_scale,
               attention_fuse: bool = _ATT.attention_fuse,
               attention_hole_only: bool = _ATT.attention_hole_only,
               **kwargs):
    super().__init__(**kwargs)
    if variant not in config_lib.GENERATOR_VARIANTS:
      raise ValueError(f'variant: expected one of '
                       f'{config_lib.GENERATOR_VARIANTS}, got {variant!r}')
    if int(cnum) < 1:
      raise ValueError(f'cnum: expected a positive int, got {cnum!r}')
    attention_rates = tuple(int(r) for r in attention_rates)
    if len(attention_rates) != 3:
      raise ValueError(f'attention_rates: expected 3 rates (E3, E4, E5), '
                       f'got {attention_rates!r}')
    self.variant = variant
    self.cnum = int(cnum)
    self.aspc = bool(aspc)
    self.aspc_rates = tuple(int(r) for r in aspc_rates)
    self.attention_rates = attention_rates
    self.attention_ksize = int(attention_ksize)
    self.attention_stride = int(attention_stride)
    self.attention_fuse_k = int(attention_fuse_k)
    self.attention_softmax_scale = float(attention_softmax_scale)
    self.attention_fuse = bool(attention_fuse)
    self.attention_hole_only = bool(attention_hole_only)

    self.uses_perception = variant in ('penet', 'gepenet')
    self.uses_aspc = self.aspc and variant != 'snet'
    self.uses_guidance = variant == 'gepenet'
    # The layers' order is that of the weights (get_weights, weight files).
    self._make_encoder_layers()
    self._make_decoder_layers()

  def _conv(self, filters: int, kernel: int, name: str, strides: int = 1,
            activation: Optional[str] = 'elu') -> keras.layers.Conv2D:
    """A SAME convolution in the model's dtype policy (ELU unless given)."""
    return keras.layers.Conv2D(
        filters, kernel, strides=strides, padding='same',
        activation=activation, name=name, dtype=self.dtype_policy)

  def _make_encoder_layers(self) -> None:
    """E1-E5, then ``perception`` (p3-p5, or [] for 'snet') and ``aspc_layer``.

    ``aspc_layer`` is None unless ``uses_aspc``.
    """
    c = self.cnum
    policy = self.dtype_policy
    self.e1 = self._conv(2 * c, 5, 'e1')
    self.e2 = self._conv(4 * c, 3, 'e2', strides=2)
    self.e3 = self._conv(4 * c, 3, 'e3', strides=2)
    self.e4 = self._conv(8 * c, 3, 'e4', strides=2)
    self.e5 = self._conv(8 * c, 3, 'e5', strides=2)
    if self.uses_perception:
      self.perception = [
          ContextualAttention(
              ksize=self.attention_ksize, stride=self.attention_stride,
              rate=rate, fuse_k=self.attention_fuse_k,
              softmax_scale=self.attention_softmax_scale,
              fuse=self.attention_fuse, name=f'p{i}', dtype=policy)
          for i, rate in zip((3, 4, 5), self.attention_rates)
      ]
    else:
      self.perception = []
    if self.uses_aspc:
      self.aspc_layer = ASPC(8 * c, rates=self.aspc_rates, name='aspc',
                             dtype=policy)
    else:
      self.aspc_layer = None

  def _make_decoder_layers(self) -> None:
    """D4-D1 (each an ``_up`` and a merging convolution) and the output."""
    c = self.cnum
    widths = {4: 8 * c, 3: 4 * c, 2: 4 * c, 1: 2 * c}
    self.d4_up = self._conv(widths[4], 3, 'd4_up')
    self.d4 = self._conv(widths[4], 3, 'd4')
    self.d3_up = self._conv(widths[3], 3, 'd3_up')
    self.d3 = self._conv(widths[3], 3, 'd3')
    self.d2_up = self._conv(widths[2], 3, 'd2_up')
    self.d2 = self._conv(widths[2], 3, 'd2')
    self.d1_up = self._conv(widths[1], 3, 'd1_up')
    self.d1 = self._conv(widths[1], 3, 'd1')
    self.output_layer = self._conv(3, 3, 'output', activation=None)

  # -- input checks -------------------------------------------------------

  def _check_inputs(self, masked, mask, ground_truth) -> None:
    ops.check_tensor('masked', masked, 4, '[B,H,W,3] float', channels=3)
    ops.check_tensor('mask', mask, 4, '[B,H,W,1] or [1,H,W,1] float',
                     channels=1)
    b, h, w = masked.shape[:3]
    for name, dim in (('H', h), ('W', w)):
      if dim is not None and dim % SIZE_MULTIPLE:
        raise ValueError(
            f'masked: expected [B,H,W,3] with H and W divisible by '
            f'{SIZE_MULTIPLE}, got shape {masked.shape.as_list()} ({name}='
            f'{dim}); pad the input (inpainter.Inpainter does) or resize it')
    mb, mh, mw = mask.shape[:3]
    if ((mh is not None and h is not None and mh != h)
        or (mw is not None and w is not None and mw != w)
        or (mb is not None and b is not None and mb not in (1, b))):
      raise ValueError(
          f'mask: expected [{b},{h},{w},1] or [1,{h},{w},1] to match masked '
          f'{masked.shape.as_list()}, got shape {mask.shape.as_list()}')
    if ground_truth is not None:
      ops.check_tensor('ground_truth', ground_truth, 4, '[B,H,W,3] float',
                       channels=3)
      if not ground_truth.shape.is_compatible_with(masked.shape):
        raise ValueError(
            f'ground_truth: expected shape {masked.shape.as_list()} (that of '
            f'masked), got {ground_truth.shape.as_list()}')

  # -- network ------------------------------------------------------------

  def _perceive(self, layer, x: tf.Tensor, mask: tf.Tensor) -> tf.Tensor:
    """``x * (1 - m) + p(x, x, m) * m`` with m = mask at x's resolution.

    ``p`` is computed only where ``m`` is non-zero when
    ``attention_hole_only`` (elsewhere its output is multiplied by 0).
    """
    m = tf.cast(ops.resize_nearest(mask, _spatial_size(x)), x.dtype)
    query = m if self.attention_hole_only else None
    return x * (1.0 - m) + layer(x, x, m, query_mask=query) * m

  def _encode(self, x: tf.Tensor, mask: Optional[tf.Tensor]):
    """E1..E5; the perception op follows E3..E5 when ``mask`` is given."""
    x1 = self.e1(x)
    x2 = self.e2(x1)
    deep = []
    h = x2
    for i, conv in enumerate((self.e3, self.e4, self.e5)):
      h = conv(h)
      if mask is not None:
        h = self._perceive(self.perception[i], h, mask)
      deep.append(h)
    return x1, x2, tuple(deep)

  @staticmethod
  def _up(x: tf.Tensor, conv) -> tf.Tensor:
    """``conv(resize_nearest(x, 2x))`` without the upsampled tensor.

    A 2x nearest upsampling (``align_corners=True`` repeats every pixel
    twice at this ratio) followed by a 3x3 SAME convolution equals, for
    each output phase (a, b) in {0,1}^2, a 3x3 convolution of ``x`` whose
    taps falling on the same source pixel are summed: rows ``[W0, W1+W2,
    0]`` for a = 0 and ``[0, W0+W1, W2]`` for a = 1 (columns likewise).
    The four phases are one convolution with 4x the filters, interleaved
    by ``depth_to_space``: the same values up to float rounding, with a
    quarter of the input memory (2 GB less at 2048x2048 for cnum=32).
    """
    if not conv.built:
      conv.build(x.shape)
    kernel = tf.cast(conv.kernel, x.dtype)  # [3,3,C,F]
    rows = [tf.stack([kernel[0], kernel[1] + kernel[2], tf.zeros_like(
        kernel[0])]), tf.stack([tf.zeros_like(kernel[0]),
                                kernel[0] + kernel[1], kernel[2]])]
    phases = []
    for a in (0, 1):
      k = rows[a]
      cols = [tf.stack([k[:, 0], k[:, 1] + k[:, 2], tf.zeros_like(k[:, 0])],
                       axis=1),
              tf.stack([tf.zeros_like(k[:, 0]), k[:, 0] + k[:, 1], k[:, 2]],
                       axis=1)]
      phases.extend(cols)  # (a, b) in the order depth_to_space reads them.
    y = tf.nn.conv2d(x, tf.concat(phases, axis=-1), 1, 'SAME')
    y = tf.nn.depth_to_space(y, 2)
    return conv.activation(tf.nn.bias_add(y, tf.cast(conv.bias, x.dtype)))

  @staticmethod
  def _conv_of_concat(conv, parts) -> tf.Tensor:
    """``conv(concat(parts, -1))`` as a sum of convolutions of each part.

    The same values up to float rounding, without the concatenated tensor
    (and oneDNN's reordered copy of it): at 2048x2048 the last decoder
    layer's input alone is 2 GB for cnum=32.
    """
    if not conv.built:
      conv.build(parts[0].shape[:-1] + [sum(p.shape[-1] for p in parts)])
    kernel = tf.cast(conv.kernel, parts[0].dtype)
    y, start = None, 0
    for part in parts:
      depth = part.shape[-1]
      term = tf.nn.conv2d(part, kernel[:, :, start:start + depth], 1, 'SAME')
      y = term if y is None else y + term
      start += depth
    return conv.activation(tf.nn.bias_add(y, tf.cast(conv.bias,
                                                     parts[0].dtype)))

  def _forward(self, masked, mask, ground_truth,
               training) -> GeneratorOutput:
    """Runs the generator and, for GEPE-Net, the IGL target encoder."""
    del training  # No dropout or normalisation layers.
    masked = tf.convert_to_tensor(masked)
    mask = tf.convert_to_tensor(mask)
    if ground_truth is not None:
      ground_truth = tf.convert_to_tensor(ground_truth)
    self._check_inputs(masked, mask, ground_truth)
    dtype = self.compute_dtype
    masked = tf.cast(masked, dtype)
    mask = tf.cast(mask, dtype)
    ones = tf.ones_like(masked[..., :1])
    x = tf.concat([masked, ones, ones * mask], axis=-1)
    x1, x2, (x3, x4, x5) = self._encode(
        x, mask if self.uses_perception else None)

    y = self.aspc_layer(x5) if self.uses_aspc else x5
    for up, conv, skip in ((self.d4_up, self.d4, x4),
                           (self.d3_up, self.d3, x3),
                           (self.d2_up, self.d2, x2),
                           (self.d1_up, self.d1, x1)):
      y = self._conv_of_concat(conv, [self._up(y, up), skip])
    image = tf.clip_by_value(self.output_layer(y), -1.0, 1.0)
    image = tf.cast(image, self.dtype)

    features = (x3, x4, x5) if self.uses_perception else ()
    targets = ()
    if self.uses_guidance and ground_truth is not None:
      gt = tf.cast(ground_truth, dtype)
      gt_input = tf.concat([gt, ones, tf.zeros_like(ones)], axis=-1)
      _, _, targets = self._encode(gt_input, None)
    return GeneratorOutput(image, features, targets)

  def call(self, inputs, training=None, ground_truth=None,
           structured: bool = False):
    """Predicts the image (and, when asked, the features and IGL targets).

    Args:
      inputs: tuple ``(masked, mask)``: ``masked`` [B,H,W,3] float in
        [-1,1], ``Igt * (1 - M)``, H and W divisible by 16; ``mask``
        [B,H,W,1] or [1,H,W,1] float, 1 = hole.
      training: Keras training flag (no layer here depends on it).
      ground_truth: optional [B,H,W,3] float in [-1,1]; gives ``targets``
        for 'gepenet' (ignored by the other variants).
      structured: return the whole ``GeneratorOutput`` instead of the image.

    Returns:
      [B,H,W,3] float32 in [-1,1], or a ``GeneratorOutput``.
    """
    if not isinstance(inputs, (tuple, list)) or len(inputs) != 2:
      raise ValueError(
          'inputs: expected a tuple (masked [B,H,W,3], mask [B,H,W,1]), got '
          f'{type(inputs).__name__}')
    masked, mask = inputs
    out = self._forward(masked, mask, ground_truth, training)
    return out if structured else out.image

  def build(self, input_shape: Any = 64) -> None:
    """Creates the variables by running a zero batch.

    Args:
      input_shape: the side of the zero batch (any multiple of 16: the
        variables do not depend on it), or the shapes Keras passes on a
        first call, ``([B,H,W,3], [B,H,W,1])``.
    """
    if self.built:
      return
    size = input_shape if isinstance(input_shape, int) else 64
    self._forward(tf.zeros([1, size, size, 3]), tf.zeros([1, size, size, 1]),
                  None, False)
    self.built = True

  def get_config(self) -> Dict[str, Any]:
    # The layer's base config (name, trainable, dtype policy); that of a
    # subclassed Model is empty.
    config = keras.layers.Layer.get_config(self)
    config.update({
        'variant': self.variant,
        'cnum': self.cnum,
        'aspc': self.aspc,
        'aspc_rates': list(self.aspc_rates),
        'attention_rates': list(self.attention_rates),
        'attention_ksize': self.attention_ksize,
        'attention_stride': self.attention_stride,
        'attention_fuse_k': self.attention_fuse_k,
        'attention_softmax_scale': self.attention_softmax_scale,
        'attention_fuse': self.attention_fuse,
        'attention_hole_only': self.attention_hole_only,
    })
    return config

  @classmethod
  def from_config(cls, config: Dict[str, Any], custom_objects=None):
    del custom_objects
    return cls(**config)


def build_generator(variant: str = _GEN.variant, cnum: int = _GEN.cnum,
                    aspc: bool = _GEN.aspc, **kwargs) -> Generator:
  """Builds a generator; see ``Generator`` for the arguments."""
  return Generator(variant=variant, cnum=cnum, aspc=aspc, **kwargs)
