"""Small tensor operations shared by layers, losses and tools.

``resize_nearest`` reproduces TF1's ``tf.image.resize_nearest_neighbor(...,
align_corners=True)``, which the original contextual attention and GMCNN
use everywhere; TF2's ``tf.image.resize(..., 'nearest')`` picks different
pixels. ``crop_and_resize`` is ``tf.image.crop_and_resize``'s bilinear
sampling as matrix products. The gradients of both are matrix products:
TensorFlow's own (ResizeNearestNeighborGrad, CropAndResizeGradImage) have
no deterministic GPU kernel and fail under
``tf.config.experimental.enable_op_determinism``. The ``check_*`` helpers
turn bad input into one ``ValueError`` that names the argument, the
expected shape and what was given; ``op_error_text`` gives the readable
line of a TensorFlow op error.
"""

from __future__ import annotations

import re
from typing import Optional, Sequence

import tensorflow as tf

# TensorFlow's prefix on errors raised inside a tf.function or tf.data.
_FUNCTION_NODE = re.compile(r'\{\{function_node [^}]*\}\}')
# An exception raised in a py_function, as its op error shows it.
_PY_EXCEPTION = re.compile(r'^[A-Za-z_][A-Za-z0-9_.]*(Error|Exception): ')
# A failed in-graph assertion: its message comes first, in brackets. TF 2.16+
# puts the failing dataset transformation in front of it.
_ASSERTION = re.compile(r'assertion failed: \[(.*?)\](?= \[|$)')


def op_error_text(err: tf.errors.OpError) -> str:
  """The first line of an op error without TensorFlow's prefixes.

  ``{{function_node ...}}`` is dropped, and so is the ``ValueError: `` that
  an exception raised inside a ``py_function`` carries; of a failed
  in-graph assertion only its message is kept.
  """
  lines = [l.strip() for l in str(err.message).splitlines() if l.strip()]
  text = _FUNCTION_NODE.sub('', lines[0]).strip() if lines else ''
  assertion = _ASSERTION.search(text)
  if assertion:
    text = assertion.group(1)
  return _PY_EXCEPTION.sub('', text) or type(err).__name__


def resize_nearest(x: tf.Tensor, size: Sequence[int]) -> tf.Tensor:
  """Nearest-neighbour resize with TF1 ``align_corners=True`` semantics.

  The values are those of TensorFlow's ResizeNearestNeighbor (it computes
  them). For a float ``x`` the gradient is ``rows^T @ dy @ cols`` with the
  0/1 matrices of ``_nearest_sources`` instead of ResizeNearestNeighborGrad,
  so it is deterministic on GPUs (by construction; the tests run on the
  CPU) and can be differentiated again.

  Args:
    x: [B,H,W,C] tensor of any numeric dtype.
    size: (height, width) of the output, ints or scalar int tensors.

  Returns:
    [B,size[0],size[1],C] tensor of the same dtype.
  """
  x = tf.convert_to_tensor(x)
  size = tf.cast(tf.stack(list(size)), tf.int32)
  if not x.dtype.is_floating:
    return _resize_nearest_op(x, size)

  @tf.custom_gradient
  def resize(images):

    def grad(dy):
      rows = _nearest_sources(tf.shape(images)[1], size[0], dy.dtype)
      cols = _nearest_sources(tf.shape(images)[2], size[1], dy.dtype)
      return tf.einsum('bhxc,xw->bhwc', tf.einsum('yh,byxc->bhxc', rows, dy),
                       cols)

    return _resize_nearest_op(images, size), grad

  return resize(x)


def _resize_nearest_op(x: tf.Tensor, size: tf.Tensor) -> tf.Tensor:
  return tf.raw_ops.ResizeNearestNeighbor(
      images=x, size=size, align_corners=True, half_pixel_centers=False)


def _nearest_sources(in_size: tf.Tensor, out_size: tf.Tensor,
                     dtype: tf.DType) -> tf.Tensor:
  """Which input row ``resize_nearest`` copies to each output row.

  The op itself resizes the row numbers (exact in float32 below 2**24), so
  the choice is the op's by construction.

  Args:
    in_size: scalar int32, input rows (or columns).
    out_size: scalar int32, output rows.
    dtype: float dtype of the result.

  Returns:
    [out_size, in_size] 0/1 matrix, one 1 per row.
  """
  numbers = tf.reshape(tf.range(in_size, dtype=tf.float32), [1, -1, 1, 1])
  sources = _resize_nearest_op(numbers, tf.stack([out_size, 1]))
  return tf.one_hot(tf.cast(tf.reshape(sources, [-1]), tf.int32), in_size,
                    dtype=dtype)


def crop_and_resize(images: tf.Tensor, boxes: tf.Tensor,
                    crop_size: Sequence[int]) -> tf.Tensor:
  """Bilinear ``tf.image.crop_and_resize`` of box b in image b.

  The same sample positions and weights as the op (``box_indices =
  range(B)``, extrapolation value 0), applied as ``rows @ image @
  cols^T`` (``_bilinear_weights``): the values equal the op's to float
  rounding, and the gradient in ``images`` is made of matrix products,
  deterministic on GPUs (by construction; the tests run on the CPU). There
  is no gradient in ``boxes``.

  Args:
    images: [B,H,W,C] float.
    boxes: [B,4] float32 ``(y1, x1, y2, x2)``; 0 and 1 are the first and
      last pixel row (column); samples outside [0, 1] are 0.
    crop_size: (height, width) of the crops, positive ints.

  Returns:
    [B,crop_size[0],crop_size[1],C] of the images' dtype.
  """
  boxes = tf.stop_gradient(tf.cast(boxes, tf.float32))
  rows = _bilinear_weights(boxes[:, 0], boxes[:, 2], tf.shape(images)[1],
                           int(crop_size[0]))
  cols = _bilinear_weights(boxes[:, 1], boxes[:, 3], tf.shape(images)[2],
                           int(crop_size[1]))
  rows_sampled = tf.einsum('byh,bhwc->bywc', tf.cast(rows, images.dtype),
                           images)
  return tf.einsum('bywc,bxw->byxc', rows_sampled, tf.cast(cols, images.dtype))


def _bilinear_weights(start: tf.Tensor, end: tf.Tensor, in_size: tf.Tensor,
                      out_size: int) -> tf.Tensor:
  """crop_and_resize's bilinear weights along one axis, per box.

  As in the op's kernel, in float32: sample ``i`` lies at ``p = start *
  (in_size - 1) + i * ((end - start) * (in_size - 1) / (out_size - 1))``
  (at ``0.5 * (start + end) * (in_size - 1)`` when ``out_size`` is 1); it
  takes ``1 - t`` of pixel ``floor(p)`` and ``t`` of ``ceil(p)``, ``t = p -
  floor(p)``, and nothing when ``p`` is outside ``[0, in_size - 1]``.

  Args:
    start, end: [B] float32 normalised box edges.
    in_size: scalar int32, input rows (or columns).
    out_size: output rows, a positive int.

  Returns:
    [B,out_size,in_size] float32; at most two non-zeros per row.
  """
  last = tf.cast(in_size - 1, tf.float32)
  if out_size > 1:
    step = (end - start) * last / float(out_size - 1)
    positions = (start[:, tf.newaxis] * last + tf.range(
        out_size, dtype=tf.float32)[tf.newaxis, :] * step[:, tf.newaxis])
  else:
    positions = (0.5 * (start + end) * last)[:, tf.newaxis]
  low = tf.floor(positions)
  frac = (positions - low)[..., tf.newaxis]
  weights = (tf.one_hot(tf.cast(low, tf.int32), in_size) * (1.0 - frac) +
             tf.one_hot(tf.cast(tf.math.ceil(positions), tf.int32), in_size) *
             frac)
  inside = (positions >= 0.0) & (positions <= last)
  return tf.where(inside[..., tf.newaxis], weights, 0.0)


def composite(pred: tf.Tensor, images: tf.Tensor,
              masks: tf.Tensor) -> tf.Tensor:
  """The completed image: ``pred`` inside the hole, ``images`` elsewhere.

  Args:
    pred: [B,H,W,C] float, the generator's output.
    images: [B,H,W,C] float, the known image (or the ground truth).
    masks: [B,H,W,1] or [1,H,W,1] float, 1 = hole (soft values blend).

  Returns:
    [B,H,W,C] ``pred * masks + images * (1 - masks)``.
  """
  return pred * masks + images * (1.0 - masks)


def renamed(error: ValueError, name: str) -> ValueError:
  """``error`` with the argument its message starts with replaced by ``name``.

  ``'path: expected ...'`` becomes ``'<name>: expected ...'``; a message
  that does not start with an argument's name gets ``'<name>: '`` in front.
  """
  head, sep, rest = str(error).partition(': ')
  return ValueError(f'{name}: {rest if sep and head.isidentifier() else error}')


def _describe(x) -> str:
  shape = getattr(x, 'shape', None)
  dtype = getattr(x, 'dtype', None)
  dtype = getattr(dtype, 'name', dtype)
  return f'shape {list(shape) if shape is not None else None} dtype {dtype}'


def check_tensor(name: str, x, rank: int, expected: str,
                 channels: Optional[int] = None,
                 float_only: bool = True) -> None:
  """Raises ValueError unless ``x`` has the given rank, channels and dtype.

  Args:
    name: argument name used in the message.
    x: tensor or array to check (static shape is used).
    rank: required rank.
    expected: human-readable expected shape, e.g. ``'[B,H,W,C] float32'``.
    channels: required size of the last axis, if any.
    float_only: require a floating dtype.
  """
  shape = getattr(x, 'shape', None)
  dtype = tf.as_dtype(x.dtype) if hasattr(x, 'dtype') else None
  ok = shape is not None and len(shape) == rank
  if ok and channels is not None and shape[-1] is not None:
    ok = shape[-1] == channels
  if ok and float_only and (dtype is None or not dtype.is_floating):
    ok = False
  if not ok:
    raise ValueError(f'{name}: expected {expected}, got {_describe(x)}')


def hole_bboxes(mask: tf.Tensor) -> tf.Tensor:
  """Per-sample bounding box of the hole, in pixels.

  Args:
    mask: [B,H,W,1] float, 1 (> 0.5) = hole.

  Returns:
    [B,4] int32 ``(top, left, bottom, right)``, inclusive; the whole image
    ``(0, 0, H-1, W-1)`` for a sample without hole pixels.
  """
  check_tensor('mask', mask, 4, '[B,H,W,1] float', channels=1)
  hole = mask[..., 0] > 0.5
  height, width = tf.shape(mask)[1], tf.shape(mask)[2]

  def extent(any_along, size):
    idx = tf.range(size)[tf.newaxis, :]
    first = tf.reduce_min(tf.where(any_along, idx, size), axis=1)
    last = tf.reduce_max(tf.where(any_along, idx, -1), axis=1)
    empty = first > last
    return (tf.where(empty, 0, first), tf.where(empty, size - 1, last))

  top, bottom = extent(tf.reduce_any(hole, axis=2), height)
  left, right = extent(tf.reduce_any(hole, axis=1), width)
  return tf.stack([top, left, bottom, right], axis=1)
