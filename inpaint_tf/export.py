"""SavedModel export of a trained generator for TF Serving (SPEC 7).

``InpaintModule`` wraps a generator in a ``tf.Module`` with two explicit
``tf.function`` signatures, in the manner of Model Garden's
``official/core/export_base.py``:

* ``serving_default``: ``image`` uint8 [N,H,W,3] and ``mask`` uint8 [N,H,W,1]
  (non-zero = hole) -> ``inpainted`` uint8 [N,H,W,3]. Any H and W: the
  graph completes the image with the HD strategy chosen at export
  (``completion.CompletionOptions``: by default each hole region is
  completed in a crop around it, scaled down to at most 256 pixels, so
  memory stays bounded for photographs of any size), and known pixels are
  copied back from the input.
* ``serving_hd``: the same plus three scalar inputs that choose the
  strategy per request: ``hd_strategy`` (string: original, crop or
  resize), ``hd_crop_margin`` (int32) and ``hd_resize_limit`` (int32).
* ``serving_bytes``: ``images`` and ``masks``, [N] strings of encoded images
  (PNG, JPEG, BMP or GIF; each pair may have its own size) ->
  ``inpainted_bytes``, [N] PNG-encoded strings. For TF Serving's REST API,
  send ``{"signature_name": "serving_bytes", "instances": [{"images":
  {"b64": ...}, "masks": {"b64": ...}}]}``: the server decodes ``b64``
  itself, and it base64-encodes outputs whose name ends in ``_bytes``.

A mask file's hole is every pixel with a non-zero colour channel at any bit
depth (an alpha channel, if any, is ignored; JPEG masks above half the
range), the same rule as ``image_io.load_mask``.
``assets.extra/generator.json`` records the generator's config and the
export's ``CompletionOptions`` (padding and HD strategy). Only the generator's weights and the two serving graphs are
saved (no Keras objects), so ``tf.saved_model.load`` needs no
``inpaint_tf`` import.
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any, Dict

import tensorflow as tf

from inpaint_tf import completion
from inpaint_tf import fileio
from inpaint_tf import image_io
from inpaint_tf.keras_api import keras

IMAGE_SPEC = tf.TensorSpec([None, None, None, 3], tf.uint8, name='image')
MASK_SPEC = tf.TensorSpec([None, None, None, 1], tf.uint8, name='mask')
IMAGES_BYTES_SPEC = tf.TensorSpec([None], tf.string, name='images')
MASKS_BYTES_SPEC = tf.TensorSpec([None], tf.string, name='masks')
STRATEGY_SPEC = tf.TensorSpec([], tf.string, name='hd_strategy')
MARGIN_SPEC = tf.TensorSpec([], tf.int32, name='hd_crop_margin')
LIMIT_SPEC = tf.TensorSpec([], tf.int32, name='hd_resize_limit')
SERVING_DEFAULT = 'serving_default'
SERVING_HD = 'serving_hd'
SERVING_BYTES = 'serving_bytes'
OUTPUT = 'inpainted'
# Written beside the graph; TF Serving ignores ``assets.extra``.
CONFIG_FILE = os.path.join('assets.extra', 'generator.json')


def decode_mask(data: tf.Tensor) -> tf.Tensor:
  """Decodes an encoded mask image to a hole map.

  Args:
    data: scalar string, an encoded PNG/JPEG/BMP/GIF of any bit depth and
      channel count.

  Returns:
    [H,W,1] uint8, 1 = hole (``image_io.decode_hole_map``).
  """
  return tf.cast(image_io.decode_hole_map(data), tf.uint8)


class InpaintModule(tf.Module):
  """Serving wrapper of a generator; see the module docstring.

  Args:
    generator: an ``inpaint_tf.models.Generator`` (called as
      ``generator((masked, mask), training=False)``).
    options: ``completion.CompletionOptions``: the padding, and the HD
      strategy of ``serving_default`` and ``serving_bytes``.
  """

  def __init__(self, generator: keras.Model,
               options: completion.CompletionOptions,
               name: str = 'inpaint'):
    super().__init__(name=name)
    if not generator.built or not generator.variables:
      raise ValueError('generator: expected a built generator with weights '
                       '(run_dir.load_generator, or call build()), '
                       'got one without variables')
    # Only the weights are tracked, not the Keras objects: saving then skips
    # tracing every layer's call function (several times faster for
    # GEPE-Net) and the SavedModel holds just the serving graphs.
    self.generator_variables = list(generator.variables)
    self._generator_fn = (
        lambda masked, mask: generator((masked, mask), training=False))
    self._options = options

  @tf.function(input_signature=[IMAGE_SPEC, MASK_SPEC, STRATEGY_SPEC,
                                MARGIN_SPEC, LIMIT_SPEC])
  def serve_hd(self, image: tf.Tensor, mask: tf.Tensor, hd_strategy,
               hd_crop_margin, hd_resize_limit):
    """uint8 image [N,H,W,3], mask [N,H,W,1] and the strategy ->
    {'inpainted': uint8 [N,H,W,3]}."""
    shape_i, shape_m = tf.shape(image), tf.shape(mask)
    checks = [
        tf.debugging.assert_equal(
            shape_i[:3], shape_m[:3],
            message='mask: expected [N,H,W,1] with the N, H, W of image'),
        tf.debugging.assert_positive(
            shape_i[1:3],
            message='image: expected [N,H,W,3] with H > 0 and W > 0'),
    ]
    # The checks must run before any op that would fail on the shapes first.
    with tf.control_dependencies(checks):
      image = tf.identity(image)
    return {OUTPUT: completion.complete_hd(
        self._generator_fn, image, mask, hd_strategy, hd_crop_margin,
        hd_resize_limit, self._options.pad_mode)}

  @tf.function(input_signature=[IMAGE_SPEC, MASK_SPEC])
  def serve(self, image: tf.Tensor, mask: tf.Tensor):
    """uint8 image [N,H,W,3] and mask [N,H,W,1] -> {'inpainted': uint8},
    with the export's strategy."""
    options = self._options
    return self.serve_hd(image, mask, tf.constant(options.hd_strategy),
                         tf.constant(options.hd_crop_margin),
                         tf.constant(options.hd_resize_limit))

  @tf.function(input_signature=[IMAGES_BYTES_SPEC, MASKS_BYTES_SPEC])
  def serve_bytes(self, images: tf.Tensor, masks: tf.Tensor):
    """[N] encoded images and masks -> {'inpainted_bytes': [N] PNG strings}."""
    check = tf.debugging.assert_equal(
        tf.size(images), tf.size(masks),
        message='masks: expected as many masks as images')
    with tf.control_dependencies([check]):
      images = tf.identity(images)

    def one(pair):
      data, mask_data = pair
      checks = [
          tf.debugging.assert_equal(
              image_io.image_status(bytes_), image_io.STATUS_OK,
              message=f'{name}: expected an encoded PNG, JPEG, GIF or BMP '
              'image')
          for name, bytes_ in (('images', data), ('masks', mask_data))]
      with tf.control_dependencies(checks):
        data, mask_data = tf.identity(data), tf.identity(mask_data)
      image = tf.io.decode_image(data, channels=3, dtype=tf.uint8,
                                 expand_animations=False)
      mask = decode_mask(mask_data)
      # Calls the traced ``serve`` graph (which checks that the sizes
      # agree): the generator is traced once.
      out = self.serve(image[None], mask[None])[OUTPUT][0]
      return tf.io.encode_png(out)

    encoded = tf.map_fn(one, (images, masks), fn_output_signature=tf.string)
    return {'inpainted_bytes': encoded}


def export_saved_model(generator: keras.Model, output_dir: str,
                       options: completion.CompletionOptions = (
                           completion.CompletionOptions()),
                       overwrite: bool = False) -> str:
  """Writes ``generator`` as a SavedModel with the serving signatures.

  The model is saved into a temporary directory beside ``output_dir`` that
  is renamed only once complete, so a failed export leaves nothing behind.

  Args:
    generator: a built ``inpaint_tf.models.Generator``.
    output_dir: SavedModel directory to create.
    options: padding inside the graph and the default HD strategy, see
      ``inpaint_tf.completion``.
    overwrite: replace an existing non-empty ``output_dir``.

  Returns:
    The absolute path of the SavedModel.

  Raises:
    ValueError: ``output_dir`` exists and is not empty (without
      ``overwrite``).
  """
  fileio.check_output_dir(output_dir, overwrite)  # Before any tracing.
  module = InpaintModule(generator, options)
  signatures = {SERVING_DEFAULT: module.serve.get_concrete_function(),
                SERVING_HD: module.serve_hd.get_concrete_function(),
                SERVING_BYTES: module.serve_bytes.get_concrete_function()}
  with fileio.atomic_directory(output_dir, overwrite=overwrite) as tmp:
    tf.saved_model.save(module, tmp, signatures=signatures)
    config = {'generator': generator.get_config(),
              'options': dataclasses.asdict(options)}
    fileio.atomic_write(os.path.join(tmp, CONFIG_FILE),
                        json.dumps(config, indent=2, sort_keys=True,
                                   default=list) + '\n')
  return os.path.abspath(output_dir)


def read_export_config(saved_model_dir: str) -> Dict[str, Any]:
  """``assets.extra/generator.json`` of a SavedModel.

  Returns:
    ``{'generator': config or {}, 'options': CompletionOptions fields}``
    (the library's defaults where the file is missing).
  """
  try:
    with tf.io.gfile.GFile(os.path.join(saved_model_dir, CONFIG_FILE)) as f:
      config = json.load(f)
  except (OSError, ValueError, tf.errors.OpError):
    config = {}
  options = config.get('options') or dataclasses.asdict(
      completion.CompletionOptions())
  return {'generator': config.get('generator') or {}, 'options': options}


def load_saved_model(saved_model_dir: str):
  """Loads a SavedModel written by ``export_saved_model``.

  Returns:
    The object from ``tf.saved_model.load``; call
    ``obj.signatures['serving_default'](image=..., mask=...)``
    (``inpaint_tf.inpainter.load_inpainter`` wraps it).

  Raises:
    ValueError: the directory holds no SavedModel, a corrupt one, or one
      without the signature.
  """
  if not (tf.io.gfile.exists(os.path.join(saved_model_dir, 'saved_model.pb'))
          or tf.io.gfile.exists(os.path.join(saved_model_dir,
                                             'saved_model.pbtxt'))):
    raise ValueError(f'saved_model: expected a SavedModel directory '
                     f'(with saved_model.pb), got {saved_model_dir!r}')
  try:
    loaded = tf.saved_model.load(saved_model_dir)
  except (OSError, ValueError, tf.errors.OpError) as e:
    reason = ' '.join(str(getattr(e, 'message', e)).split())
    raise ValueError(f'saved_model: expected a SavedModel written by '
                     f'tools.export, got {saved_model_dir!r} that cannot be '
                     f'loaded ({reason})') from None
  if SERVING_DEFAULT not in loaded.signatures:
    raise ValueError(f'saved_model: {saved_model_dir!r} has no '
                     f'{SERVING_DEFAULT!r} signature, only '
                     f'{sorted(loaded.signatures.keys())}')
  return loaded
