"""Plain numpy convolutions used as independent references in the tests.

They follow TensorFlow's SAME padding rule (``pad_total = max((out - 1) *
stride + effective_k - in, 0)``, the smaller half on the top/left) and
compute in float64.
"""

import numpy as np


def _same_pads(size: int, k_eff: int, stride: int):
  out = -(-size // stride)
  total = max((out - 1) * stride + k_eff - size, 0)
  return out, total // 2, total - total // 2


def conv2d(x, kernel, bias=None, stride=1, dilation=1):
  """SAME 2-D convolution.

  Args:
    x: [B,H,W,Cin] array.
    kernel: [kh,kw,Cin,Cout] array.
    bias: optional [Cout] array.
    stride: stride of both axes.
    dilation: dilation of both axes.

  Returns:
    [B,ceil(H/stride),ceil(W/stride),Cout] float64 array.
  """
  x = np.asarray(x, np.float64)
  kernel = np.asarray(kernel, np.float64)
  kh, kw = kernel.shape[:2]
  _, h, w, _ = x.shape
  oh, top, bottom = _same_pads(h, (kh - 1) * dilation + 1, stride)
  ow, left, right = _same_pads(w, (kw - 1) * dilation + 1, stride)
  xp = np.pad(x, ((0, 0), (top, bottom), (left, right), (0, 0)))
  out = np.zeros((x.shape[0], oh, ow, kernel.shape[3]))
  for i in range(kh):
    for j in range(kw):
      patch = xp[:, i * dilation:i * dilation + (oh - 1) * stride + 1:stride,
                 j * dilation:j * dilation + (ow - 1) * stride + 1:stride, :]
      out += patch @ kernel[i, j]
  if bias is not None:
    out += np.asarray(bias, np.float64)
  return out


def depthwise_conv2d(x, kernel, dilation=1):
  """SAME depthwise convolution with depth multiplier 1.

  Args:
    x: [B,H,W,C] array.
    kernel: [kh,kw,C,1] array.
    dilation: dilation of both axes.

  Returns:
    [B,H,W,C] float64 array.
  """
  kernel = np.asarray(kernel, np.float64)
  channels = kernel.shape[2]
  # A depthwise convolution is a standard one with a diagonal kernel.
  full = np.zeros(kernel.shape[:2] + (channels, channels))
  for c in range(channels):
    full[:, :, c, c] = kernel[:, :, c, 0]
  return conv2d(x, full, dilation=dilation)


def elu(x):
  return np.where(x > 0, x, np.expm1(np.minimum(x, 0)))


def leaky_relu(x, alpha=0.2):
  return np.where(x > 0, x, alpha * x)
