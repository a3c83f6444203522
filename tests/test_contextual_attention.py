"""ContextualAttention against the original TF1 outputs and basic calculus."""

import os

import numpy as np
import pytest
import tensorflow as tf

from inpaint_tf.keras_api import keras
from inpaint_tf.layers.contextual_attention import (ContextualAttention,
                                                    offsets_to_flow_image)

DATA = os.path.join(os.path.dirname(__file__), 'data')
TOLERANCE = 1e-4


def _layer_from_params(params, **kwargs):
  rate, fuse, scale, ksize, stride, fuse_k = params.tolist()
  return ContextualAttention(ksize=int(ksize), stride=int(stride),
                             rate=int(rate), fuse_k=int(fuse_k),
                             softmax_scale=scale, fuse=bool(fuse), **kwargs)


def _cases():
  data = np.load(os.path.join(DATA, 'contextual_attention_cases.npz'))
  names = sorted({key.split('/')[0] for key in data.files})
  return [(name, {k.split('/')[1]: data[k] for k in data.files
                  if k.startswith(name + '/')}) for name in names]


CASES = _cases()


@pytest.mark.parametrize('name', ['ca0', 'ca1'])
def test_golden_vectors(name):
  data = np.load(os.path.join(DATA, 'golden_tf1_reference.npz'))
  layer = _layer_from_params(data[name + '_params'])
  y = layer(data[name + '_f'], data[name + '_b'], data[name + '_mask'])
  np.testing.assert_allclose(y.numpy(), data[name + '_y'], atol=TOLERANCE,
                             rtol=0)


@pytest.mark.parametrize('name,case', CASES, ids=[c[0] for c in CASES])
def test_per_sample_masks_match_original(name, case):
  """Each sample equals the original run alone with that sample's mask."""
  del name
  layer = _layer_from_params(case['params'])
  f = tf.constant(case['f'])
  same = np.array_equal(case['f'], case['b'])
  b = f if same else tf.constant(case['b'])
  y = layer(f, b, case['mask'])
  np.testing.assert_allclose(y.numpy(), case['y'], atol=TOLERANCE, rtol=0)


def test_single_mask_broadcasts_over_batch():
  _, case = CASES[0]
  layer = _layer_from_params(case['params'])
  shared = case['mask'][:1]
  batched = np.repeat(shared, case['f'].shape[0], axis=0)
  a = layer(case['f'], case['f'], shared)
  b = layer(case['f'], case['f'], batched)
  np.testing.assert_array_equal(a.numpy(), b.numpy())
  # And the first sample (whose mask it is) still matches the original.
  np.testing.assert_allclose(a.numpy()[:1], case['y'][:1], atol=TOLERANCE)


def test_jit_matches_eager_and_dynamic_batch():
  case = dict(CASES)['rate2_fuse']
  layer = _layer_from_params(case['params'])
  eager = layer(case['f'], case['f'], case['mask']).numpy()
  spec = tf.TensorSpec([None] + list(case['f'].shape[1:]), tf.float32)
  mspec = tf.TensorSpec([None] + list(case['mask'].shape[1:]), tf.float32)

  @tf.function(input_signature=[spec, mspec], jit_compile=True)
  def compiled(x, m):
    return layer(x, x, m)

  np.testing.assert_allclose(compiled(case['f'], case['mask']).numpy(), eager,
                             atol=1e-5)
  np.testing.assert_allclose(
      compiled(case['f'][:1], case['mask'][:1]).numpy(), eager[:1], atol=1e-5)


def test_gradients_finite_and_match_finite_differences():
  rng = np.random.default_rng(0)
  f = rng.standard_normal((1, 8, 8, 3)).astype(np.float64)
  b = rng.standard_normal((1, 8, 8, 3)).astype(np.float64)
  mask = np.zeros((1, 8, 8, 1), np.float32)
  mask[:, 2:5, 3:6] = 1
  layer = ContextualAttention(rate=2, softmax_scale=2.0)
  probe = rng.standard_normal((1, 8, 8, 3))

  def objective(f_value, b_value):
    y = layer(tf.constant(f_value, tf.float32), tf.constant(b_value, tf.float32),
              mask)
    return tf.reduce_sum(tf.cast(y, tf.float64) * probe)

  fv, bv = tf.Variable(f, dtype=tf.float32), tf.Variable(b, dtype=tf.float32)
  with tf.GradientTape() as tape:
    y = layer(fv, bv, mask)
    loss = tf.reduce_sum(y * tf.constant(probe, tf.float32))
  grad_f, grad_b = tape.gradient(loss, [fv, bv])
  for grad in (grad_f, grad_b):
    assert np.all(np.isfinite(grad.numpy()))
    assert np.abs(grad.numpy()).max() > 0
  eps = 1e-2
  for index in [(0, 1, 1, 0), (0, 6, 2, 2), (0, 3, 7, 1)]:
    for which, grad in (('f', grad_f), ('b', grad_b)):
      plus, minus = f.copy(), f.copy()
      other = b
      if which == 'b':
        plus, minus, other = b.copy(), b.copy(), f
      plus[index] += eps
      minus[index] -= eps
      if which == 'f':
        numeric = (objective(plus, other) - objective(minus, other)) / (2 * eps)
      else:
        numeric = (objective(other, plus) - objective(other, minus)) / (2 * eps)
      np.testing.assert_allclose(grad.numpy()[index], numeric.numpy(),
                                 rtol=5e-2, atol=5e-3)


def test_no_usable_patch_gives_zero_output():
  """A hole covering everything leaves no patch: the original outputs zeros."""
  x = np.random.default_rng(1).standard_normal((2, 8, 8, 4)).astype(np.float32)
  y = ContextualAttention()(x, x, np.ones((2, 8, 8, 1), np.float32))
  np.testing.assert_array_equal(y.numpy(), 0.)


def _numpy_best_offsets(x, mask, ksize=3):
  """(dy, dx) from every position to its best usable background patch.

  Scores are correlations of ``ksize`` SAME-padded patches of ``x`` with the
  L2-normalised (floor 1e-4) patches of ``x``; a background patch is usable
  when it holds no hole pixel. Rate 1, no fusion.
  """
  _, h, w, _ = x.shape
  pad = (ksize - 1) // 2
  xp = np.pad(x[0], ((pad, ksize - 1 - pad), (pad, ksize - 1 - pad), (0, 0)))
  mp = np.pad(mask[0, ..., 0], ((pad, ksize - 1 - pad),
                                (pad, ksize - 1 - pad)))
  patches = np.stack([xp[i:i + ksize, j:j + ksize].ravel()
                      for i in range(h) for j in range(w)]).astype(np.float64)
  usable = np.array([mp[i:i + ksize, j:j + ksize].sum() == 0
                     for i in range(h) for j in range(w)])
  normed = patches / np.maximum(np.linalg.norm(patches, axis=1), 1e-4)[:, None]
  scores = patches @ normed.T
  scores[:, ~usable] = -np.inf
  best = scores.argmax(axis=1)
  offsets = np.stack([best // w - np.repeat(np.arange(h), w),
                      best % w - np.tile(np.arange(w), h)], axis=-1)
  return offsets.reshape(1, h, w, 2)


def test_flow_points_to_best_patch():
  """The flow image colours the numpy argmax offsets, hole or not."""
  rng = np.random.default_rng(2)
  x = rng.standard_normal((1, 10, 9, 4)).astype(np.float32)
  mask = np.zeros((1, 10, 9, 1), np.float32)
  mask[:, 2:7, 3:8] = 1
  layer = ContextualAttention(fuse=False, return_flow=True)
  y, flow = layer(x, x, mask)
  np.testing.assert_allclose(
      y.numpy(), ContextualAttention(fuse=False)(x, x, mask).numpy())
  offsets = _numpy_best_offsets(x, mask)
  # Positions in the hole must look outside it: their offsets are not 0.
  assert np.all(np.abs(offsets[0, 3:6, 4:7]).sum(-1) > 0)
  np.testing.assert_allclose(flow.numpy(),
                             offsets_to_flow_image(offsets).numpy(),
                             atol=1e-5)
  # With no hole, every position's best match is itself (normalised patches
  # maximise the correlation with themselves): zero offset, white.
  _, flow_none = layer(x, x, None)
  assert flow.shape == (1, 10, 9, 3)
  np.testing.assert_array_equal(_numpy_best_offsets(x, 0 * mask), 0)
  np.testing.assert_allclose(flow_none.numpy(), 1., atol=1e-6)


def test_flow_colours_follow_direction():
  offsets = np.zeros((1, 1, 4, 2), np.int32)
  offsets[0, 0] = [[0, 1], [0, -1], [1, 0], [-1, 0]]
  colours = (offsets_to_flow_image(offsets).numpy() + 1) * 127.5
  # Opposite directions get different colours; unit offsets lie on the
  # wheel's rim, so each has a saturated (255) channel.
  assert not np.allclose(colours[0, 0, 0], colours[0, 0, 1])
  assert not np.allclose(colours[0, 0, 2], colours[0, 0, 3])
  np.testing.assert_allclose(colours[0, 0].max(axis=-1), 255., atol=1e-3)


def test_config_round_trip_and_weights_free():
  layer = ContextualAttention(ksize=5, rate=2, fuse_k=2, softmax_scale=7.5,
                              fuse=False, return_flow=True, name='ca')
  clone = ContextualAttention.from_config(layer.get_config())
  assert clone.get_config() == layer.get_config()
  restored = keras.layers.deserialize(keras.layers.serialize(layer))
  assert isinstance(restored, ContextualAttention)
  assert restored.get_config() == layer.get_config()
  assert not layer.weights


@pytest.mark.parametrize('args,message', [
    (dict(f=np.zeros((8, 8, 4))), 'f: expected'),
    (dict(b=np.zeros((1, 8, 8, 3))), 'b: expected'),
    (dict(b=np.zeros((1, 6, 8, 4))), 'b: expected'),
    (dict(f=np.zeros((2, 8, 8, 4)), b=np.zeros((3, 8, 8, 4))),
     r'b: expected the batch size of f \(2\)'),
    (dict(mask=np.zeros((1, 8, 8, 2))), 'mask: expected'),
    (dict(mask=np.zeros((3, 8, 8, 1))), 'mask: expected'),
    (dict(mask=np.zeros((1, 4, 8, 1))), 'mask: expected'),
    (dict(f=np.zeros((1, 8, 8, 4), np.int32)), 'f: expected'),
])
def test_bad_input_raises_value_error(args, message):
  inputs = dict(f=np.zeros((1, 8, 8, 4), np.float32),
                b=np.zeros((1, 8, 8, 4), np.float32),
                mask=np.zeros((1, 8, 8, 1), np.float32))
  inputs.update(args)
  with pytest.raises(ValueError, match=message):
    ContextualAttention()(inputs['f'], inputs['b'], inputs['mask'])


def test_bad_arguments_raise_value_error():
  with pytest.raises(ValueError, match='stride: expected 1'):
    ContextualAttention(stride=2)
  with pytest.raises(ValueError, match='rate: expected'):
    ContextualAttention(rate=0)
  with pytest.raises(ValueError, match='divisible by rate=2'):
    ContextualAttention(rate=2)(np.zeros((1, 7, 8, 2), np.float32),
                                np.zeros((1, 7, 8, 2), np.float32))


@pytest.mark.parametrize('rate,fuse', [(1, True), (2, True), (2, False)])
def test_matches_per_sample_reference_structure(rate, fuse):
  """The benchmark's per-sample baseline computes the same function."""
  from tools.attention_reference import (
      contextual_attention_per_sample)
  rng = np.random.default_rng(rate)
  x = rng.standard_normal((3, 16, 12, 4)).astype(np.float32)
  mask = np.zeros((3, 16, 12, 1), np.float32)
  mask[0, 2:8, 3:9] = 1
  mask[1, 8:16, 0:6] = 1
  layer = ContextualAttention(rate=rate, fuse=fuse)
  expected = contextual_attention_per_sample(tf.constant(x), tf.constant(x),
                                             tf.constant(mask), rate=rate,
                                             fuse=fuse)
  np.testing.assert_allclose(layer(x, x, mask).numpy(), expected.numpy(),
                             atol=TOLERANCE)


def _scatter(shape, fraction, seed):
  rng = np.random.default_rng(seed)
  return (rng.uniform(size=shape[:3] + (1,)) < fraction).astype(np.float32)


def _reference_inputs():
  """Every reference case: (name, layer params, f, b, mask)."""
  golden = np.load(os.path.join(DATA, 'golden_tf1_reference.npz'))
  cases = [(name, golden[name + '_params'], golden[name + '_f'],
            golden[name + '_b'], golden[name + '_mask'])
           for name in ('ca0', 'ca1')]
  cases += [(name, case['params'], case['f'], case['b'], case['mask'])
            for name, case in CASES]
  return cases


REFERENCE_INPUTS = _reference_inputs()


@pytest.mark.parametrize('query', ['hole', 'scatter'])
@pytest.mark.parametrize('name,params,f,b,mask', REFERENCE_INPUTS,
                         ids=[c[0] for c in REFERENCE_INPUTS])
def test_query_mask_equals_full_layer(name, params, f, b, mask, query):
  """At queried positions the query path equals the full layer; else 0."""
  del name
  if query == 'hole':
    q = np.broadcast_to(mask, f.shape[:3] + (1,)).astype(np.float32)
  else:
    q = _scatter(f.shape, 0.2, seed=f.shape[1])
  # A small chunk makes several chunks per sample.
  layer = _layer_from_params(params, chunk_size=5, whole_map_positions=0)
  same = np.array_equal(f, b)
  ft = tf.constant(f)
  bt = ft if same else tf.constant(b)
  full = layer(ft, bt, mask).numpy()
  y = tf.function(lambda: layer(ft, bt, mask, query_mask=q))().numpy()
  np.testing.assert_allclose(y * q, full * q, atol=1e-5, rtol=0)
  np.testing.assert_array_equal(y * (1 - q), 0.)


def test_query_mask_chunk_size_and_broadcast_do_not_change_values():
  case = dict(CASES)['rate2_fuse']
  f, mask = case['f'], case['mask']
  q = _scatter(f.shape, 0.3, seed=3)[:1]
  def run(chunk, query):
    layer = _layer_from_params(case['params'], chunk_size=chunk,
                               whole_map_positions=0)
    return tf.function(lambda: layer(f, f, mask, query_mask=query))().numpy()

  results = [run(c, q) for c in (1, 7, 4096)]
  for other in results[1:]:
    np.testing.assert_allclose(other, results[0], atol=1e-6, rtol=0)
  # A [1,H,W,1] query applies to every sample.
  tiled = np.repeat(q, f.shape[0], axis=0)
  np.testing.assert_array_equal(run(7, tiled), results[1])


def test_query_mask_without_queries_gives_zeros():
  x = np.random.default_rng(4).standard_normal((2, 8, 8, 3)).astype(np.float32)
  for whole in (0, 16):
    y = ContextualAttention(rate=2, whole_map_positions=whole)(
        x, x, None, query_mask=np.zeros((2, 8, 8, 1)))
    np.testing.assert_array_equal(y.numpy(), 0.)


def test_small_maps_are_computed_whole_and_masked():
  """At most ``whole_map_positions`` positions: the full layer times q."""
  case = dict(CASES)['rate2_fuse']  # 32x32 at rate 2: 256 positions.
  f, mask = case['f'], case['mask']
  q = _scatter(f.shape, 0.3, seed=9)
  full = _layer_from_params(case['params'])(f, f, mask).numpy()
  whole = _layer_from_params(case['params'], whole_map_positions=256)
  np.testing.assert_array_equal(whole(f, f, mask, query_mask=q).numpy(),
                                full * q)
  chunked = _layer_from_params(case['params'], whole_map_positions=255)
  np.testing.assert_allclose(chunked(f, f, mask, query_mask=q).numpy(),
                             full * q, atol=1e-5, rtol=0)


@pytest.mark.parametrize('name,params,f,b,mask', REFERENCE_INPUTS,
                         ids=[c[0] for c in REFERENCE_INPUTS])
def test_query_mask_gradients_equal_full_layer(name, params, f, b, mask):
  """d(sum(y * probe * q))/d(f, b) of both paths agree (q: hole + scatter)."""
  del name
  q = np.maximum(np.broadcast_to(mask, f.shape[:3] + (1,)),
                 _scatter(f.shape, 0.1, seed=6)).astype(np.float32)
  probe = tf.constant(np.random.default_rng(5).standard_normal(
      f.shape).astype(np.float32))
  fv = tf.Variable(f)
  bv = tf.Variable(b)
  layer = _layer_from_params(params, chunk_size=6, whole_map_positions=0)

  def grads(query):
    with tf.GradientTape() as tape:
      y = layer(fv, bv, mask, query_mask=query)
      loss = tf.reduce_sum(y * probe * q)
    return tape.gradient(loss, [fv, bv])

  pairs = list(zip(tf.function(lambda: grads(q))(), grads(None)))
  # (Without a hole the softmax saturates and d/df underflows to 0.)
  assert any(np.abs(want.numpy()).max() > 0 for _, want in pairs)
  for got, want in pairs:
    want = want.numpy()
    scale = max(np.abs(want).max(), 1.)
    # float32 rounding of sums of up to a few thousand terms.
    np.testing.assert_allclose(got.numpy() / scale, want / scale, atol=1e-5,
                               rtol=0)


def test_query_mask_dynamic_batch_in_tf_function():
  case = dict(CASES)['rate2_fuse']
  layer = _layer_from_params(case['params'], chunk_size=9)
  spec = tf.TensorSpec([None] + list(case['f'].shape[1:]), tf.float32)
  mspec = tf.TensorSpec([None] + list(case['mask'].shape[1:]), tf.float32)

  @tf.function(input_signature=[spec, mspec, mspec])
  def run(x, m, q):
    return layer(x, x, m, query_mask=q)

  for n in (1, case['f'].shape[0]):
    f, mask = case['f'][:n], case['mask'][:n]
    np.testing.assert_allclose(run(f, mask, mask).numpy(),
                               layer(f, f, mask).numpy() * mask, atol=1e-5)
  three = np.concatenate([case['mask'], case['mask'][:1]])
  with pytest.raises(tf.errors.InvalidArgumentError,
                     match='query_mask: expected batch 1 or the batch of f'):
    run(case['f'], case['mask'], three)
  with pytest.raises(tf.errors.InvalidArgumentError,
                     match='mask: expected batch 1 or the batch of f'):
    run(case['f'], three, case['mask'])


@pytest.mark.parametrize('query,message', [
    (np.zeros((1, 8, 6, 1)), r'query_mask: expected \[B,8,8,1\]'),
    (np.zeros((1, 8, 8, 2)), 'query_mask: expected'),
    (np.zeros((3, 8, 8, 1)), 'query_mask: expected'),
    (np.zeros((8, 8, 1)), 'query_mask: expected'),
])
def test_bad_query_mask_raises_value_error(query, message):
  x = np.zeros((2, 8, 8, 4), np.float32)
  with pytest.raises(ValueError, match=message):
    ContextualAttention()(x, x, None, query_mask=query)


def test_query_mask_with_flow_is_refused():
  x = np.zeros((1, 8, 8, 4), np.float32)
  with pytest.raises(ValueError, match='query_mask: expected None with '
                     'return_flow'):
    ContextualAttention(return_flow=True)(x, x, None,
                                          query_mask=np.ones((1, 8, 8, 1)))
