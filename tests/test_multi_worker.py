"""Two real ``tools.train`` worker processes under MultiWorkerMirroredStrategy.

The workers talk over 127.0.0.1 (``TF_CONFIG``). Checked: both train to the
target step and only the chief keeps checkpoints; after both are killed at
a step (worker 1 first, as when a machine fails, then the chief) and
restarted on the same ``--log_dir``, the run resumes from the chief's last
checkpoint and ends with the same weights as an uninterrupted two-worker
run (``--deterministic``; two workers sum in a fixed order). Every wait is
bounded.
"""

import json
import os
import socket
import subprocess
import sys
import threading
import time

import pytest
import tensorflow as tf

import training_testutil as util

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_TIMEOUT = 240  # Seconds a worker may take before it is killed.
_FLAGS = ('--flagfile=flags/demo.cfg', '--variant=snet', '--image_size=32',
          '--eval_every=0', '--cnum=4', '--batch_size=2',
          '--local_filters=4,4,4,4', '--global_filters=4,4,4,4',
          '--pretrain_steps=0', '--checkpoint_every=2', '--log_every=1',
          '--deterministic', '--strategy=multi_worker', '--max_steps=6')


def _free_ports(n):
  sockets = [socket.socket() for _ in range(n)]
  for s in sockets:
    s.bind(('127.0.0.1', 0))
  ports = [s.getsockname()[1] for s in sockets]
  for s in sockets:
    s.close()
  return ports


class _Worker:
  """One ``tools.train`` process of a two-worker cluster."""

  def __init__(self, index, ports, data, log_dir):
    cluster = {'worker': [f'127.0.0.1:{p}' for p in ports]}
    env = dict(os.environ, TF_CONFIG=json.dumps(
        {'cluster': cluster, 'task': {'type': 'worker', 'index': index}}))
    self.proc = subprocess.Popen(
        [sys.executable, '-m', 'tools.train', *_FLAGS, f'--data={data}',
         f'--log_dir={log_dir}'], cwd=_ROOT, env=env, text=True,
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    self.lines = []
    self._timer = threading.Timer(_TIMEOUT, self.proc.kill)
    self._timer.start()
    self._reader = threading.Thread(target=self._read, daemon=True)
    self._reader.start()

  def _read(self):
    for line in self.proc.stderr:
      self.lines.append(line)

  def seen(self, text):
    return any(text in line for line in self.lines)

  def wait(self):
    self.proc.wait()
    self._reader.join(10)
    self._timer.cancel()
    return self.proc.returncode, ''.join(self.lines)


def _start_cluster(data, log_dir):
  ports = _free_ports(2)
  return [_Worker(i, ports, data, log_dir) for i in range(2)]


def _kill_after(workers, step):
  """Kills worker 1, then the chief, once the chief has logged ``step``."""
  chief = workers[0]
  while not (chief.seen(f' {step}/6 ') or chief.proc.poll() is not None):
    time.sleep(0.05)
  workers[1].proc.kill()
  chief.proc.kill()


@pytest.mark.slow
class MultiWorkerToolTest(util.TrainingTestCase):

  def test_two_workers_train_and_resume_after_a_kill(self):
    whole = os.path.join(self.root, 'whole')
    killed = os.path.join(self.root, 'killed')
    # An uninterrupted cluster and one killed at step 3, side by side.
    clusters = [_start_cluster(self.images, d) for d in (whole, killed)]
    _kill_after(clusters[1], step=3)
    for status, err in [w.wait() for w in clusters[0]]:
      self.assertEqual(status, 0, err[-3000:])
    for status, err in [w.wait() for w in clusters[1]]:
      self.assertEqual(status, -9, err[-3000:])
    self.assertEqual(tf.train.latest_checkpoint(os.path.join(whole, 'ckpt')),
                     os.path.join(whole, 'ckpt', 'ckpt-6'))
    self.assertEqual(sorted(os.listdir(whole)),  # The chief's files only.
                     ['ckpt', 'config.json', 'generator.json', 'tb'])
    saved = tf.train.latest_checkpoint(os.path.join(killed, 'ckpt'))
    self.assertIsNotNone(saved)
    self.assertNotEqual(saved, os.path.join(killed, 'ckpt', 'ckpt-6'))

    results = [w.wait() for w in _start_cluster(self.images, killed)]
    for status, err in results:
      self.assertEqual(status, 0, err[-3000:])
    self.assertIn(f'resuming from {saved}', results[0][1])
    self.assertEqual(tf.train.latest_checkpoint(os.path.join(killed, 'ckpt')),
                     os.path.join(killed, 'ckpt', 'ckpt-6'))
    self.assertNotIn('.ckpt_worker1', os.listdir(killed))
    expected = util.checkpoint_values(os.path.join(whole, 'ckpt'))
    resumed = util.checkpoint_values(os.path.join(killed, 'ckpt'))
    self.assertCountEqual(resumed, expected)
    for name, value in expected.items():
      self.assertAllEqual(resumed[name], value, msg=name)


if __name__ == '__main__':
  tf.test.main()
