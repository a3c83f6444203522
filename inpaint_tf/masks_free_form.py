"""Free-form hole masks: random brush strokes (DeepFill v2).

The strokes follow GMCNN's ``np_free_form_mask`` (the DeepFill v2
generator): random walks of thick line segments, ``parts`` of them merged.
Differences, all deliberate: every stroke has at least one vertex (GMCNN
may draw nothing), the joints are filled discs (GMCNN draws a 1-pixel
circle outline there, hidden by the round line caps anyway), points are
rounded (GMCNN truncates) and given to OpenCV as (x, y) (GMCNN swaps them,
which matters only for non-square images), and the ``parts`` strokes are
independent (GMCNN's graph version adds one ``py_func`` output to itself
``parts`` times, so its training masks are a single stroke).
"""

from __future__ import annotations

from typing import Optional

import cv2
import numpy as np

from inpaint_tf import config as config_lib
from inpaint_tf import image_io

# Free-form brushes are at least this wide (GMCNN's randint(10, max + 1)).
_MIN_BRUSH_WIDTH = 10


def free_form_mask(height: int, width: int, rng: np.random.Generator,
                   max_vertex: Optional[int] = None,
                   max_length: Optional[int] = None,
                   max_brush_width: Optional[int] = None,
                   max_angle: Optional[int] = None,
                   parts: Optional[int] = None) -> np.ndarray:
  """Free-form brush strokes (GMCNN ``np_free_form_mask``, DeepFill v2).

  Each of ``parts`` strokes starts at a uniform random pixel and makes
  1..``max_vertex`` segments; a segment turns by a random angle in
  ``[0, max_angle]`` degrees (mirrored on even segments), runs
  ``0..max_length`` pixels (clipped to the image) and has an even width in
  ``[min(10, max_brush_width), max_brush_width]``. Unset arguments take the
  ``MaskConfig`` defaults.

  Args:
    height: image height.
    width: image width.
    rng: random generator.
    max_vertex: maximum number of segments per stroke.
    max_length: maximum segment length in pixels.
    max_brush_width: maximum brush width in pixels (>= 2).
    max_angle: maximum turn in degrees.
    parts: number of strokes.

  Returns:
    float32 [H,W,1] in {0, 1}, 1 = hole.
  """
  h, w = image_io.check_image_size(height, width)
  defaults = config_lib.MaskConfig()
  args = {
      'max_vertex': (max_vertex, defaults.ff_max_vertex, 1),
      'max_length': (max_length, defaults.ff_max_length, 0),
      'max_brush_width': (max_brush_width, defaults.ff_max_brush_width, 2),
      'max_angle': (max_angle, defaults.ff_max_angle, 0),
      'parts': (parts, defaults.ff_parts, 1),
  }
  values = {}
  for name, (value, default, minimum) in args.items():
    value = default if value is None else value
    if (not isinstance(value, (int, np.integer)) or isinstance(value, bool)
        or value < minimum):
      raise ValueError(f'{name}: expected an int >= {minimum}, got {value!r}')
    values[name] = int(value)
  min_width = min(_MIN_BRUSH_WIDTH, values['max_brush_width'])

  canvas = np.zeros((h, w), np.uint8)
  for _ in range(values['parts']):
    y, x = int(rng.integers(h)), int(rng.integers(w))
    for i in range(int(rng.integers(1, values['max_vertex'] + 1))):
      angle = np.deg2rad(rng.integers(values['max_angle'] + 1))
      if i % 2 == 0:
        angle = 2 * np.pi - angle
      length = int(rng.integers(values['max_length'] + 1))
      brush = int(rng.integers(min_width, values['max_brush_width'] + 1))
      brush = max(brush // 2 * 2, 2)
      next_y = int(np.clip(np.rint(y + length * np.cos(angle)), 0, h - 1))
      next_x = int(np.clip(np.rint(x + length * np.sin(angle)), 0, w - 1))
      cv2.line(canvas, (x, y), (next_x, next_y), 1, brush)
      cv2.circle(canvas, (x, y), brush // 2, 1, -1)
      cv2.circle(canvas, (next_x, next_y), brush // 2, 1, -1)
      y, x = next_y, next_x
  return canvas.astype(np.float32)[..., None]
