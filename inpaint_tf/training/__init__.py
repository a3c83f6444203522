"""Training of GEPE-Net and its ablations (GEPE-Net Eq. 10, SPEC 4.3-4.5, 7).

Three rooms, in the manner of a task/trainer split:

* ``task``: the models and the loss terms of Eq. 10 (``InpaintingTask``);
* ``steps``: the distributed critic and generator updates, loss scaling,
  gradient application, reduction and the non-finite checks
  (``TrainSteps``);
* ``loop``: ``Trainer``, the loop around them: checkpoints and restore,
  summaries, progress, the weights and validation logs, and the resumable
  stream (``stream``); what it does after a step, and when, is a short
  list of ``actions.Action`` (scalars, images, validation, checkpoint).

``process`` holds the process-wide pieces (strategy, determinism, stop
signals) and ``logs`` the progress line and TensorBoard helpers.
"""

from inpaint_tf.progress import ProgressBar
from inpaint_tf.training.logs import image_grid
from inpaint_tf.training.logs import WeightsLog
from inpaint_tf.training.loop import Trainer
from inpaint_tf.training.process import configure_determinism
from inpaint_tf.training.process import make_strategy
from inpaint_tf.training.process import stop_on_signals
from inpaint_tf.training.process import TrainingInterrupted
from inpaint_tf.training.steps import NonFiniteLossError
from inpaint_tf.training.task import CRITIC_TERMS
from inpaint_tf.training.task import InpaintingTask
from inpaint_tf.training.task import LossTerm

__all__ = [
    'configure_determinism', 'CRITIC_TERMS', 'image_grid', 'InpaintingTask',
    'LossTerm', 'make_strategy', 'NonFiniteLossError', 'ProgressBar',
    'stop_on_signals', 'Trainer', 'TrainingInterrupted', 'WeightsLog',
]
