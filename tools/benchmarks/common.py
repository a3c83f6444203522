"""What the benchmark sections share: timing, tables, holes, two flags.

``time_interleaved`` times variants in interleaved rounds and takes
medians (``tools.benchmark``'s docstring says why); ``print_table`` prints
a section's table.
"""

from __future__ import annotations

import time
from typing import Callable, Dict, List, Sequence, Tuple

from absl import flags
import numpy as np
import tensorflow as tf

FLAGS = flags.FLAGS
flags.DEFINE_integer('repeats', 5, 'Timed rounds per variant (median).')
flags.DEFINE_integer('gen_cnum', 32, 'Generator: base width.')

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


def square_holes(rng: np.random.Generator, batch: int, size: int
                 ) -> tf.Tensor:
  """[batch,size,size,1] float32: a size/2 square hole per sample."""
  mask = np.zeros((batch, size, size, 1), np.float32)
  for i in range(batch):
    top, left = rng.integers(0, size // 2, size=2)
    mask[i, top:top + size // 2, left:left + size // 2] = 1.
  return tf.constant(mask)
