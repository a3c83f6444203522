"""Benchmark section 'inference': the exported generator, time and memory.

``inference_section`` exports the models and runs every case through
``python -m tools.benchmark --inference_case=...`` (``inference_case`` in
the child prints its result as one JSON line).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from typing import Dict

from absl import flags
import numpy as np

from .common import print_table

FLAGS = flags.FLAGS
flags.DEFINE_list('inference_sizes', ['256', '512', '1024', '2048', '4096'],
                  'Inference: square image sizes.')
flags.DEFINE_list('inference_strategies', ['original', 'crop', 'resize'],
                  'Inference: HD strategies.')
flags.DEFINE_integer('inference_timeout', 900,
                     'Inference: seconds allowed per case.')
flags.DEFINE_string('inference_case', None,
                    'Internal: one inference case as JSON (run in a child '
                    'process).')

# The directory holding tools/, where ``python -m tools.benchmark`` runs.
_CHECKOUT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))


def _peak_rss_bytes() -> int:
  """This process's peak resident memory (VmHWM)."""
  with open('/proc/self/status') as f:
    for line in f:
      if line.startswith('VmHWM:'):
        return int(line.split()[1]) * 1024
  return 0


def inference_case(case: Dict) -> Dict:
  """One image through a SavedModel's ``serving_hd``: warm seconds, peak RSS.

  ``case``: ``saved_model``, ``size`` (square side), ``hole`` (side of a
  centred square hole), ``strategy``.
  """
  from inpaint_tf import completion
  from inpaint_tf import inpainter

  size, hole = case['size'], case['hole']
  model = inpainter.load_inpainter(case['saved_model'])
  options = completion.CompletionOptions(hd_strategy=case['strategy'])
  ramp = np.linspace(0, 255, size, dtype=np.float32)
  image = (ramp[:, None, None] * 0.5 + ramp[None, :, None] * 0.5
           + np.random.default_rng(0).uniform(-20, 20, (size, size, 3)))
  image = np.clip(image, 0, 255).astype(np.uint8)
  mask = np.zeros((size, size, 1), np.uint8)
  top = (size - hole) // 2
  mask[top:top + hole, top:top + hole] = 1
  try:
    model(image, mask, options)  # Traces the graph.
    start = time.perf_counter()
    model(image, mask, options)
    seconds = time.perf_counter() - start
  except ValueError as e:
    return {'error': str(e), 'peak_rss': _peak_rss_bytes()}
  return {'seconds': seconds, 'peak_rss': _peak_rss_bytes()}


def _run_case(case: Dict) -> Dict:
  """``inference_case`` in a fresh process (its own peak memory)."""
  command = [sys.executable, '-m', 'tools.benchmark',
             f'--inference_case={json.dumps(case)}']
  try:
    done = subprocess.run(command, capture_output=True, text=True,
                          timeout=FLAGS.inference_timeout, cwd=_CHECKOUT)
  except subprocess.TimeoutExpired:
    return {'error': f'over {FLAGS.inference_timeout} s'}
  lines = done.stdout.strip().splitlines()
  if done.returncode or not lines:
    tail = (done.stderr.strip().splitlines() or ['failed'])[-1]
    return {'error': f'exit {done.returncode}: {tail[:120]}'}
  return json.loads(lines[-1])


def inference_section() -> None:
  """Time and peak memory of the exported generator per size and strategy.

  Two SavedModels of one random GEPE-Net (width --gen_cnum): attention in
  the hole only (the default) and everywhere (as before the hole-only
  layer, 'original' only). The hole is a centred square of a quarter of
  the side, at most 256 pixels. The full layer is not run where one of
  its E3 score matrices alone would exceed 4 GB.
  """
  from inpaint_tf import completion
  from inpaint_tf import export
  from inpaint_tf.models import build_generator

  work = tempfile.mkdtemp(prefix='benchmark_inference_')
  models = {}
  weights = None
  for name, hole_only in (('hole-only', True), ('full attention', False)):
    generator = build_generator('gepenet', cnum=FLAGS.gen_cnum,
                                attention_hole_only=hole_only)
    generator.build()
    if weights is None:
      weights = generator.get_weights()
    generator.set_weights(weights)
    models[name] = export.export_saved_model(
        generator, os.path.join(work, name.replace(' ', '_')),
        completion.CompletionOptions())
  rows = []
  for size in (int(s) for s in FLAGS.inference_sizes):
    hole = min(256, size // 4)
    for model_name, strategies in (
        ('hole-only', FLAGS.inference_strategies),
        ('full attention', ['original'])):
      for strategy in strategies:
        case = dict(saved_model=models[model_name], size=size, hole=hole,
                    strategy=strategy)
        # The full layer holds E3's [N, N] float32 score matrix, N = (S/8)^2.
        scores = 4. * (size // 8) ** 4
        if model_name == 'full attention' and scores > 4e9:
          result = {'error': f'not run: one E3 score matrix is '
                             f'{scores / 1e9:.0f} GB'}
        else:  # The library refuses an 'original' that would not fit.
          result = _run_case(case)
        seconds = result.get('seconds')
        rss = result.get('peak_rss')
        rows.append((f'{size}x{size}', f'{hole}x{hole}', model_name, strategy,
                     f'{seconds:.2f}' if seconds is not None else '-',
                     f'{rss / 1e9:.2f}' if rss else '-',
                     result.get('error', '')))
        print(' | '.join(str(x) for x in rows[-1]), flush=True)
  print_table(f'Exported GEPE-Net (cnum={FLAGS.gen_cnum}, random weights) '
              'through serving_hd: one warm run per case in its own process',
              ('image', 'hole', 'attention', 'strategy', 'seconds',
               'peak RSS GB', 'note'), rows)
