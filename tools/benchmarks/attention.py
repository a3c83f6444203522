"""Benchmark section 'attention': ContextualAttention, full and hole-only.

The batched layer against the original's per-sample structure
(``tools.attention_reference``), the hole-only layer against the full one
on a GEPE-Net encoder's shapes, and forward+backward of the full layer and
the chunked query path.
"""

from __future__ import annotations

from absl import flags
import numpy as np
import tensorflow as tf

from ..attention_reference import contextual_attention_per_sample
from .common import print_table
from .common import square_holes
from .common import time_interleaved
from inpaint_tf.layers.contextual_attention import ContextualAttention

FLAGS = flags.FLAGS
flags.DEFINE_integer('batch', 8, 'Attention: batch size.')
flags.DEFINE_integer('size', 64, 'Attention: feature map height and width.')
flags.DEFINE_integer('channels', 128, 'Attention: feature channels.')
flags.DEFINE_integer('rate', 2, 'Attention: rate.')
flags.DEFINE_list('attention_image_sizes', ['256', '512', '1024'],
                  'Attention: image sizes whose E3-E5 shapes (width '
                  '--gen_cnum, hole a quarter of the side) compare the full '
                  'and the hole-only layer.')
flags.DEFINE_list('training_maps', ['16x8x64x2', '16x64x128x2',
                                    '16x16x256x1', '4x128x128x2'],
                  'Attention: BxSxCxRATE maps whose forward+backward with a '
                  'hole per sample (a quarter of the area) compares the full '
                  'and the chunked query path.')
flags.DEFINE_list('chunk_sizes', ['256', '1024', '4096'],
                  'Attention: chunk sizes of the hole-only layer.')


def attention_section() -> None:
  """Batched layer versus the original's per-sample structure."""
  rng = np.random.default_rng(0)
  b, s, c, r = FLAGS.batch, FLAGS.size, FLAGS.channels, FLAGS.rate
  x = tf.constant(rng.standard_normal((b, s, s, c)).astype(np.float32))
  mask = square_holes(rng, b, s)
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
  hole_only_attention_table()
  training_attention_table()


def _encoder_layers(size: int, cnum: int):
  """(name, [1,h,w,c] shape, rate) of the perception layers E3-E5."""
  return [('E3', (1, size // 4, size // 4, 4 * cnum), 2),
          ('E4', (1, size // 8, size // 8, 8 * cnum), 1),
          ('E5', (1, size // 16, size // 16, 8 * cnum), 1)]


def hole_only_attention_table() -> None:
  """Full versus hole-only attention on the generator's encoder shapes."""
  rng = np.random.default_rng(0)
  chunks = [int(c) for c in FLAGS.chunk_sizes]
  rows = []
  for size in (int(s) for s in FLAGS.attention_image_sizes):
    for name, shape, rate in _encoder_layers(size, FLAGS.gen_cnum):
      x = tf.constant(rng.standard_normal(shape).astype(np.float32))
      side = shape[1]
      mask = np.zeros(shape[:3] + (1,), np.float32)
      mask[:, side * 3 // 8:side * 5 // 8, side * 3 // 8:side * 5 // 8] = 1.
      mask = tf.constant(mask)
      full_layer = ContextualAttention(rate=rate)
      variants = [('full', tf.function(lambda l=full_layer, x=x, m=mask:
                                       l(x, x, m)))]
      for chunk in chunks:
        layer = ContextualAttention(rate=rate, chunk_size=chunk,
                                    whole_map_positions=0)
        variants.append((f'hole-only, chunk {chunk}', tf.function(
            lambda l=layer, x=x, m=mask: l(x, x, m, query_mask=m))))
      full = variants[0][1]().numpy()
      diffs = {n: float(np.abs((fn().numpy() - full) * mask.numpy()).max())
               for n, fn in variants[1:]}
      times = time_interleaved(variants, FLAGS.repeats)
      for variant, t in times.items():
        rows.append((f'{size} {name}', f'{shape[1]}x{shape[2]}x{shape[3]}',
                     rate, variant, f'{1000 * t:.1f}',
                     f'{times["full"] / t:.2f}x',
                     f'{diffs[variant]:.1e}' if variant in diffs else '-'))
  print_table(f'ContextualAttention on the encoder of a GEPE-Net '
              f'(cnum={FLAGS.gen_cnum}), hole a quarter of the side',
              ('image, layer', 'map', 'rate', 'variant', 'ms/call',
               'speed-up', 'max|diff| in hole'), rows)


def training_attention_table() -> None:
  """Forward+backward of the full layer and of the chunked query path."""
  rng = np.random.default_rng(0)
  rows = []
  for spec in FLAGS.training_maps:
    b, s, c, r = (int(v) for v in spec.split('x'))
    x = tf.Variable(rng.standard_normal((b, s, s, c)).astype(np.float32))
    mask = square_holes(rng, b, s)
    variants = []
    for name, query in (('full', None), ('query path', mask)):
      layer = ContextualAttention(rate=r, whole_map_positions=0)

      def step(layer=layer, query=query):
        with tf.GradientTape() as tape:
          y = layer(x, x, mask, query_mask=query) * mask
          loss = tf.reduce_sum(y * y)
        return tape.gradient(loss, x)

      variants.append((name, tf.function(step)))
    times = time_interleaved(variants, FLAGS.repeats)
    rows.append((f'B={b} {s}x{s}x{c}', r, (s // r) ** 2,
                 f'{1000 * times["full"]:.0f}',
                 f'{1000 * times["query path"]:.0f}',
                 f'{times["full"] / times["query path"]:.2f}x'))
  print_table('ContextualAttention forward+backward, a hole per sample '
              '(training)', ('map', 'rate', 'positions', 'full ms',
                             'query path ms', 'speed-up'), rows)
