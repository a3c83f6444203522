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

from absl import flags

from .benchmarks import attention
from .benchmarks import common
from .benchmarks import inference
from .benchmarks import training

FLAGS = flags.FLAGS
flags.DEFINE_list('sections', ['attention', 'generator', 'awa'],
                  'Sections to run: attention, generator, awa, training, '
                  'data, inference.')
# The sections' flags are this tool's (--help lists them).
for _module in (common, attention, training, inference):
  flags.adopt_module_key_flags(_module)


def main(argv):
  del argv
  if FLAGS.inference_case:
    print(json.dumps(inference.inference_case(
        json.loads(FLAGS.inference_case))))
    return
  sections = {'attention': attention.attention_section,
              'generator': training.generator_section,
              'awa': training.awa_section,
              'training': training.training_section,
              'data': training.data_section,
              'inference': inference.inference_section}
  for name in FLAGS.sections:
    if name not in sections:
      raise ValueError(
          f'--sections: expected a subset of {sorted(sections)}, got {name!r}')
  for name in FLAGS.sections:
    sections[name]()


if __name__ == '__main__':
  _cli.run_main(main)
