"""The one place the library reaches Keras 2 from.

``keras`` is ``tf.keras`` on TensorFlow up to 2.15 (where it is Keras 2) and
the ``tf_keras`` package on TensorFlow 2.16 and newer (where ``tf.keras``
is Keras 3, which the library does not support). Nothing depends on the
``TF_USE_LEGACY_KERAS`` environment variable or on whether TensorFlow was
imported first. Every module of the library, the tools and the tests write
``from inpaint_tf.keras_api import keras``.
"""

import tensorflow as tf


def _tf_version() -> tuple:
  major, minor = tf.__version__.split('.')[:2]
  return int(major), int(minor)


if _tf_version() < (2, 16):
  keras = tf.keras
else:
  try:
    import tf_keras as keras  # pylint: disable=g-import-not-at-top
  except ImportError as err:
    raise ImportError(
        f'inpaint_tf needs Keras 2: on TensorFlow {tf.__version__} install '
        f'the matching tf-keras (pip install "tf-keras~={tf.__version__}"); '
        'see requirements-tf2.21.txt') from err

__all__ = ['keras']
