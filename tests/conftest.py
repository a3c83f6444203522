"""Suite-wide test set-up."""

import os

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '3')
# The kernels the tools use (tools/_cli.py).
os.environ.setdefault('TF_ENABLE_ONEDNN_OPTS', '1')


def pytest_collection_modifyitems(items):
  # tf.test.TestCase defines a deprecated ``test_session`` context manager
  # that pytest collects as a test and reports as skipped; it tests nothing.
  items[:] = [item for item in items if item.name != 'test_session']
