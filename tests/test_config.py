"""Tests of inpaint_tf.config, config_fields and config_flags."""

import dataclasses
import json
import os
import re
import subprocess
import sys
import tempfile
import typing
import unittest

from absl import flags

from inpaint_tf import config as config_lib
from inpaint_tf import config_fields
from inpaint_tf import config_flags
from inpaint_tf import run_dir
import training_testutil as util

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _parse(*args):
  values = flags.FlagValues()
  config_flags.define_flags(values)
  values(['prog', *args])
  return config_flags.experiment_from_flags(values)


def _tool(*args):
  return subprocess.run([sys.executable, '-m', 'tools.train', *args],
                        cwd=_ROOT, capture_output=True, text=True,
                        timeout=600, check=False)


class ExperimentConfigTest(unittest.TestCase):

  def test_sections_and_unique_fields(self):
    config = config_lib.ExperimentConfig()
    self.assertEqual([f.name for f in dataclasses.fields(config)],
                     list(config_lib.SECTIONS))
    names = [f.name for _, f in config_lib.fields()]
    self.assertEqual(len(names), len(set(names)))
    counted = sum(len(dataclasses.fields(cls))
                  for cls in config_lib.SECTIONS.values())
    self.assertEqual(len(names), counted)
    for section, f in config_lib.fields():
      self.assertTrue(f.metadata['help'], f.name)
      self.assertIs(getattr(config, section).__dataclass_fields__[f.name], f)

  def test_replace_and_value(self):
    config = config_lib.ExperimentConfig().replace(variant='snet',
                                                   image_size=64)
    self.assertEqual(config.model.variant, 'snet')
    self.assertEqual(config.train.image_size, 64)
    self.assertEqual(config.value('variant'), 'snet')
    self.assertEqual(config.losses, config_lib.LossConfig())
    with self.assertRaisesRegex(ValueError, '^no_such: expected a field'):
      config.replace(no_such=1)

  def test_checks_choices_and_minimums(self):
    for name, value, pattern in (
        ('variant', 'unet', "^variant: expected one of .*got 'unet'"),
        ('cnum', 0, '^cnum: expected >= 1, got 0'),
        ('eval_every', -1, '^eval_every: expected >= 0, got -1'),
        ('learning_rate', 0.0, '^learning_rate: expected > 0, got 0.0'),
        ('reweight', 'uncertainty', '^reweight: expected one of')):
      with self.assertRaisesRegex(ValueError, pattern):
        config_lib.ExperimentConfig().replace(**{name: value})

  def test_scaled_sizes_follow_the_image_size(self):
    paper = config_lib.ExperimentConfig()
    scaled = [f.name for _, f in config_lib.fields() if f.metadata['scaled']]
    self.assertCountEqual(scaled, [
        'hole_size', 'margin', 'max_delta', 'ff_max_length',
        'ff_max_brush_width', 'local_size', 'svw_size'])
    config = paper.replace(image_size=64).scaled(explicit=('hole_size',))
    for name in scaled:
      want = (paper.value(name) if name == 'hole_size'
              else int(round(paper.value(name) * 64 / 256)))
      self.assertEqual(config.value(name), want, name)
    # 2.5 rounds to even.
    self.assertEqual(config_fields.scaled_size(20, 32), 2)
    self.assertEqual(config_fields.scaled_size(128, 256), 128)

  def test_json_round_trip(self):
    config = util.tiny_config(aspc_rates=(1, 3), adversarial_learning_rate=1e-5)
    text = json.dumps(config.to_dict())
    self.assertEqual(config_lib.ExperimentConfig.from_dict(json.loads(text)),
                     config)

  def test_resume_conflicts(self):
    saved = util.tiny_config().to_dict()
    config = util.tiny_config(variant='snet', learning_rate=3e-4,
                              max_steps=9, gamma_adv=0.5)
    conflicts, changes = run_dir.resume_conflicts(saved, config)
    self.assertEqual(conflicts, ["variant: 'gepenet' -> 'snet'",
                                 'gamma_adv: 0.01 -> 0.5'])
    self.assertEqual(changes, ['learning_rate: 0.0001 -> 0.0003',
                               'max_steps: 40000 -> 9'])
    del saved['model']['cnum']
    conflicts, _ = run_dir.resume_conflicts(saved, util.tiny_config())
    self.assertEqual(conflicts, ["cnum: '<not recorded>' -> 4"])


class OlderRunConfigTest(unittest.TestCase):
  """config.json of runs from before ``vgg_convention`` existed."""

  def test_tpl_tsl_runs_keep_keras_weights_and_others_resume(self):
    for aux, expected in (('tpl_tsl', 'keras_caffe'), ('none', 'torchvision')):
      with tempfile.TemporaryDirectory() as log_dir:
        config = util.tiny_config(aux_losses=aux, vgg_weights=None)
        values = config.to_dict()
        del values['losses']['vgg_convention']
        with open(os.path.join(log_dir, run_dir.CONFIG_JSON), 'w') as f:
          json.dump(values, f)
        self.assertEqual(run_dir.load_config(log_dir).losses.vgg_convention,
                         expected)
        resumed = config.replace(vgg_convention=expected)
        self.assertEqual(run_dir.record_config(log_dir, resumed), [])
        if aux == 'tpl_tsl':
          with self.assertRaisesRegex(
              ValueError, "^vgg_convention: expected the value of the run .*"
              "'keras_caffe' -> 'torchvision'"):
            run_dir.record_config(log_dir, config)


class ContractTest(unittest.TestCase):
  """Bad settings name themselves."""

  def test_seeds_in_range(self):
    for name in ('seed', 'eval_seed'):
      for value, bound in ((-1, '>= 0'), (2**32, f'<= {2**32 - 1}')):
        with self.assertRaisesRegex(ValueError,
                                    f'^{name}: expected {bound}, got'):
          util.tiny_config(**{name: value})
    self.assertEqual(util.tiny_config(seed=2**32 - 1).train.seed, 2**32 - 1)

  def test_log_dir_that_is_a_file(self):
    with tempfile.NamedTemporaryFile() as f:
      with self.assertRaisesRegex(ValueError, '^log_dir: expected a run '
                                  'directory .* got the file'):
        run_dir.record_config(f.name, util.tiny_config())


class ConfigFlagsTest(unittest.TestCase):

  def test_defaults_are_the_papers(self):
    self.assertEqual(_parse(), config_lib.ExperimentConfig())

  def test_every_field_is_a_flag_of_its_type(self):
    values = flags.FlagValues()
    config_flags.define_flags(values)
    fields = {f.name: (s, f) for s, f in config_lib.fields()}
    self.assertCountEqual(list(values), list(fields))
    for name, (section, f) in fields.items():
      flag = values[name]
      kind = config_lib.field_type(section, name)
      if typing.get_origin(kind) is typing.Union:  # Optional[X] -> X.
        kind, = [a for a in typing.get_args(kind) if a is not type(None)]
      if f.metadata['choices'] is not None:
        expected = 'string enum'
      elif typing.get_origin(kind) is tuple:
        expected = 'comma separated list of strings'
      else:
        expected = {bool: 'bool', int: 'int', float: 'float',
                    str: 'string'}[kind]
      self.assertEqual(flag.flag_type(), expected, name)
      self.assertIn(f.metadata['help'], flag.help, name)

  def test_values_lists_and_scaling(self):
    config = _parse('--image_size=64', '--variant=snet', '--aspc_rates=1,3',
                    '--hole_size=20', '--learning_rate=3e-4', '--noaspc',
                    '--awa_beta_2=0.999')
    self.assertEqual(config.model.variant, 'snet')
    self.assertEqual(config.model.aspc_rates, (1, 3))
    self.assertFalse(config.model.aspc)
    self.assertEqual(config.optimizer.learning_rate, 3e-4)
    self.assertEqual(config.awa.awa_beta_2, 0.999)
    self.assertEqual(config.masks.hole_size, 20)  # Explicit: kept.
    self.assertEqual(config.masks.max_delta, 8)  # 32 * 64 / 256.
    self.assertEqual(config.critics.local_size, 32)
    self.assertEqual(config.losses.svw_size, 16)
    with self.assertRaisesRegex(ValueError, '^aspc_rates: expected comma'):
      _parse('--aspc_rates=1,x')
    with self.assertRaisesRegex(ValueError, '^cnum: expected >= 1'):
      _parse('--cnum=0')

  def test_helpfull_lists_every_field_once(self):
    proc = subprocess.run([sys.executable, '-m', 'tools.train', '--helpfull'],
                          cwd=_ROOT, capture_output=True, text=True,
                          timeout=300, check=False)
    # absl's help flags print to stdout and exit with status 1.
    self.assertEqual((proc.returncode, proc.stderr), (1, ''))
    lines = proc.stdout.splitlines()
    for _, f in config_lib.fields():
      pattern = re.compile(rf'^\s+--(\[no\])?{f.name}:')
      found = [line for line in lines if pattern.match(line)]
      self.assertEqual(len(found), 1, f'{f.name}: {found}')
    for old in ('lr', 'beta1', 'beta2', 'awa_beta1', 'softmax_scale'):
      self.assertFalse(any(re.match(rf'^\s+--{old}:', line) for line in lines),
                       old)


class ResumeToolTest(unittest.TestCase):
  """A run directory's config.json and the one-line refusal on resume."""

  @classmethod
  def setUpClass(cls):
    cls.root = tempfile.mkdtemp()
    cls.images = util.write_images(os.path.join(cls.root, 'images'))
    cls.log_dir = os.path.join(cls.root, 'run')
    cls.common = ('--variant=snet', '--image_size=32', '--cnum=4',
                  '--batch_size=2', '--local_filters=4,4,4,4',
                  '--global_filters=4,4,4,4', '--pretrain_steps=0',
                  '--n_critic=1', f'--data={cls.images}',
                  f'--log_dir={cls.log_dir}')
    cls.first = _tool(*cls.common, '--max_steps=1')

  def test_config_json_and_refusals(self):
    self.assertEqual(self.first.returncode, 0, self.first.stderr[-2000:])
    with open(os.path.join(self.log_dir, 'config.json')) as f:
      saved = config_lib.ExperimentConfig.from_dict(json.load(f))
    self.assertEqual(saved.model.variant, 'snet')
    self.assertEqual(saved.critics.local_size, 16)  # Scaled: 128 * 32 / 256.
    self.assertEqual(saved.data.data, self.images)
    for flag, value in (('variant', 'gepenet'), ('gamma_adv', '0.5')):
      proc = _tool(*self.common, f'--{flag}={value}', '--max_steps=2')
      self.assertEqual(proc.returncode, 1, proc.stderr[-2000:])
      lines = proc.stderr.strip().splitlines()
      self.assertEqual(len(lines), 1, proc.stderr)
      self.assertRegex(lines[0], rf'^error: --{flag}: expected the value of '
                       rf'the run in .* -> ')
    # A changed schedule is a resume; the line says what changed.
    proc = _tool(*self.common, '--max_steps=2', '--learning_rate=5e-5')
    self.assertEqual(proc.returncode, 0, proc.stderr[-2000:])
    self.assertIn('resuming from', proc.stderr)
    self.assertIn('changed: learning_rate: 0.0001 -> 5e-05, max_steps: 1 -> 2',
                  proc.stderr)


if __name__ == '__main__':
  unittest.main()
