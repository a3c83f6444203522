r"""Reruns the demo training study (``docs/training_study.md``) and its tables.

  python -m tools.study [--runs=recon,...] [--output_dir=results/study]

Each run is ``tools.train --flagfile=flags/demo.cfg`` with the flags the
study's tables name (``RUNS``), in ``<output_dir>/<run>`` (a run that
exists resumes, and one that has finished returns at once after the
trainer's start-up; a run that continues another starts from a copy of
it). The trainer scores the demo's validation images every 100 steps;
this tool then prints, per section, one markdown table of the final and
best validation scores (with cv2 NS on the same crops) and one of PSNR
every ``--every`` steps, and writes them to ``<output_dir>/study.md``. The runs take about 2-10 minutes
each on a 2-core CPU; they are run one after the other.

The ``capacity`` run asks whether the demo's network can beat diffusion
when data is not the limit: it trains on ``SYNTHETIC_TRAIN`` smooth random
colour fields (a 3x3 grid of random colours, bilinearly upsampled to
64x64; written to ``<output_dir>/synthetic``) and validates on
``SYNTHETIC_EVAL`` others.
"""

from . import _cli  # pylint: disable=g-bad-import-order

import os
import shutil
import subprocess
import sys
from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple

from absl import flags
import cv2
import numpy as np

from inpaint_tf import evaluation
from inpaint_tf import fileio
from inpaint_tf import run_dir as run_dir_lib
from inpaint_tf import validation


class StudyRun(NamedTuple):
  """One row of the study: its section, what it changes and the flags.

  ``start_from`` names a run this one continues (trained first, then
  copied), or is None; ``synthetic`` runs train and validate on synthetic
  colour fields; ``mask_type`` is the validation holes tabulated (both
  kinds, or the kind the run trains on).
  """
  section: str
  change: str
  flags: Tuple[str, ...]
  start_from: Optional[str] = None
  synthetic: bool = False
  mask_type: str = evaluation.ALL


_RECON = ('--pretrain_steps=800',)
RUNS: Dict[str, StudyRun] = {
    # Reconstruction only (no critics), 800 steps.
    'recon': StudyRun('reconstruction', 'the demo without critics', _RECON),
    'recon_snet': StudyRun('reconstruction', 'S-Net',
                           _RECON + ('--variant=snet',)),
    'recon_penet': StudyRun('reconstruction', 'PE-Net',
                            _RECON + ('--variant=penet',)),
    'recon_iglsg': StudyRun('reconstruction', 'IGL stop-gradient',
                            _RECON + ('--igl_stop_gradient',)),
    'recon_ae': StudyRun('reconstruction', "GMCNN's known-region L1 (1.2)",
                         _RECON + ('--gamma_ae=1.2',)),
    'recon_image': StudyRun('reconstruction', 'SVW L1 over the whole image',
                            _RECON + ('--svw_normalization=image',)),
    'recon_lr1e-3': StudyRun('reconstruction', 'learning rate 1e-3',
                             _RECON + ('--learning_rate=1e-3',)),
    # 400 reconstruction steps, then 400 with the critics.
    'demo': StudyRun('adversarial', 'the shipped demo', ()),
    'adv_lr3e-4': StudyRun('adversarial', 'adversarial rate 3e-4 (no drop)',
                           ('--adversarial_learning_rate=3e-4',)),
    'adv_image': StudyRun('adversarial',
                          'adversarial rate 3e-4, SVW L1 over the whole '
                          'image', ('--adversarial_learning_rate=3e-4',
                                    '--svw_normalization=image')),
    'adv_ncritic5': StudyRun('adversarial', 'five critic updates',
                             ('--n_critic=5',)),
    'aug': StudyRun('adversarial', 'crop scale 0.5..1 and 90-degree turns',
                    ('--min_crop_scale=0.5', '--rotate90')),
    # The demo continued.
    'long': StudyRun('continued', 'the demo continued to step 2400',
                     ('--max_steps=2400',), start_from='demo'),
    'long_hl800': StudyRun('continued', 'rates halving every 800 steps, to '
                           'step 2400', ('--max_steps=2400',
                                         '--lr_half_life=800')),
    'demo_seed1': StudyRun('seeds', 'the demo with --seed=1', ('--seed=1',)),
    'demo_seed2': StudyRun('seeds', 'the demo with --seed=2', ('--seed=2',)),
    'capacity': StudyRun(
        'capacity', 'synthetic colour fields, reconstruction only, square '
        'holes (scored on square holes)',
        ('--pretrain_steps=1000', '--max_steps=1000', '--mask_type=square',
         '--eval_crops_per_image=1'), synthetic=True, mask_type='square'),
}
SYNTHETIC_TRAIN = 4000
SYNTHETIC_EVAL = 32

FLAGS = flags.FLAGS
flags.DEFINE_list('runs', list(RUNS), f'Runs to train and tabulate, of '
                  f'{", ".join(RUNS)}.')
flags.DEFINE_string('output_dir', 'results/study', 'Where the runs go.')
flags.DEFINE_string('flagfile_path', 'flags/demo.cfg',
                    'The flagfile every run starts from.')
flags.DEFINE_integer('every', 100, 'Steps between the PSNR table columns.')


def write_synthetic(folder: str, count: int, seed: int) -> str:
  """Writes ``count`` smooth random colour fields (64x64 PNG) to ``folder``
  unless it exists; returns ``folder``."""
  if os.path.isdir(folder):
    return folder
  rng = np.random.default_rng(seed)
  partial = folder + '.partial'
  os.makedirs(partial, exist_ok=True)
  for i in range(count):
    grid = rng.uniform(0, 255, size=(3, 3, 3)).astype(np.float32)
    field = cv2.resize(grid, (64, 64), interpolation=cv2.INTER_LINEAR)
    fileio.write_image(os.path.join(partial, f'{i:05d}.png'),
                       np.round(field).astype(np.uint8))
  os.replace(partial, folder)
  return folder


def train(name: str) -> str:
  """Trains (or resumes) run ``name``; returns its run directory.

  Exits with the trainer's status when it fails.
  """
  log_dir = os.path.join(FLAGS.output_dir, name)
  start_from = RUNS[name].start_from
  if start_from and not os.path.exists(log_dir):
    shutil.copytree(train(start_from), log_dir)
  args = [sys.executable, '-m', 'tools.train',
          f'--flagfile={FLAGS.flagfile_path}', *RUNS[name].flags,
          f'--log_dir={log_dir}']
  if RUNS[name].synthetic:
    folder = os.path.join(FLAGS.output_dir, 'synthetic')
    args += [
        f'--data={write_synthetic(f"{folder}/train", SYNTHETIC_TRAIN, 0)}',
        f'--eval_data={write_synthetic(f"{folder}/eval", SYNTHETIC_EVAL, 1)}']
  print('$ ' + ' '.join(args[1:]), flush=True)
  code = subprocess.call(args)
  if code:
    sys.exit(code if code > 0 else 128 - code)
  return log_dir


def curves(log_dir: str, mask_type: str = evaluation.ALL
           ) -> Dict[str, Tuple[np.ndarray, np.ndarray]]:
  """``{metric: (steps [T], values [T])}`` of the run's network, and
  ``'ns_psnr'``: cv2 NS's PSNR on the same crops (``mask_type`` holes)."""
  method = run_dir_lib.load_config(log_dir).model.variant
  read = validation.read_curves(
      os.path.join(log_dir, validation.EVAL_CSV), mask_type)
  out = {metric: by_method[method] for metric, by_method in read.items()}
  out['ns_psnr'] = read['psnr']['cv2_ns']
  return out


def tables(section: str, names: Sequence[str],
           results: Dict[str, Dict[str, Tuple[np.ndarray, np.ndarray]]],
           every: int) -> List[str]:
  """The section's markdown: final and best scores, then PSNR by step."""
  lines = [f'### {section}', '',
           '| run | change | PSNR | SSIM | L1 | best PSNR (step) | NS PSNR |',
           '|---|---|---|---|---|---|---|']
  for name in names:
    steps, psnr = results[name]['psnr']
    best = int(np.argmax(psnr))
    lines.append(
        f'| {name} | {RUNS[name].change} | {psnr[-1]:.2f} | '
        f'{results[name]["ssim"][1][-1]:.3f} | '
        f'{results[name]["l1"][1][-1]:.4f} | '
        f'{psnr[best]:.2f} ({int(steps[best])}) | '
        f'{results[name]["ns_psnr"][1][-1]:.2f} |')
  columns = sorted({int(s) for name in names
                    for s in results[name]['psnr'][0] if s % every == 0})
  lines += ['', '| run | ' + ' | '.join(map(str, columns)) + ' |',
            '|---|' + '---|' * len(columns)]
  for name in names:
    steps, psnr = results[name]['psnr']
    at = dict(zip(steps.astype(int), psnr))
    lines.append(f'| {name} | ' + ' | '.join(
        f'{at[c]:.2f}' if c in at else '' for c in columns) + ' |')
  return lines + ['']


def main(argv):
  if len(argv) > 1:
    raise ValueError(f'unexpected arguments: {" ".join(argv[1:])}')
  unknown = [name for name in FLAGS.runs if name not in RUNS]
  if unknown:
    raise ValueError(f'runs: expected names among {", ".join(RUNS)}, got '
                     f'{unknown}')
  if FLAGS.every < 1:
    raise ValueError(f'every: expected >= 1, got {FLAGS.every}')
  results = {}
  for name in FLAGS.runs:
    results[name] = curves(train(name), RUNS[name].mask_type)
  lines = []
  for section in dict.fromkeys(RUNS[name].section for name in FLAGS.runs):
    lines += tables(section, [n for n in FLAGS.runs
                              if RUNS[n].section == section], results,
                    FLAGS.every)
  text = '\n'.join(lines)
  fileio.atomic_write(os.path.join(FLAGS.output_dir, 'study.md'),
                      text.encode())
  print(text)
  return 0


if __name__ == '__main__':
  _cli.run_main(main)
