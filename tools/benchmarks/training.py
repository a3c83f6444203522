"""Benchmark sections 'generator', 'awa', 'training' and 'data'.

The cost of training: the generator variants' forward+backward pass, an
AWA training step against plain ones, ``Trainer.train`` with and without
XLA, and the input pipeline; the last three at the settings of a training
flagfile (``--awa_flagfile``).
"""

from __future__ import annotations

import os
import tempfile
import time

from absl import flags
import numpy as np
import tensorflow as tf

from .common import print_table
from .common import time_interleaved

FLAGS = flags.FLAGS
flags.DEFINE_integer('gen_size', 256, 'Generator: image size.')
flags.DEFINE_integer('gen_batch', 2, 'Generator: batch size.')
flags.DEFINE_string('awa_flagfile', 'flags/demo.cfg',
                    'AWA and training: training flagfile whose settings '
                    '(AWA: image_size, cnum, batch_size, critic filters, '
                    'n_critic; training: all) are measured.')
flags.DEFINE_integer('train_steps', 20,
                     'Training: steps per timed round (adversarial steps of '
                     "the flagfile's recipe, its data and cadence of logs).")


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
