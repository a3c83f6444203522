"""The training steps hold no op without a deterministic GPU kernel.

``--deterministic`` calls ``tf.config.experimental.enable_op_determinism``;
on a GPU an op without a deterministic kernel then raises (or, for the raw
softmax cross-entropy kernels, is not deterministic). The critic and the
generator steps of every variant, with and without AWA, are traced here
and their graphs searched, nested functions and loop bodies included. The
GPU behaviour follows by construction; no GPU runs here.
"""

import tensorflow as tf
from absl.testing import parameterized

from inpaint_tf import training
from inpaint_tf.training import steps as steps_lib
import training_testutil as util

# Op types without a deterministic GPU kernel in TensorFlow 2.15: with
# tf.config.experimental.enable_op_determinism() their kernels raise "A
# deterministic GPU implementation of ... is not currently available",
# "Deterministic GPU implementation of ... not available", "Determinism is
# not yet supported ..." or "Timestamp cannot be called when determinism is
# enabled" (DepthwiseConv2dNativeBackpropFilter where cuDNN cannot serve
# it); the raw softmax cross-entropy kernels are not deterministic ("The GPU
# implementation of ... that would have been executed is not
# deterministic"). Random ops without a seed are not listed: --deterministic
# seeds TensorFlow first, and the steps draw statelessly.
NONDETERMINISTIC_GPU_OPS = frozenset([
    'AdjustContrast', 'AdjustContrastv2', 'Bincount',
    'CropAndResizeGradBoxes', 'CropAndResizeGradImage', 'DenseBincount',
    'DepthwiseConv2dNativeBackpropFilter', 'Dilation2DBackpropFilter',
    'Dilation2DBackpropInput', 'FakeQuantWithMinMaxVarsGradient',
    'FakeQuantWithMinMaxVarsPerChannelGradient', 'MaxPoolGradWithArgmax',
    'ResizeNearestNeighborGrad', 'SoftmaxCrossEntropyWithLogits',
    'SparseSoftmaxCrossEntropyWithLogits', 'SparseTensorDenseMatMul',
    'Timestamp',
])
# Fused batch-norm backprop has none when training is disabled.
FUSED_BATCH_NORM_GRADS = frozenset([
    'FusedBatchNormGrad', 'FusedBatchNormGradV2', 'FusedBatchNormGradV3'])

# At this image size E3 and E4 have more attention positions than
# contextual_attention.DEFAULT_WHOLE_MAP_POSITIONS, so their hole-only
# attention takes the query path (layers/query_attention.py, a loop over
# chunks); at 32 pixels every map is computed whole.
QUERY_PATH_SIZE = 272


def graph_nodes(concrete):
  """(function name, NodeDef) of every node a concrete function runs.

  The graph's function library holds every function it calls, at any
  depth, and the bodies of its while loops and conditionals.
  """
  graph_def = concrete.graph.as_graph_def()
  for node in graph_def.node:
    yield concrete.graph.name, node
  for function in graph_def.library.function:
    for node in function.node_def:
      yield function.signature.name, node


def nondeterministic_ops(concrete):
  """``'<op> in <function> (<node>)'`` for each node in the lists above."""
  return [f'{node.op} in {function} ({node.name})'
          for function, node in graph_nodes(concrete)
          if node.op in NONDETERMINISTIC_GPU_OPS or (
              node.op in FUSED_BATCH_NORM_GRADS
              and not node.attr['is_training'].b)]


def traced_steps(variant, awa, size):
  """Concrete steps of a tiny config: critic (without AWA) and generator.

  The critic step does not involve the auxiliary terms or their
  reweighter, so it is traced once per variant, in the case without AWA;
  the generator step is the adversarial one. One ASPC branch: the op types
  do not depend on their number, the time to trace does.
  """
  fields = (dict(aux_losses='tpl_tsl', reweight='awa', vgg_weights=None,
                 guidance='mae') if awa else {})
  config = util.tiny_config(variant=variant, aspc_rates=(2,),
                            image_size=size, **fields)
  task = training.InpaintingTask(config)
  steps = steps_lib.TrainSteps(task, tf.distribute.get_strategy(), config)
  batch = {'image': tf.TensorSpec([2, size, size, 3]),
           'mask': tf.TensorSpec([2, size, size, 1])}
  generator = tf.function(
      lambda b, g: steps.generator_step(b, g, adversarial=True)
  ).get_concrete_function(batch, batch if awa else None)
  if awa:
    return [generator]
  critic = tf.function(steps.critic_step).get_concrete_function(
      batch, tf.TensorSpec([], tf.int64))
  return [critic, generator]


class ScanTest(tf.test.TestCase):

  def test_finds_ops_in_nested_functions_and_loops(self):
    @tf.function
    def inner(dy):
      return tf.raw_ops.ResizeNearestNeighborGrad(grads=dy, size=[4, 4])

    @tf.function
    def outer(dy):
      return tf.while_loop(lambda i, _: i < 2, lambda i, t: (i + 1, inner(t)),
                           (0, dy))[1]

    found = nondeterministic_ops(outer.get_concrete_function(
        tf.TensorSpec([1, 4, 4, 1])))
    self.assertLen(found, 1)
    self.assertRegex(found[0], r'^ResizeNearestNeighborGrad in __inference_'
                     r'inner_\d+ ')

  def test_fused_batch_norm_grad_only_without_training(self):
    def batch_norm_grad(training_mode):
      x = tf.TensorSpec([1, 2, 2, 3])
      return tf.function(lambda t: tf.raw_ops.FusedBatchNormGradV3(
          y_backprop=t, x=t, scale=tf.ones([3]), reserve_space_1=tf.ones([3]),
          reserve_space_2=tf.ones([3]), reserve_space_3=tf.ones([3]),
          is_training=training_mode)).get_concrete_function(x)

    self.assertEmpty(nondeterministic_ops(batch_norm_grad(True)))
    self.assertLen(nondeterministic_ops(batch_norm_grad(False)), 1)


class TrainingStepsTest(tf.test.TestCase, parameterized.TestCase):

  @parameterized.named_parameters(
      ('snet', 'snet', False, 32), ('snet_awa', 'snet', True, 32),
      ('penet', 'penet', False, 32), ('penet_awa', 'penet', True, 32),
      ('gepenet', 'gepenet', False, QUERY_PATH_SIZE),
      ('gepenet_awa', 'gepenet', True, 32))
  def test_no_op_without_deterministic_gpu_kernel(self, variant, awa, size):
    for concrete in traced_steps(variant, awa, size):
      ops = {node.op for _, node in graph_nodes(concrete)}
      # The backward pass and, at QUERY_PATH_SIZE, the query loop were
      # traced.
      self.assertIn('Conv2DBackpropFilter', ops)
      self.assertEqual('StatelessWhile' in ops, size == QUERY_PATH_SIZE)
      self.assertEmpty(nondeterministic_ops(concrete),
                       msg=f'{variant}, awa={awa}, {size} pixels')


if __name__ == '__main__':
  tf.test.main()
