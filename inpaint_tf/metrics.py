"""Image-quality metrics on 8-bit images, FID features, classical baselines.

GEPE-Net (Sec. IV) reports L1 (as a percentage), PSNR and SSIM; AWA adds
MAE, LPIPS and FID. All metrics here take uint8 images, ``[H,W,3]`` (one
value) or ``[N,H,W,3]`` (one value per image, so that results can be
grouped by mask type and hole-ratio bin):

* ``l1``: mean absolute error with pixels in [0, 1]; ``l1_percent`` is
  100 times that (the papers' "L1 (%)"); ``mae``: the same on 0..255.
* ``psnr``: ``10 log10(255^2 / MSE)`` over all pixels and channels, capped
  at ``PSNR_CAP`` = 100 dB, so an exact reconstruction (a flat image that
  cv2 fills perfectly) has a finite score and means stay finite.
* ``ssim``: ``tf.image.ssim`` with ``max_val=255`` (11x11 Gaussian window,
  sigma 1.5, k1 0.01, k2 0.03, valid window positions, mean over
  channels), the same definition as scikit-image's
  ``structural_similarity(gaussian_weights=True, sigma=1.5,
  use_sample_covariance=False)``.
* ``frechet_distance``: the Frechet distance between two sets of
  activations (equal to TF-GAN's); with ``InceptionFeatures`` (Keras
  InceptionV3, 2048-d average-pool features of 299x299 inputs) it is the
  FID.
* ``cv2_inpaint``: OpenCV's classical inpainting (Telea or Navier-Stokes),
  the baseline printed beside the network.

LPIPS lives in ``inpaint_tf.lpips``.
"""

from __future__ import annotations

from typing import Optional, Tuple, Union

import cv2
import numpy as np
import tensorflow as tf

from inpaint_tf import image_io
from inpaint_tf import weights as weights_lib
from inpaint_tf.keras_api import keras

INCEPTION_WEIGHTS_FILE = (
    'inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5')
INCEPTION_WEIGHTS_URL = ('https://storage.googleapis.com/tensorflow/'
                         'keras-applications/inception_v3/'
                         + INCEPTION_WEIGHTS_FILE)
INCEPTION_INPUT_SIZE = 299
# PSNR of identical images (and the ceiling of every PSNR), dB.
PSNR_CAP = 100.0
CV2_INPAINT_METHODS = {'telea': cv2.INPAINT_TELEA, 'ns': cv2.INPAINT_NS}
_HDF5_SIGNATURE = b'\x89HDF\r\n\x1a\n'
# tf.image.ssim's default window.
SSIM_WINDOW = 11

Metric = Union[float, np.ndarray]


def _pair(a, b) -> Tuple[np.ndarray, np.ndarray, bool]:
  a, single = image_io.as_batch('a', a, dtype=np.uint8)
  b, _ = image_io.as_batch('b', b, dtype=np.uint8)
  if a.shape != b.shape:
    raise ValueError(f'b: expected the shape of a {list(a.shape)}, got '
                     f'{list(b.shape)}')
  return a, b, single


def _out(values: np.ndarray, single: bool) -> Metric:
  return float(values[0]) if single else values


def mae(a, b) -> Metric:
  """Mean absolute error on 0..255 per image.

  Args:
    a: uint8 [H,W,3] or [N,H,W,3].
    b: same shape as ``a``.

  Returns:
    float, or float64 [N].
  """
  a, b, single = _pair(a, b)
  diff = np.abs(a.astype(np.float64) - b.astype(np.float64))
  return _out(diff.mean(axis=(1, 2, 3)), single)


def l1(a, b) -> Metric:
  """Mean absolute error with pixels scaled to [0, 1] (``mae / 255``)."""
  a, b, single = _pair(a, b)
  return _out(np.asarray(mae(a, b)) / 255., single)


def l1_percent(a, b) -> Metric:
  """``100 * l1``: the papers' "L1 (%)"."""
  a, b, single = _pair(a, b)
  return _out(np.asarray(l1(a, b)) * 100., single)


def psnr(a, b) -> Metric:
  """PSNR in dB per image, ``10 log10(255^2 / MSE)``, at most ``PSNR_CAP``.

  Identical images score ``PSNR_CAP`` (100 dB, an MSE of 6.5e-6 grey
  levels squared) instead of infinity.

  Args:
    a: uint8 [H,W,3] or [N,H,W,3].
    b: same shape as ``a``.

  Returns:
    float, or float64 [N].
  """
  a, b, single = _pair(a, b)
  mse = np.square(a.astype(np.float64) - b.astype(np.float64)).mean(
      axis=(1, 2, 3))
  with np.errstate(divide='ignore'):
    values = np.minimum(10. * np.log10(255. ** 2 / mse), PSNR_CAP)
  return _out(values, single)


def ssim(a, b) -> Metric:
  """SSIM per image with ``tf.image.ssim`` (max_val 255, 11x11 Gaussian).

  Args:
    a: uint8 [H,W,3] or [N,H,W,3], H and W >= 11.
    b: same shape as ``a``.

  Returns:
    float, or float64 [N].
  """
  a, b, single = _pair(a, b)
  if min(a.shape[1:3]) < SSIM_WINDOW:
    raise ValueError(f'a: expected images of at least {SSIM_WINDOW}x'
                     f'{SSIM_WINDOW} pixels for SSIM, got shape '
                     f'{list(a.shape)}')
  values = tf.image.ssim(tf.constant(a, tf.float32), tf.constant(b, tf.float32),
                         max_val=255.)
  return _out(values.numpy().astype(np.float64), single)


def _hole_plane(mask: np.ndarray) -> np.ndarray:
  mask = np.asarray(mask)
  if mask.ndim >= 3 and mask.shape[-1] == 1:
    mask = mask[..., 0]
  if mask.dtype.kind == 'f':
    return mask > 0.5
  return mask != 0


def cv2_inpaint(image, mask, method: str = 'telea',
                radius: int = 3) -> np.ndarray:
  """OpenCV's classical inpainting (``cv2.inpaint``) as a baseline.

  Args:
    image: uint8 [H,W,3] or [N,H,W,3] (channel order is irrelevant: both
      methods treat channels alike).
    mask: [H,W], [H,W,1], [N,H,W] or [N,H,W,1]; holes are the non-zero
      pixels (> 0.5 for float masks). A single mask applies to every image.
    method: 'telea' (``cv2.INPAINT_TELEA``) or 'ns' (``cv2.INPAINT_NS``).
    radius: neighbourhood radius in pixels.

  Returns:
    uint8 array shaped like ``image``.
  """
  if method not in CV2_INPAINT_METHODS:
    raise ValueError(f'method: expected one of {sorted(CV2_INPAINT_METHODS)},'
                     f' got {method!r}')
  if not isinstance(radius, (int, np.integer)) or radius < 1:
    raise ValueError(f'radius: expected a positive int, got {radius!r}')
  images, single = image_io.as_batch('image', image, dtype=np.uint8)
  holes = _hole_plane(mask)
  if holes.shape == images.shape[1:3]:
    holes = np.broadcast_to(holes, images.shape[:3])
  if holes.shape != images.shape[:3]:
    raise ValueError(f'mask: expected [H,W,1] or [N,H,W,1] matching image '
                     f'{list(images.shape)}, got {list(np.shape(mask))}')
  out = np.stack([
      cv2.inpaint(np.ascontiguousarray(im), h.astype(np.uint8), int(radius),
                  CV2_INPAINT_METHODS[method])
      for im, h in zip(images, holes)
  ])
  return out[0] if single else out


def _psd_sqrt(matrix: np.ndarray) -> np.ndarray:
  """The symmetric square root of a symmetric PSD matrix, float64.

  By eigen-decomposition; eigenvalues below ``1e-10`` (rounding noise of a
  rank-deficient covariance, e.g. fewer images than feature dimensions)
  count as zero.
  """
  values, vectors = np.linalg.eigh((matrix + matrix.T) / 2)
  roots = np.sqrt(np.where(values < 1e-10, 0., values))
  return (vectors * roots) @ vectors.T


def frechet_distance(activations1, activations2) -> float:
  """Frechet distance between two sets of activations.

  ``|m1 - m2|^2 + Tr(C1 + C2 - 2 (C1 C2)^(1/2))`` with sample means and
  unbiased covariances, in float64. The trace of the square root is taken,
  as TF-GAN's ``frechet_classifier_distance_from_activations`` does, as
  ``Tr((C1^(1/2) C2 C1^(1/2))^(1/2))``, which has the same value and only
  needs symmetric eigen-decompositions; the two agree to 1e-6 relative
  (``tests/test_metrics.py``), so FIDs match TF-GAN's on every stack.

  Args:
    activations1: [N1, D] array.
    activations2: [N2, D] array.

  Returns:
    The distance (FID when the activations are ``InceptionFeatures``).
  """
  acts = []
  for name, x in (('activations1', activations1),
                  ('activations2', activations2)):
    x = np.asarray(x, np.float64)
    if x.ndim != 2 or x.shape[0] < 2:
      raise ValueError(f'{name}: expected [N,D] activations with N >= 2, got '
                       f'shape {list(x.shape)}')
    acts.append(x)
  if acts[0].shape[1] != acts[1].shape[1]:
    raise ValueError(f'activations2: expected D = {acts[0].shape[1]} like '
                     f'activations1, got shape {list(acts[1].shape)}')
  means = [x.mean(axis=0) for x in acts]
  covs = [np.cov(x, rowvar=False).reshape(x.shape[1], x.shape[1])
          for x in acts]
  root1 = _psd_sqrt(covs[0])
  trace_sqrt_product = np.trace(_psd_sqrt(root1 @ covs[1] @ root1))
  return float(np.sum((means[0] - means[1]) ** 2) + np.trace(covs[0])
               + np.trace(covs[1]) - 2 * trace_sqrt_product)


class InceptionFeatures:
  """InceptionV3 average-pool features (2048-d), the activations of FID.

  Weights are never downloaded: they come from ``weights_path`` or from the
  Keras cache (``INCEPTION_WEIGHTS_FILE`` under ``~/.keras/models/``).
  Images are resized bilinearly to ``input_size`` and scaled to [-1, 1]
  (``inception_v3.preprocess_input``).
  """

  def __init__(self, weights_path: Optional[str] = None,
               input_size: int = INCEPTION_INPUT_SIZE, batch_size: int = 32,
               use_tf_function: bool = True):
    """Builds the network and loads its weights.

    Args:
      weights_path: Keras ``.h5`` weights of InceptionV3 without top, as
        published at ``INCEPTION_WEIGHTS_URL``; None looks in the Keras
        cache.
      input_size: network input side (>= 75; 299 for FID).
      batch_size: images per forward pass.
      use_tf_function: run the network as a ``tf.function`` (faster per
        batch, a few seconds of tracing first).

    Raises:
      ValueError: no weights file, or a file that does not fit the network.
    """
    weights_path = weights_lib.resolve(
        'weights_path',
        weights_lib.FROM_CACHE if weights_path is None else weights_path,
        what='InceptionV3 weights without top (.h5)',
        cache_file=INCEPTION_WEIGHTS_FILE, url=INCEPTION_WEIGHTS_URL)
    with open(weights_path, 'rb') as f:
      if f.read(len(_HDF5_SIGNATURE)) != _HDF5_SIGNATURE:
        raise ValueError(f'weights_path: expected an InceptionV3 .h5 weights '
                         f'file, got {weights_path!r} (not HDF5)')
    if not isinstance(input_size, (int, np.integer)) or input_size < 75:
      raise ValueError(f'input_size: expected an int >= 75, got '
                       f'{input_size!r}')
    if not isinstance(batch_size, (int, np.integer)) or batch_size <= 0:
      raise ValueError(f'batch_size: expected a positive int, got '
                       f'{batch_size!r}')
    self.weights_path = weights_path
    self.input_size = int(input_size)
    self.batch_size = int(batch_size)
    self.model = keras.applications.InceptionV3(
        include_top=False, weights=None, pooling='avg',
        input_shape=(self.input_size, self.input_size, 3))
    try:
      self.model.load_weights(weights_path)
    except (ValueError, OSError, KeyError) as e:
      raise ValueError(f'weights_path: expected InceptionV3 (no top) weights, '
                       f'got {weights_path!r} ({e})') from None
    self._forward = (tf.function(self._features, reduce_retracing=True)
                     if use_tf_function else self._features)

  def _features(self, images: tf.Tensor) -> tf.Tensor:
    x = tf.image.resize(tf.cast(images, tf.float32),
                        (self.input_size, self.input_size), 'bilinear')
    x = keras.applications.inception_v3.preprocess_input(x)
    return self.model(x, training=False)

  def __call__(self, images) -> np.ndarray:
    """Features of uint8 images.

    Args:
      images: uint8 [N,H,W,3] or [H,W,3].

    Returns:
      float32 [N,2048] (or [2048]).
    """
    images, single = image_io.as_batch('images', images, dtype=np.uint8)
    feats = [self._forward(tf.constant(images[i:i + self.batch_size])).numpy()
             for i in range(0, len(images), self.batch_size)]
    feats = np.concatenate(feats, axis=0)
    return feats[0] if single else feats


# The per-image metrics by name (each maps images a, b to values per image).
PER_IMAGE = {'l1': l1, 'l1_percent': l1_percent, 'psnr': psnr, 'ssim': ssim,
             'mae': mae}
