"""Speed benchmarks: contextual attention, generator training throughput, AWA.

Prints one table per section. Variants of a section are timed in
interleaved rounds (A, B, C, A, B, C, ...) and reported as medians, so that
a busy machine slows all of them alike; compare ratios within one run.

  python -m tools.benchmark                         # all sections
  python -m tools.benchmark --sections=attention --batch=8 --size=64
"""

from __future__ import annotations

import time
from typing import Callable, Dict, List, Sequence, Tuple

from absl import app
from absl import flags
import numpy as np
import tensorflow as tf

from inpaint_tf.layers.attention_reference import contextual_attention_per_sample
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
                    'AWA: training flagfile whose sizes are measured.')

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
        out = generator.forward(masked, mask, ground_truth=truth, training=True)
        loss = tf.reduce_mean(tf.abs(out.image - truth))
        if out.targets:
          loss += losses.iterative_guidance_loss(out.features, out.targets)
      return tape.gradient(loss, generator.trainable_variables)

    variants.append((variant, tf.function(step)))
  times = time_interleaved(variants, FLAGS.repeats)
  rows = [(name, f'{1000 * t:.0f}', f'{b / t:.2f}') for name, t in times.items()]
  print_table(f'Generator forward+backward, B={b} {s}x{s}, cnum={FLAGS.gen_cnum}',
              ('variant', 'ms/step', 'images/s'), rows)


def awa_section() -> None:
  """AWA training step cost relative to a plain step, at the demo sizes."""
  from inpaint_tf import training

  results = training.benchmark_steps(FLAGS.awa_flagfile, FLAGS.repeats)
  plain = results['plain']
  rows = [(name, f'{1000 * t:.0f}', f'{t / plain:.2f}x')
          for name, t in results.items()]
  print_table(f'Training step cost ({FLAGS.awa_flagfile})',
              ('step', 'ms/step', 'cost vs plain'), rows)


def main(argv):
  del argv
  sections = {'attention': attention_section, 'generator': generator_section,
              'awa': awa_section}
  for name in FLAGS.sections:
    if name not in sections:
      raise app.UsageError(
          f'--sections: expected a subset of {sorted(sections)}, got {name!r}')
  for name in FLAGS.sections:
    sections[name]()


if __name__ == '__main__':
  app.run(main)
