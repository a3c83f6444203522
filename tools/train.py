r"""Trains GEPE-Net (or its S-Net / PE-Net ablations) with WGAN-GP critics.

  python -m tools.train --flagfile=flags/demo.cfg --log_dir=DIR --max_steps=N

Every flag can be overridden after the flagfile. There is one flag per
field of ``inpaint_tf.config.ExperimentConfig``, with its name, and the
defaults are the papers' values. Sizes given in pixels at the paper's
256x256 resolution (square hole size, its random shrink and margin,
free-form stroke length and width, local critic input, SVW kernel) scale
with ``--image_size`` unless set explicitly.

The run directory ``--log_dir`` holds ``config.json`` (every setting),
``generator.json``, checkpoints in ``ckpt/`` (a run resumes from the latest
one automatically) and TensorBoard events in ``tb/``. A resumed run may
change the schedule, the cadence and paths (it prints what changed); a
change of the model, its losses or its data stops it with one line naming
the setting. A NaN/inf loss stops the run with exit status 1 and a
message naming the term; the last good checkpoint is kept. SIGTERM (a
scheduler's pre-emption) and SIGINT (Ctrl-C) finish the current step,
write a checkpoint and exit with status 143 / 130; the same command then
continues the run exactly. Image files that cannot be read are skipped and
counted (one warning per file, the count at the end); data with no
readable image stops before the run directory is made.
"""

from . import _cli  # pylint: disable=g-bad-import-order

import os
import sys
from typing import Optional

from absl import flags

from inpaint_tf import config as config_lib
from inpaint_tf import config_flags
from inpaint_tf import data as data_lib
from inpaint_tf import training
from inpaint_tf import validation

FLAGS = flags.FLAGS

config_flags.define_flags()
flags.adopt_module_key_flags(config_flags)
# absl.logging defines --log_dir (used only by logging.use_absl_log_file,
# which nothing here calls); it is this tool's run directory.
flags.FLAGS['log_dir'].help = ('Run directory: config.json, generator.json, '
                               'ckpt/, tb/ (required).')


def build_validation_set(config: config_lib.ExperimentConfig
                         ) -> Optional[validation.ValidationSet]:
  """The held-out crops of ``--eval_every`` (None when it is 0)."""
  t, data = config.train, config.data
  if not t.eval_every:
    if data.eval_data:
      raise ValueError('--eval_data: given, but --eval_every is 0 (no '
                       'evaluation); set --eval_every=N')
    return None
  images = validation.default_eval_images(data.data, data.eval_data)
  if images is None:
    raise ValueError(f'--eval_every: expected --eval_data (a folder or file '
                     f'list of held-out images) with --data={data.data}, got '
                     'none')
  return validation.ValidationSet(images, t.image_size, config.masks,
                                  t.eval_crops_per_image, t.eval_seed)


def main(argv):
  if len(argv) > 1:
    raise ValueError(f'unexpected arguments: {" ".join(argv[1:])}')
  _cli.require(data=FLAGS.data, log_dir=FLAGS.log_dir)
  config = config_flags.experiment_from_flags()
  # Before any other TensorFlow work: multi-worker collectives must be
  # configured at program start-up.
  strategy = training.make_strategy(config.train.strategy)
  training.configure_determinism(config.train.seed, config.train.deterministic)
  skipped = data_lib.SkipCounter()
  dataset_fn = data_lib.make_dataset_fn(config, skip_counter=skipped)
  validation_set = build_validation_set(config)
  trainer = training.Trainer(FLAGS.log_dir, dataset_fn, config,
                             strategy=strategy, validation_set=validation_set)
  if trainer.restored_from:
    changed = (f'; changed: {", ".join(trainer.config_changes)}'
               if trainer.config_changes else '')
    print(f'resuming from {trainer.restored_from} '
          f'(step {int(trainer.step.numpy())}){changed}', file=sys.stderr)
  try:
    with training.stop_on_signals(trainer):
      trainer.train(config.train.max_steps)
  except training.TrainingInterrupted as err:
    print(f'{err}; {skipped.summary()}', file=sys.stderr, flush=True)
    return err.exit_status
  except training.NonFiniteLossError as err:
    print(_cli.error_line(err), file=sys.stderr, flush=True)
    return 1
  print(skipped.summary(), file=sys.stderr)
  print(f'trained to step {int(trainer.step.numpy())}; checkpoints in '
        f'{trainer.checkpoints.directory}', file=sys.stderr)
  if trainer.eval_seconds:
    share = trainer.eval_seconds / max(trainer.train_seconds, 1e-9)
    print(f'validation: {trainer.eval_seconds:.1f} s, {100 * share:.1f}% of '
          f'the {trainer.train_seconds:.1f} s of training steps; scores in '
          f'{os.path.join(FLAGS.log_dir, validation.EVAL_CSV)}',
          file=sys.stderr)
  return 0


if __name__ == '__main__':
  _cli.run_main(main)
