"""Speed benchmarks: contextual attention, generator training throughput, AWA.

Prints one table per section. Variants of a section are timed in
interleaved rounds (A, B, C, A, B, C, ...) and reported as medians, so that
a busy machine slows all of them alike; compare ratios within one run.

  python -m tools.benchmark                         # all sections
  python -m tools.benchmark --sections=attention --batch=8 --size=64
"""

from __future__ import annotations

from . import _cli  # pylint: disable=g-bad-import-order  # quiet TF logs

import os
import time
from typing import Callable, Dict, List, Sequence, Tuple

from absl import flags
import numpy as np
import tensorflow as tf

from .attention_reference import contextual_attention_per_sample
from inpaint_tf.layers.contextual_attention import ContextualAttention

FLAGS = flags.FLAGS
flags.DEFINE_list('sections', ['attention', 'generator', 'awa'],
                  'Sections to run: attention, generator, awa.')
flags.DEFINE_integer('repeats', 5, 'Timed rounds per variant (median).')
flags.DEFINE_integer('batch', 8, 'Attention: batch size.')
flags.DEFINE_integer('size', 64, 'Attention: feature map height and width.')
flags.DEFINE_integer('channels', 128, 'Attention: feature channels.')
flags.DEFINE_integer('rate', 2, 'Attention: rate.')
flags.DEFINE_integer('gen_size', 256, 'Generator: image size.')
flags.DEFINE_integer('gen_batch', 2, 'Generator: batch size.')
flags.DEFINE_integer('gen_cnum', 32, 'Generator: base width.')
flags.DEFINE_string('awa_flagfile', 'flags/demo.cfg',
                    'AWA: training flagfile whose sizes (image_size, cnum, '
                    'batch_size, critic filters, n_critic) are measured.')

Timed = Tuple[str, Callable[[], object]]


def time_interleaved(variants: Sequence[Timed], repeats: int) -> Dict[str, float]:
  """Median seconds per call of each variant, timed in interleaved rounds."""
  for _, fn in variants:  # trace / compile
    tf.nest.map_structure(lambda t: t.numpy() if hasattr(t, 'numpy') else t,
                          fn())
  samples: Dict[str, List[float]] = {name: [] for name, _ in variants}
  for _ in range(repeats):
    for name, fn in variants:
      start = time.perf_counter()
      tf.nest.map_structure(
          lambda t: t.numpy() if hasattr(t, 'numpy') else t, fn())
      samples[name].append(time.perf_counter() - start)
  return {name: float(np.median(values)) for name, values in samples.items()}


def print_table(title: str, header: Sequence[str],
                rows: Sequence[Sequence[object]]) -> None:
  widths = [max(len(str(x)) for x in column)
            for column in zip(header, *rows)]
  line = '  '.join('{:<%d}' % w for w in widths)
  print(f'\n{title}')
  print(line.format(*header))
  print(line.format(*['-' * w for w in widths]))
  for row in rows:
    print(line.format(*[str(x) for x in row]))


def attention_section() -> None:
  """Batched layer versus the original's per-sample structure."""
  rng = np.random.default_rng(0)
  b, s, c, r = FLAGS.batch, FLAGS.size, FLAGS.channels, FLAGS.rate
  x = tf.constant(rng.standard_normal((b, s, s, c)).astype(np.float32))
  mask = np.zeros((b, s, s, 1), np.float32)
  for i in range(b):
    top, left = rng.integers(0, s // 2, size=2)
    mask[i, top:top + s // 2, left:left + s // 2] = 1.
  mask = tf.constant(mask)
  layer = ContextualAttention(rate=r)
  batched = tf.function(lambda: layer(x, x, mask))
  batched_xla = tf.function(lambda: layer(x, x, mask), jit_compile=True)
  per_sample = tf.function(
      lambda: contextual_attention_per_sample(x, x, mask, rate=r))
  # The original's two matrix products at their sizes, nothing else.
  n = (s // r) ** 2
  patches = tf.constant(rng.standard_normal((b, n, 9 * c)).astype(np.float32))
  raw = tf.constant(
      rng.standard_normal((b, n, 4 * r * r * c)).astype(np.float32))
  floor = tf.function(
      lambda: tf.matmul(tf.matmul(patches, patches, transpose_b=True), raw))

  reference = per_sample().numpy()
  diffs = {'batched (tf.function)': np.abs(batched().numpy() - reference).max(),
           'batched (XLA)': np.abs(batched_xla().numpy() - reference).max()}
  times = time_interleaved([
      ('per-sample loop (tf.function)', per_sample),
      ('two-matmul floor', floor),
      ('batched (tf.function)', batched),
      ('batched (XLA)', batched_xla),
  ], FLAGS.repeats)
  base = times['per-sample loop (tf.function)']
  rows = [(name, f'{1000 * t:.1f}', f'{base / t:.2f}x',
           f'{diffs[name]:.1e}' if name in diffs else '-')
          for name, t in times.items()]
  print_table(f'ContextualAttention B={b} {s}x{s}x{c} rate={r}',
              ('variant', 'ms/call', 'speed-up vs loop', 'max|diff| vs loop'),
              rows)


def generator_section() -> None:
  """Forward + backward images/s of each generator variant."""
  from inpaint_tf import losses
  from inpaint_tf.models import build_generator

  rng = np.random.default_rng(0)
  b, s = FLAGS.gen_batch, FLAGS.gen_size
  truth = tf.constant(rng.uniform(-1, 1, (b, s, s, 3)).astype(np.float32))
  mask = np.zeros((b, s, s, 1), np.float32)
  mask[:, s // 4:3 * s // 4, s // 4:3 * s // 4] = 1.
  mask = tf.constant(mask)
  masked = truth * (1. - mask)
  variants = []
  for variant in ('snet', 'penet', 'gepenet'):
    generator = build_generator(variant, cnum=FLAGS.gen_cnum)
    generator((masked, mask))

    def step(generator=generator):
      with tf.GradientTape() as tape:
        out = generator((masked, mask), training=True, ground_truth=truth,
                        structured=True)
        loss = tf.reduce_mean(tf.abs(out.image - truth))
        if out.targets:
          loss += losses.iterative_guidance_loss(out.features, out.targets)
      return tape.gradient(loss, generator.trainable_variables)

    variants.append((variant, tf.function(step)))
  times = time_interleaved(variants, FLAGS.repeats)
  rows = [(name, f'{1000 * t:.0f}', f'{b / t:.2f}') for name, t in times.items()]
  print_table(f'Generator forward+backward, B={b} {s}x{s}, cnum={FLAGS.gen_cnum}',
              ('variant', 'ms/step', 'images/s'), rows)


def _flagfile_values(path: str) -> Dict[str, str]:
  """``--name=value`` lines of a flagfile (comments and others ignored)."""
  values = {}
  with open(path) as f:
    for line in f:
      line = line.strip()
      if line.startswith('--') and '=' in line:
        name, value = line[2:].split('=', 1)
        values[name] = value
  return values


def awa_section() -> None:
  """AWA training step cost relative to plain steps, at the demo sizes."""
  import tempfile

  from inpaint_tf import config as config_lib
  from inpaint_tf import lpips as lpips_lib
  from inpaint_tf import training

  demo = _flagfile_values(FLAGS.awa_flagfile)
  size, batch = int(demo['image_size']), int(demo['batch_size'])
  ints = lambda text: tuple(int(v) for v in text.split(','))
  rng = np.random.default_rng(0)
  images = rng.uniform(-1, 1, (batch, size, size, 3)).astype(np.float32)
  masks = np.zeros((batch, size, size, 1), np.float32)
  masks[:, size // 4:3 * size // 4, size // 4:3 * size // 4] = 1.
  element = {'image': tf.constant(images), 'mask': tf.constant(masks)}
  dataset_fn = lambda start: tf.data.Dataset.from_tensors(element).repeat()
  work = tempfile.mkdtemp(prefix='benchmark_awa_')
  lpips_path = os.path.join(work, 'lpips_random.npz')
  np.savez(lpips_path, **lpips_lib.random_arrays(0))
  base = config_lib.ExperimentConfig().replace(
      cnum=int(demo['cnum']), local_filters=ints(demo['local_filters']),
      global_filters=ints(demo['global_filters']), local_size=size // 2,
      svw_size=size // 4, n_critic=int(demo['n_critic']), pretrain_steps=0,
      image_size=size, batch_size=batch, vgg_weights=None,
      lpips_weights=lpips_path)
  setups = {
      'GEPE-Net step (no auxiliary losses)': base,
      'TPL/TSL, fixed weights': base.replace(aux_losses='tpl_tsl',
                                             reweight='fixed'),
      'TPL/TSL + AWA (LPIPS, output layer)': base.replace(
          aux_losses='tpl_tsl', reweight='awa'),
      'TPL/TSL + AWA (MAE, output layer)': base.replace(
          aux_losses='tpl_tsl', reweight='awa', guidance='mae'),
  }
  variants = []
  for index, (name, config) in enumerate(setups.items()):
    trainer = training.Trainer(os.path.join(work, str(index)), dataset_fn,
                               config, progress_stream=False)
    iterator = trainer.iterator()
    variants.append((name, lambda t=trainer, it=iterator: t.train_step(it)))
  times = time_interleaved(variants, FLAGS.repeats)
  plain = times['GEPE-Net step (no auxiliary losses)']
  fixed = times['TPL/TSL, fixed weights']
  rows = [(name, f'{1000 * t:.0f}', f'{t / plain:.2f}x', f'{t / fixed:.2f}x')
          for name, t in times.items()]
  print_table(f'Training step (critic + generator), B={batch} {size}x{size}, '
              f'cnum={demo["cnum"]}',
              ('step', 'ms/step', 'vs GEPE-Net step', 'vs fixed TPL/TSL'),
              rows)


def main(argv):
  del argv
  sections = {'attention': attention_section, 'generator': generator_section,
              'awa': awa_section}
  for name in FLAGS.sections:
    if name not in sections:
      raise ValueError(
          f'--sections: expected a subset of {sorted(sections)}, got {name!r}')
  for name in FLAGS.sections:
    sections[name]()


if __name__ == '__main__':
  _cli.run_main(main)
