"""Inpainting of images of any size with a trained generator.

The generators need H and W divisible by 16 (four stride-2 encoder layers),
so this module pads the image and the mask up to the next multiple of 16,
runs the network on ``I = Igt * (1 - M)`` and crops back. Known pixels are
then copied back from the input in 8-bit, so they are returned bit for bit
(``Ic = G(I) * M + Igt * (1 - M)``); an image whose mask has no hole comes
back unchanged.

Padding (``pad_mode``), always on the bottom and right edges:

* ``'reflect'`` (default): image and mask are mirrored about the last
  row/column (``numpy.pad(..., mode='reflect')``, repeated for pads larger
  than the image). The padded band looks like natural context, and a hole
  touching the border is mirrored with it, so mirrored hole pixels never
  serve as attention sources.
* ``'constant'``: the image is padded with zeros and the mask with ones: the
  band is treated as hole, so it never serves as context, at the cost of a
  larger hole next to the border.

``complete_uint8`` is the graph-friendly core shared with the SavedModel in
``inpaint_tf.export``; ``inpaint`` is the NumPy-facing wrapper (files and
model loading: ``inpaint_tf.inpainting``).
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import tensorflow as tf

from inpaint_tf import image_io
from inpaint_tf.keras_api import keras
from inpaint_tf.models import SIZE_MULTIPLE

PAD_MODES = ('reflect', 'constant')

# (masked [B,H,W,3] float32 in [-1,1], mask [B,H,W,1] float32 {0,1}) -> pred
# [B,H,W,3] float32 in [-1,1].
GeneratorFn = Callable[[tf.Tensor, tf.Tensor], tf.Tensor]


def uint8_to_float(x: tf.Tensor) -> tf.Tensor:
  """Maps uint8 [0,255] to float32 [-1,1]."""
  return tf.cast(x, tf.float32) / 127.5 - 1.0


def float_to_uint8(x: tf.Tensor) -> tf.Tensor:
  """Maps float32 [-1,1] to uint8 [0,255] (rounded, clipped)."""
  return tf.cast(tf.clip_by_value(tf.round((x + 1.0) * 127.5), 0.0, 255.0),
                 tf.uint8)


def _reflect_indices(size: tf.Tensor, padded: tf.Tensor) -> tf.Tensor:
  """Source index of every output position of a reflect pad at the end.

  Position ``i`` of the padded axis reads ``i`` folded into ``[0, size)``
  with period ``2 * (size - 1)`` (a triangle wave), which equals
  ``numpy.pad(..., mode='reflect')`` applied as often as needed.
  """
  i = tf.range(padded)
  period = tf.maximum(2 * (size - 1), 1)
  j = tf.math.floormod(i, period)
  return tf.where(j < size, j, period - j)


def pad_to_multiple(x: tf.Tensor, multiple: int = SIZE_MULTIPLE,
                    mode: str = 'reflect',
                    constant: float = 0.0) -> tf.Tensor:
  """Pads H and W at the bottom/right up to a multiple of ``multiple``.

  Args:
    x: [B,H,W,C] tensor, H and W may be dynamic.
    multiple: required divisor of the output H and W.
    mode: ``'reflect'`` or ``'constant'`` (see the module docstring).
    constant: fill value for ``'constant'``.

  Returns:
    [B,ceil(H/multiple)*multiple,ceil(W/multiple)*multiple,C], same dtype.
  """
  if mode not in PAD_MODES:
    raise ValueError(f'pad_mode: expected one of {PAD_MODES}, got {mode!r}')
  shape = tf.shape(x)
  h, w = shape[1], shape[2]
  ph = (h + multiple - 1) // multiple * multiple
  pw = (w + multiple - 1) // multiple * multiple
  if mode == 'constant':
    return tf.pad(x, [[0, 0], [0, ph - h], [0, pw - w], [0, 0]],
                  constant_values=tf.cast(constant, x.dtype))
  x = tf.gather(x, _reflect_indices(h, ph), axis=1)
  return tf.gather(x, _reflect_indices(w, pw), axis=2)


def complete_uint8(generator_fn: GeneratorFn, image: tf.Tensor,
                   mask: tf.Tensor, pad_mode: str = 'reflect',
                   multiple: int = SIZE_MULTIPLE) -> tf.Tensor:
  """Pads, runs the generator, crops back and copies the known pixels back.

  Works eagerly and inside ``tf.function`` with dynamic N, H, W.

  Args:
    generator_fn: ``(masked, mask) -> pred``, see ``GeneratorFn``.
    image: [N,H,W,3] uint8.
    mask: [N,H,W,1] any numeric dtype or bool; non-zero = hole.
    pad_mode: ``'reflect'`` or ``'constant'``.
    multiple: H and W are padded up to a multiple of this.

  Returns:
    [N,H,W,3] uint8: generated pixels inside the hole, the input elsewhere.
  """
  hole = tf.not_equal(mask, tf.zeros([], mask.dtype))
  m = tf.cast(hole, tf.float32)
  x = uint8_to_float(image)
  h, w = tf.shape(image)[1], tf.shape(image)[2]
  xp = pad_to_multiple(x, multiple, pad_mode, 0.0)
  mp = pad_to_multiple(m, multiple, pad_mode, 1.0)
  pred = generator_fn(xp * (1.0 - mp), mp)
  pred = float_to_uint8(pred[:, :h, :w, :])
  return tf.where(tf.broadcast_to(hole, tf.shape(image)), pred, image)


def generator_fn_of(model) -> GeneratorFn:
  """Turns a Keras generator or a plain callable into a ``GeneratorFn``.

  Args:
    model: a ``keras.Model`` called as ``model((masked, mask),
      training=False)`` (``inpaint_tf.models.Generator``), or any callable
      ``fn(masked, mask) -> pred``.
  """
  if isinstance(model, keras.Model):
    return lambda masked, mask: model((masked, mask), training=False)
  if not callable(model):
    raise ValueError('generator: expected a Keras generator, a loaded '
                     'SavedModel or a callable (masked, mask) -> pred, got '
                     f'{type(model).__name__}')
  return model


def inpaint(generator_or_callable, image_uint8, mask,
            pad_mode: str = 'reflect') -> np.ndarray:
  """Fills the holes of 8-bit images of any size.

  Args:
    generator_or_callable: an ``inpaint_tf.models.Generator`` (or any Keras
      model called as ``model((masked, mask), training=False)``), a SavedModel
      loaded with ``tf.saved_model.load`` from ``inpaint_tf.export`` (its
      ``serving_default`` signature is used, which pads and composites
      itself), or a callable ``fn(masked [N,H,W,3] float32 in [-1,1], mask
      [N,H,W,1] float32 {0,1}) -> pred [N,H,W,3] float32 in [-1,1]``.
    image_uint8: [H,W,3] or [N,H,W,3] uint8 in [0,255].
    mask: [H,W], [H,W,1] or [N,H,W,1] (or [1,H,W,1] for a batch) of any
      numeric or bool dtype; non-zero = hole, zero = known.
    pad_mode: ``'reflect'`` or ``'constant'`` (see the module docstring).

  Returns:
    uint8 array shaped like ``image_uint8``: generated pixels in the hole,
    the input pixels (bit for bit) elsewhere. If the mask has no hole the
    input is returned unchanged (a copy) and the generator is not run.

  Raises:
    ValueError: on a wrong shape or dtype, or a mask whose H, W differ from
      the image's.
  """
  if pad_mode not in PAD_MODES:
    raise ValueError(f'pad_mode: expected one of {PAD_MODES}, got {pad_mode!r}')
  image, single = image_io.as_batch('image', image_uint8, 3)
  if image.dtype != np.uint8:
    raise ValueError(f'image: expected uint8 in [0,255], got {image.dtype}')
  m, _ = image_io.as_batch('mask', mask, 1)
  if m.shape[1:3] != image.shape[1:3] or m.shape[0] not in (1, image.shape[0]):
    raise ValueError(f'mask: expected [{image.shape[1]},{image.shape[2]}] '
                     f'matching the image (N={image.shape[0]} or 1), got shape '
                     f'{list(np.shape(mask))}')
  hole = np.broadcast_to(m != 0, image.shape[:3] + (1,))
  if not hole.any():
    return np.array(image_uint8, copy=True)
  hole_u8 = hole.astype(np.uint8)
  signatures = getattr(generator_or_callable, 'signatures', None)
  if signatures is not None and 'serving_default' in signatures:
    out = signatures['serving_default'](image=tf.constant(image),
                                        mask=tf.constant(hole_u8))
    out = out['inpainted']
  else:
    out = complete_uint8(generator_fn_of(generator_or_callable),
                         tf.constant(image), tf.constant(hole_u8), pad_mode)
  out = out.numpy()
  return out[0] if single else out
