"""Speed benchmarks: attention, the generator, AWA, training, inference.

Prints one table per section. Variants of a section are timed in
interleaved rounds (A, B, C, A, B, C, ...) and reported as medians, so that
a busy machine slows all of them alike; compare ratios within one run.
The inference section runs each case in a fresh process and reports its
warm time and peak resident memory (VmHWM).

  python -m tools.benchmark                         # all sections
  python -m tools.benchmark --sections=attention --batch=8 --size=64
  python -m tools.benchmark --sections=inference --inference_sizes=1024,2048
  python -m tools.benchmark --sections=training --repeats=3
"""

from __future__ import annotations

from . import _cli  # pylint: disable=g-bad-import-order  # quiet TF logs

import json
import os
import subprocess
import sys
import tempfile
import time
from typing import Callable, Dict, List, Sequence, Tuple

from absl import flags
import numpy as np
import tensorflow as tf

from .attention_reference import contextual_attention_per_sample
from inpaint_tf.layers.contextual_attention import ContextualAttention

FLAGS = flags.FLAGS
flags.DEFINE_list('sections', ['attention', 'generator', 'awa'],
                  'Sections to run: attention, generator, awa, training, '
                  'data, inference.')
flags.DEFINE_integer('repeats', 5, 'Timed rounds per variant (median).')
flags.DEFINE_integer('batch', 8, 'Attention: batch size.')
flags.DEFINE_integer('size', 64, 'Attention: feature map height and width.')
flags.DEFINE_integer('channels', 128, 'Attention: feature channels.')
flags.DEFINE_integer('rate', 2, 'Attention: rate.')
flags.DEFINE_integer('gen_size', 256, 'Generator: image size.')
flags.DEFINE_integer('gen_batch', 2, 'Generator: batch size.')
flags.DEFINE_integer('gen_cnum', 32, 'Generator: base width.')
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
flags.DEFINE_list('inference_sizes', ['256', '512', '1024', '2048', '4096'],
                  'Inference: square image sizes.')
flags.DEFINE_list('inference_strategies', ['original', 'crop', 'resize'],
                  'Inference: HD strategies.')
flags.DEFINE_integer('inference_timeout', 900,
                     'Inference: seconds allowed per case.')
flags.DEFINE_string('inference_case', None,
                    'Internal: one inference case as JSON (run in a child '
                    'process).')
flags.DEFINE_string('awa_flagfile', 'flags/demo.cfg',
                    'AWA and training: training flagfile whose settings '
                    '(AWA: image_size, cnum, batch_size, critic filters, '
                    'n_critic; training: all) are measured.')
flags.DEFINE_integer('train_steps', 20,
                     'Training: steps per timed round (adversarial steps of '
                     "the flagfile's recipe, its data and cadence of logs).")

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


def _square_holes(rng: np.random.Generator, batch: int, size: int
                  ) -> tf.Tensor:
  """[batch,size,size,1] float32: a size/2 square hole per sample."""
  mask = np.zeros((batch, size, size, 1), np.float32)
  for i in range(batch):
    top, left = rng.integers(0, size // 2, size=2)
    mask[i, top:top + size // 2, left:left + size // 2] = 1.
  return tf.constant(mask)


def attention_section() -> None:
  """Batched layer versus the original's per-sample structure."""
  rng = np.random.default_rng(0)
  b, s, c, r = FLAGS.batch, FLAGS.size, FLAGS.channels, FLAGS.rate
  x = tf.constant(rng.standard_normal((b, s, s, c)).astype(np.float32))
  mask = _square_holes(rng, b, s)
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
    mask = _square_holes(rng, b, s)
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
  setups = [('snet', 'snet', True), ('penet', 'penet', True),
            ('gepenet', 'gepenet', True),
            ('penet, full attention', 'penet', False),
            ('gepenet, full attention', 'gepenet', False)]
  for name, variant, hole_only in setups:
    generator = build_generator(variant, cnum=FLAGS.gen_cnum,
                                attention_hole_only=hole_only)
    generator((masked, mask))

    def step(generator=generator):
      with tf.GradientTape() as tape:
        out = generator((masked, mask), training=True, ground_truth=truth,
                        structured=True)
        loss = tf.reduce_mean(tf.abs(out.image - truth))
        if out.targets:
          loss += losses.iterative_guidance_loss(out.features, out.targets)
      return tape.gradient(loss, generator.trainable_variables)

    variants.append((name, tf.function(step)))
  times = time_interleaved(variants, FLAGS.repeats)
  rows = [(name, f'{1000 * t:.0f}', f'{b / t:.2f}') for name, t in times.items()]
  print_table(f'Generator forward+backward, B={b} {s}x{s} with a '
              f'{s // 2}x{s // 2} hole, cnum={FLAGS.gen_cnum} (attention '
              'computed in the hole only unless "full attention")',
              ('variant', 'ms/step', 'images/s'), rows)


def awa_section() -> None:
  """AWA training step cost relative to plain steps, at the demo sizes."""
  from inpaint_tf import lpips as lpips_lib
  from inpaint_tf import training

  recipe = _recipe_config(FLAGS.awa_flagfile)
  size, batch = recipe.train.image_size, recipe.train.batch_size
  rng = np.random.default_rng(0)
  images = rng.uniform(-1, 1, (batch, size, size, 3)).astype(np.float32)
  masks = np.zeros((batch, size, size, 1), np.float32)
  masks[:, size // 4:3 * size // 4, size // 4:3 * size // 4] = 1.
  element = {'image': tf.constant(images), 'mask': tf.constant(masks)}
  dataset_fn = lambda start: tf.data.Dataset.from_tensors(element).repeat()
  work = tempfile.mkdtemp(prefix='benchmark_awa_')
  lpips_path = os.path.join(work, 'lpips_random.npz')
  np.savez(lpips_path, **lpips_lib.random_arrays(0))
  base = recipe.replace(pretrain_steps=0, vgg_weights=None,
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
              f'cnum={recipe.model.cnum}',
              ('step', 'ms/step', 'vs GEPE-Net step', 'vs fixed TPL/TSL'),
              rows)


def _recipe_config(path: str):
  """The ``ExperimentConfig`` of a training flagfile (its settings; tool
  flags such as ``--log_dir`` are left out)."""
  from inpaint_tf import config as config_lib
  from inpaint_tf import config_flags

  fields = config_lib.field_sections()
  args = []
  with open(path) as f:
    for line in f:
      line = line.strip()
      name = line[2:].split('=', 1)[0]
      if line.startswith('--') and (name in fields or name[2:] in fields):
        args.append(line)
  values = flags.FlagValues()
  config_flags.define_flags(values)
  values(['benchmark'] + args)
  return config_flags.experiment_from_flags(values)


def training_section() -> None:
  """Steps per second of ``Trainer.train``, with and without XLA."""
  from inpaint_tf import config as config_lib
  from inpaint_tf import data as data_lib
  from inpaint_tf import training

  recipe = _recipe_config(FLAGS.awa_flagfile)
  config = recipe.replace(pretrain_steps=0, eval_every=0, image_every=10**9,
                          checkpoint_every=10**9)
  setups = {'uncompiled': config}
  if 'jit_compile' in config_lib.field_sections():
    setups['--jit_compile'] = config.replace(jit_compile=True)
  work = tempfile.mkdtemp(prefix='benchmark_training_')
  trainers, done = {}, {}
  for name, setup in setups.items():
    trainer = training.Trainer(os.path.join(work, str(len(trainers))),
                               data_lib.make_dataset_fn(setup), setup,
                               progress_stream=False)
    trainer.train(2)  # Traces (and compiles) the steps.
    trainers[name], done[name] = trainer, 2
  rates = {name: [] for name in setups}
  for _ in range(FLAGS.repeats):
    for name, trainer in trainers.items():
      start = time.perf_counter()
      done[name] += FLAGS.train_steps
      trainer.train(done[name])
      rates[name].append(FLAGS.train_steps / (time.perf_counter() - start))
  base = float(np.median(rates['uncompiled']))
  rows = [(name, f'{np.median(r):.2f}', f'{np.median(r) / base:.2f}x')
          for name, r in rates.items()]
  t = config.train
  print_table(f'Training steps (n_critic={config.optimizer.n_critic} critic '
              f'+ 1 generator update), {config.model.variant} '
              f'cnum={config.model.cnum}, B={t.batch_size} '
              f'{t.image_size}x{t.image_size}, data {config.data.data}, '
              f'masks {config.masks.mask_type}, log_every={t.log_every}',
              ('step', 'steps/s', 'vs uncompiled'), rows)


def data_section() -> None:
  """The input pipeline: masks drawn in Python, and batches per second."""
  from inpaint_tf import data as data_lib
  from inpaint_tf import masks as masks_lib

  recipe = _recipe_config(FLAGS.awa_flagfile)
  rows = []
  for size, scaled in ((recipe.train.image_size, recipe),
                       (256, recipe.replace(image_size=256).scaled())):
    for kind in ('square', 'free_form', 'mixed'):
      config = scaled.replace(mask_type=kind)
      mask_fn = masks_lib.make_mask_fn(config.masks, size, size)
      rng = np.random.default_rng(0)
      start = time.perf_counter()
      for _ in range(200):
        mask_fn(rng)
      per_mask = (time.perf_counter() - start) / 200
      dataset = data_lib.make_dataset_fn(config)(0)
      iterator = iter(dataset)
      for _ in range(5):  # Warm-up: the shuffle buffer, the first reads.
        next(iterator)
      start = time.perf_counter()
      for _ in range(50):
        next(iterator)
      rate = 50 / (time.perf_counter() - start)
      batch = config.train.batch_size
      rows.append((f'{size}x{size}', kind, batch, f'{1000 * per_mask:.3f}',
                   f'{1000 * per_mask * batch:.2f}', f'{rate:.1f}'))
  print_table(f'Input pipeline ({recipe.data.data}, the recipe of '
              f'{FLAGS.awa_flagfile}): masks are drawn in Python '
              '(tf.numpy_function) in the parallel map',
              ('image', 'mask_type', 'batch', 'ms/mask', 'ms/batch of masks',
               'batches/s'), rows)


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
                          timeout=FLAGS.inference_timeout,
                          cwd=os.path.dirname(os.path.dirname(
                              os.path.abspath(__file__))))
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


def main(argv):
  del argv
  if FLAGS.inference_case:
    print(json.dumps(inference_case(json.loads(FLAGS.inference_case))))
    return
  sections = {'attention': attention_section, 'generator': generator_section,
              'awa': awa_section, 'training': training_section,
              'data': data_section,
              'inference': inference_section}
  for name in FLAGS.sections:
    if name not in sections:
      raise ValueError(
          f'--sections: expected a subset of {sorted(sections)}, got {name!r}')
  for name in FLAGS.sections:
    sections[name]()


if __name__ == '__main__':
  _cli.run_main(main)
