"""A progress line for long loops: training steps, folders of images."""

from __future__ import annotations

import math
import sys
from typing import Mapping


def _format_seconds(seconds: float) -> str:
  if not math.isfinite(seconds):
    return '?'
  seconds = int(round(max(seconds, 0.0)))
  hours, rest = divmod(seconds, 3600)
  minutes, seconds = divmod(rest, 60)
  return f'{hours}:{minutes:02d}:{seconds:02d}'


class ProgressBar:
  """One status line: step/max, losses, images/s and ETA.

  On a terminal the line is redrawn in place (carriage return); on another
  stream one line is written every ``every`` steps, which keeps log files
  readable.

  Args:
    total: the last step.
    stream: text stream (default ``sys.stderr``).
    every: steps between lines on a non-terminal stream.
    width: characters of the bar.
  """

  def __init__(self, total: int, stream=None, every: int = 10,
               width: int = 20):
    self.total = total
    self.stream = stream if stream is not None else sys.stderr
    self.every = max(1, every)
    self.width = width
    isatty = getattr(self.stream, 'isatty', None)
    self.interactive = bool(isatty and isatty())
    self._open_line = False

  def line(self, step: int, scalars: Mapping[str, float],
           images_per_sec: float, eta_seconds: float) -> str:
    done = min(1.0, step / max(1, self.total))
    filled = int(round(done * self.width))
    bar = '#' * filled + '.' * (self.width - filled)
    terms = ' '.join(f'{k} {v:.4g}' for k, v in scalars.items())
    return (f'[{bar}] {step}/{self.total} {terms} | '
            f'{images_per_sec:.1f} img/s | ETA {_format_seconds(eta_seconds)}')

  def update(self, step: int, scalars: Mapping[str, float],
             images_per_sec: float, eta_seconds: float) -> None:
    if not self.interactive and step % self.every and step != self.total:
      return
    text = self.line(step, scalars, images_per_sec, eta_seconds)
    if self.interactive:
      self.stream.write('\r' + text + '\x1b[K')
      self._open_line = True
    else:
      self.stream.write(text + '\n')
    self.stream.flush()

  def close(self) -> None:
    if self._open_line:
      self.stream.write('\n')
      self.stream.flush()
      self._open_line = False
