"""The loop's cadence: what ``Trainer.train`` does after a step, and when.

``Action``: one thing (read the scalars, write image grids, validate,
checkpoint) with the step intervals it runs at; ``Window``: the steps since
the scalars were last read (their sums stay on the device); ``Run``: the
state of one ``train`` call.
"""

from __future__ import annotations

import time
from typing import Any, Callable, NamedTuple, Optional, Tuple

from inpaint_tf import progress
from inpaint_tf.training import logs


class Window:
  """The steps since the scalars were last read: their sums and timing.

  Attributes:
    first_step: the step the window starts after.
    position: the stream's batch position then.
    eval_seconds: the trainer's validation seconds then.
    start: when it started (``time.perf_counter``).
    scalars: the ``logs.ScalarWindow`` of its steps.
    traced: whether a step of it traced a new phase (its time is not a
      step time).
  """

  def __init__(self, first_step: int, position: int, eval_seconds: float):
    self.first_step = first_step
    self.position = position
    self.eval_seconds = eval_seconds
    self.start = time.perf_counter()
    self.scalars = logs.ScalarWindow()
    self.traced = False


class Action(NamedTuple):
  """One thing the loop does after a step.

  Attributes:
    name: what it is (``scalars``, ``images``, ``validation``,
      ``checkpoint``).
    every: it runs after each step that is a multiple of one of these.
    run: ``step -> None``.
    at_stop: it also runs when a stop was requested.
  """
  name: str
  every: Tuple[int, ...]
  run: Callable[[int], Any]
  at_stop: bool = False

  def due(self, step: int, end: bool, stopping: bool) -> bool:
    """Whether it runs after ``step`` (``end``: the last of ``train``)."""
    return (end or (stopping and self.at_stop)
            or any(step % n == 0 for n in self.every))


class Run:
  """The state of one ``Trainer.train`` call.

  Attributes:
    max_steps: the target step.
    validate: whether it scores the validation set.
    bar: the progress bar, or None.
    window: the ``Window`` of the steps since the scalars were read.
  """

  def __init__(self, max_steps: int, validate: bool):
    self.max_steps = max_steps
    self.validate = validate
    self.bar: Optional[progress.ProgressBar] = None
    self.window: Optional[Window] = None
