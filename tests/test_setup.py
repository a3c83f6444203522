"""Tests of the set-up: tools/venv.sh (the Makefile's .venv) and pyproject.toml.

Both run in temporary copies of the files they need, so the checkout's own
``.venv`` and source tree are never touched.
"""

import os
import shutil
import stat
import subprocess
import sys
import sysconfig
import tempfile
import unittest

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VENV_SH = os.path.join(ROOT, 'tools', 'venv.sh')


def _fake_python(folder: str, version: str) -> str:
  """An executable that answers the version probe like Python ``version``."""
  path = os.path.join(folder, f'python{version}')
  with open(path, 'w') as f:
    f.write(f'#!/bin/sh\necho {version}\n')
  os.chmod(path, os.stat(path).st_mode | stat.S_IXUSR)
  return path


@pytest.mark.slow
class VenvScriptTest(unittest.TestCase):

  def setUp(self):
    super().setUp()
    self.dir = tempfile.mkdtemp()
    self.addCleanup(shutil.rmtree, self.dir)
    for name in ('requirements.txt', 'requirements-tf2.21.txt'):
      with open(os.path.join(self.dir, name), 'w') as f:
        f.write('# nothing to install\n')

  def venv_sh(self, python: str):
    """Runs venv.sh in the temporary folder; returns (status, stderr lines)."""
    run = subprocess.run(['sh', VENV_SH, python, '.venv'], cwd=self.dir,
                         capture_output=True, text=True, timeout=300)
    lines = [l for l in run.stderr.splitlines()
             if not l.startswith('WARNING: Location')]
    return run.returncode, lines

  def assert_one_error(self, python: str, pattern: str):
    status, lines = self.venv_sh(python)
    self.assertEqual(status, 1)
    self.assertEqual(len(lines), 1, lines)
    self.assertRegex(lines[0], pattern)
    self.assertFalse(os.path.exists(os.path.join(self.dir, '.venv')))

  def test_unusable_interpreters_are_one_line_and_leave_no_venv(self):
    self.assert_one_error(
        _fake_python(self.dir, '3.8'),
        r'^error: PYTHON: expected Python 3\.9-3\.11 \(pinned stack.*'
        r'3\.12-3\.13 \(current stack.*got 3\.8 from')
    self.assert_one_error(_fake_python(self.dir, '3.14'), r'got 3\.14 from')
    self.assert_one_error('no-such-python3.12',
                          r"^error: PYTHON: .*got 'no-such-python3\.12' "
                          r'\(no such command\)$')

  def test_builds_reuses_and_rebuilds(self):
    venv = os.path.join(self.dir, '.venv')
    status, lines = self.venv_sh(sys.executable)
    self.assertEqual(status, 0, lines)
    self.assertEqual(len(lines), 1, lines)
    self.assertRegex(lines[0], r'^installing requirements(-tf2\.21)?\.txt')
    with open(os.path.join(venv, '.installed')) as f:
      stamp = f.read().splitlines()
    self.assertEqual(stamp[0].split()[1], sys.version.split()[0])
    self.assertTrue(os.path.isfile(os.path.join(venv, 'bin', 'python')))

    self.assertEqual(self.venv_sh(sys.executable), (0, []))  # reused

    requirements = stamp[1].split()[0]
    with open(os.path.join(self.dir, requirements), 'a') as f:
      f.write('# changed\n')
    status, lines = self.venv_sh(sys.executable)
    self.assertEqual(status, 0, lines)
    self.assertEqual(lines[0], f'rebuilding .venv: {requirements} changed '
                     'since it was installed')

    with open(os.path.join(venv, '.installed'), 'w') as f:
      f.write('Python 3.12.1 /elsewhere/python3.12\n' + stamp[1] + '\n')
    status, lines = self.venv_sh(sys.executable)
    self.assertEqual(status, 0, lines)
    self.assertRegex(lines[0], r'^rebuilding \.venv: it was made by Python '
                     r'3\.12\.1 /elsewhere/python3\.12, now Python ')

    os.remove(os.path.join(venv, '.installed'))  # as a killed install leaves
    status, lines = self.venv_sh(sys.executable)
    self.assertEqual(status, 0, lines)
    self.assertEqual(lines[0], 'rebuilding .venv: its last install did not '
                     'finish')

  def test_failed_install_removes_the_venv(self):
    requirements = ('requirements.txt' if sys.version_info < (3, 12) else
                    'requirements-tf2.21.txt')
    with open(os.path.join(self.dir, requirements), 'w') as f:
      f.write('./no-such-package-folder\n')
    status, lines = self.venv_sh(sys.executable)
    self.assertEqual(status, 1)
    self.assertRegex(lines[-1], rf'^error: {requirements}: pip could not '
                     r'install it \(see above\); \.venv removed$')
    self.assertFalse(os.path.exists(os.path.join(self.dir, '.venv')))


class PackageTest(unittest.TestCase):
  """``pip install .`` gives ``import inpaint_tf`` and the console scripts."""

  def test_install_into_a_fresh_venv(self):
    work = tempfile.mkdtemp()
    self.addCleanup(shutil.rmtree, work)
    source = os.path.join(work, 'source')
    os.mkdir(source)
    for name in ('pyproject.toml', 'README.md'):
      shutil.copy(os.path.join(ROOT, name), source)
    for name in ('inpaint_tf', 'tools'):
      shutil.copytree(os.path.join(ROOT, name), os.path.join(source, name),
                      ignore=shutil.ignore_patterns('__pycache__'))
    venv = os.path.join(work, 'venv')
    subprocess.run([sys.executable, '-m', 'venv', '--without-pip', venv],
                   check=True)
    python = os.path.join(venv, 'bin', 'python')
    # The new venv sees this one's packages (TensorFlow, pip, setuptools),
    # so the install needs no download.
    purelib = subprocess.run(
        [python, '-c', 'import sysconfig; print(sysconfig.get_paths()'
         '["purelib"])'], capture_output=True, text=True, check=True)
    with open(os.path.join(purelib.stdout.strip(), 'outer.pth'), 'w') as f:
      f.write(sysconfig.get_paths()['purelib'] + '\n')
    install = subprocess.run(
        [python, '-m', 'pip', 'install', '--quiet', '--no-deps',
         '--no-build-isolation', source], capture_output=True, text=True,
        timeout=300)
    self.assertEqual(install.returncode, 0, install.stderr)

    elsewhere = os.path.join(work, 'elsewhere')
    os.mkdir(elsewhere)
    where = subprocess.run(
        [python, '-c', 'import inpaint_tf, inpaint_tf.tools.train; '
         'print(inpaint_tf.__file__)'], cwd=elsewhere, capture_output=True,
        text=True, timeout=300)
    self.assertEqual(where.returncode, 0, where.stderr)
    self.assertTrue(where.stdout.startswith(venv), where.stdout)
    self.assertFalse(os.path.exists(os.path.join(
        purelib.stdout.strip(), 'tools')))  # no generic top-level name

    script = os.path.join(venv, 'bin', 'inpaint-tf-train')
    run = subprocess.run([script, '--help'], cwd=elsewhere,
                         capture_output=True, text=True, timeout=300)
    checkout = subprocess.run([sys.executable, '-m', 'tools.train', '--help'],
                              cwd=ROOT, capture_output=True, text=True,
                              timeout=300)
    self.assertEqual(run.returncode, checkout.returncode)  # absl's: 1
    self.assertIn('Trains GEPE-Net', run.stdout)
    self.assertIn('--pretrain_steps', run.stdout)
    self.assertEqual(run.stdout.replace(script, 'TOOL'),
                     checkout.stdout.replace(
                         os.path.join(ROOT, 'tools', 'train.py'), 'TOOL'))
    bad = subprocess.run([script, '--data=skimage', '--max_steps=0',
                          '--log_dir=' + work],
                         cwd=elsewhere, capture_output=True, text=True,
                         timeout=300)
    self.assertEqual(bad.returncode, 1)
    self.assertRegex(bad.stderr, r'^error: --max_steps: ')
    self.assertEqual(len(bad.stderr.splitlines()), 1, bad.stderr)


if __name__ == '__main__':
  unittest.main()
