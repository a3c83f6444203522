"""MirroredStrategy tests of inpaint_tf.training (subprocess).

``training_determinism_main.py`` runs in a fresh process with two logical
CPU devices and op determinism on: two real training steps (critic and
generator updates, gradient penalty included) on two replicas against one
device with the same global batch, and one AWA step on two replicas
against one device (``slow``); and one S-Net step the same way, which CI
runs on both stacks. Resuming is tested through the training tool
(``test_training.py``: a signal, then a rerun; ``test_multi_worker.py``: a
kill, then a restart), against uninterrupted runs.
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile

import pytest
import tensorflow as tf

import training_testutil as util

_HERE = os.path.dirname(os.path.abspath(__file__))


def _run_determinism_main(test_case, *args):
  """``training_determinism_main.py``'s JSON result, in a fresh process."""
  root = tempfile.mkdtemp()
  test_case.addClassCleanup(shutil.rmtree, root, ignore_errors=True)
  work = os.path.join(root, 'determinism')
  os.makedirs(work, exist_ok=True)
  images = util.write_images(os.path.join(root, 'determinism_images'))
  proc = subprocess.run(
      [sys.executable, os.path.join(_HERE, 'training_determinism_main.py'),
       images, work, *args], capture_output=True, text=True, timeout=600,
      check=False)
  if proc.returncode != 0:
    raise AssertionError(f'determinism run failed:\n{proc.stderr[-4000:]}')
  return json.loads(proc.stdout.strip().splitlines()[-1])


class TwoReplicaStepTest(tf.test.TestCase):
  """One S-Net step on two replicas equals one on one device (fast)."""

  def test_mirrored_step_matches_single_device(self):
    result = _run_determinism_main(self, 'fast')
    self.assertEqual(result['replicas'], 2)
    self.assertLess(result['mirrored_max_diff'], 1e-5)
    self.assertLess(result['mirrored_loss_diff'], 1e-5)
    self.assertGreater(result['moved'], 5e-4)  # Adam at lr 1e-3 moved them.


@pytest.mark.slow
class DistributedTrainingTest(tf.test.TestCase):

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    cls.result = _run_determinism_main(cls)

  def test_mirrored_matches_single_device(self):
    self.assertEqual(self.result['replicas'], 2)
    # Two Adam steps of lr 1e-3 move weights by up to 2e-3; the replicas'
    # sums differ from one device's only by float rounding.
    self.assertLess(self.result['mirrored_max_diff'], 1e-5)
    self.assertLess(self.result['mirrored_loss_diff'], 1e-5)

  def test_mirrored_awa_matches_single_device(self):
    self.assertLess(self.result['awa_max_diff'], 1e-5)
    self.assertLess(self.result['awa_scalar_rel_diff'], 1e-4)


if __name__ == '__main__':
  tf.test.main()
