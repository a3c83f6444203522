"""The resumable training stream: batches counted in a checkpointed variable."""

from __future__ import annotations

import tensorflow as tf

from inpaint_tf import data as data_lib


def distributed_dataset(dataset_fn: data_lib.DatasetFn,
                        strategy: tf.distribute.Strategy, start: int):
  """``dataset_fn(start)`` distributed over the strategy's replicas."""
  options = tf.data.Options()
  options.experimental_distribute.auto_shard_policy = (
      tf.data.experimental.AutoShardPolicy.DATA)
  dataset = dataset_fn(start).with_options(options)
  return strategy.experimental_distribute_dataset(dataset)


class BatchStream:
  """Iterator over the distributed stream from batch ``batches`` on.

  Every batch drawn advances ``batches`` (an int64 variable saved in the
  checkpoint), so a restored run continues the stream where the saved one
  was. The variable is read once, when the stream is made; drawing a batch
  only adds to it on the device, so no step waits for the device to read a
  counter. After a restore, make a new stream.

  Args:
    dataset_fn: the training stream from a batch index.
    strategy: the distribution strategy.
    batches: the variable counting the batches read.
  """

  def __init__(self, dataset_fn: data_lib.DatasetFn,
               strategy: tf.distribute.Strategy, batches: tf.Variable):
    self._dataset_fn = dataset_fn
    self._strategy = strategy
    self._batches = batches
    self._iterator = None
    self.position = int(batches.numpy())

  def __iter__(self):
    return self

  def __next__(self):
    if self._iterator is None:
      self._iterator = iter(distributed_dataset(
          self._dataset_fn, self._strategy, self.position))
    batch = next(self._iterator)
    self._batches.assign_add(1)
    self.position += 1
    return batch
