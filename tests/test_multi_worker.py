"""Two real ``tools.train`` worker processes under MultiWorkerMirroredStrategy.

The workers talk over 127.0.0.1 (``TF_CONFIG``). Checked: both train to the
target step and only the chief keeps checkpoints; after both are killed at
a step (worker 1 first, as when a machine fails, then the chief) and
restarted on the same ``--log_dir``, the run resumes from the chief's last
checkpoint and ends with the same weights as an uninterrupted two-worker
run (``--deterministic``; two workers sum in a fixed order). SIGTERM sent to
one worker only stops both after the same step, with one checkpoint of that
step that both wrote, exit status 143 in both, and the rerun again ends
with the uninterrupted run's weights. Every wait is bounded.
"""

import json
import os
import re
import signal
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
_STEPS = 10
_FLAGS = ('--flagfile=flags/demo.cfg', '--variant=snet', '--image_size=32',
          '--eval_every=0', '--cnum=4', '--batch_size=2',
          '--local_filters=4,4,4,4', '--global_filters=4,4,4,4',
          '--pretrain_steps=0', '--checkpoint_every=2', '--log_every=1',
          '--deterministic', '--strategy=multi_worker', f'--max_steps={_STEPS}')


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


def _wait_for_step(chief, step):
  """Waits until the chief has logged ``step`` (or ended)."""
  while not (chief.seen(f' {step}/{_STEPS} ') or chief.proc.poll() is not None):
    time.sleep(0.05)


@pytest.mark.slow
class MultiWorkerToolTest(util.TrainingTestCase):
  """An uninterrupted cluster, one killed and one sent SIGTERM, side by side
  (``setUpClass``); the tests check them and rerun the stopped ones."""

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    cls.dirs = {name: os.path.join(cls.root, name)
                for name in ('whole', 'killed', 'sigterm')}
    clusters = {name: _start_cluster(cls.images, d)
                for name, d in cls.dirs.items()}
    # Worker 1 first, as when a machine fails, then the chief.
    _wait_for_step(clusters['killed'][0], 3)
    for worker in reversed(clusters['killed']):
      worker.proc.kill()
    # A scheduler pre-empting the machine of worker 1 only.
    _wait_for_step(clusters['sigterm'][0], 3)
    clusters['sigterm'][1].proc.send_signal(signal.SIGTERM)
    cls.results = {name: [w.wait() for w in cluster]
                   for name, cluster in clusters.items()}

  def _assert_rerun_ends_as_whole(self, log_dir, saved):
    results = [w.wait() for w in _start_cluster(self.images, log_dir)]
    for status, err in results:
      self.assertEqual(status, 0, err[-3000:])
    self.assertIn(f'resuming from {saved}', results[0][1])
    self.assertEqual(tf.train.latest_checkpoint(os.path.join(log_dir, 'ckpt')),
                     os.path.join(log_dir, 'ckpt', f'ckpt-{_STEPS}'))
    self.assertNotIn('.ckpt_worker1', os.listdir(log_dir))
    expected = util.checkpoint_values(os.path.join(self.dirs['whole'], 'ckpt'))
    resumed = util.checkpoint_values(os.path.join(log_dir, 'ckpt'))
    self.assertCountEqual(resumed, expected)
    for name, value in expected.items():
      self.assertAllEqual(resumed[name], value, msg=name)

  def test_two_workers_train_and_resume_after_a_kill(self):
    whole, killed = self.dirs['whole'], self.dirs['killed']
    for status, err in self.results['whole']:
      self.assertEqual(status, 0, err[-3000:])
    for status, err in self.results['killed']:
      self.assertEqual(status, -9, err[-3000:])
    self.assertEqual(tf.train.latest_checkpoint(os.path.join(whole, 'ckpt')),
                     os.path.join(whole, 'ckpt', f'ckpt-{_STEPS}'))
    self.assertEqual(sorted(os.listdir(whole)),  # The chief's files only.
                     ['ckpt', 'config.json', 'generator.json', 'tb'])
    saved = tf.train.latest_checkpoint(os.path.join(killed, 'ckpt'))
    self.assertIsNotNone(saved)
    self.assertNotEqual(saved, os.path.join(killed, 'ckpt', f'ckpt-{_STEPS}'))
    self._assert_rerun_ends_as_whole(killed, saved)

  def test_sigterm_to_one_worker_stops_both_at_one_checkpoint(self):
    log_dir = self.dirs['sigterm']
    stopped = []
    for status, err in self.results['sigterm']:
      self.assertEqual(status, 143, err[-3000:])
      match = re.search(r'stopped by SIGTERM at step (\d+); checkpoint (\S+) '
                        'written', err)
      self.assertIsNotNone(match, err[-3000:])
      stopped.append((int(match.group(1)), match.group(2)))
    # The same step in both, saved by both in the chief's directory.
    self.assertEqual(stopped[0], stopped[1])
    step, saved = stopped[0]
    self.assertBetween(step, 4, _STEPS - 1)
    self.assertEqual(saved, os.path.join(log_dir, 'ckpt', f'ckpt-{step}'))
    self.assertEqual(tf.train.latest_checkpoint(os.path.join(log_dir, 'ckpt')),
                     saved)
    self.assertNotIn('.ckpt_worker1', os.listdir(log_dir))
    self._assert_rerun_ends_as_whole(log_dir, saved)


if __name__ == '__main__':
  tf.test.main()
