"""Tests of inpaint_tf.awa: AWA's surrogate gradient, frozen-phi equivalence,
behaviour on a toy problem, and the reweighting baselines.

A tiny two-convolution generator stands in for GEPE-Net; it follows the same
conventions (``gen((masked, mask))``, ``gen.output_layer``) and has a
functional twin, ``tiny_forward``, so that the exact gradient of the
guidance metric with respect to phi can be taken by differentiating through
the look-ahead update with nested tapes.
"""

import os
import subprocess
import sys

from absl.testing import parameterized
import cv2
import numpy as np
import tensorflow as tf

from inpaint_tf import config as config_lib
from inpaint_tf import lpips as lpips_lib
from inpaint_tf import perceptual
from inpaint_tf import plots
from inpaint_tf import reweighting
from inpaint_tf import vgg as vgg_lib
from inpaint_tf.config import AWAConfig
from inpaint_tf.keras_api import keras
from inpaint_tf.training import steps as steps_lib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class TinyGenerator(keras.Model):
  """conv3x3 + ELU, conv3x3 (``output_layer``), clip to [-1, 1]."""

  def __init__(self, hidden=4):
    super().__init__()
    self.hidden = keras.layers.Conv2D(hidden, 3, padding='same',
                                      activation='elu')
    self.output_layer = keras.layers.Conv2D(3, 3, padding='same')

  def call(self, inputs, training=None):
    masked, mask = inputs
    x = tf.concat([masked, tf.ones_like(mask), mask], axis=-1)
    return tf.clip_by_value(self.output_layer(self.hidden(x)), -1.0, 1.0)


def make_tiny(seed, size=32, hidden=4, std=0.4):
  gen = TinyGenerator(hidden)
  gen((tf.zeros([1, size, size, 3]), tf.zeros([1, size, size, 1])))
  rng = np.random.default_rng(seed)
  gen.set_weights([rng.normal(0, std, v.shape).astype(np.float32)
                   for v in gen.weights])
  return gen


def tiny_forward(params, masked, mask):
  k1, b1, k2, b2 = params
  x = tf.concat([masked, tf.ones_like(mask), mask], axis=-1)
  h = tf.nn.elu(tf.nn.conv2d(x, k1, 1, 'SAME') + b1)
  return tf.clip_by_value(tf.nn.conv2d(h, k2, 1, 'SAME') + b2, -1.0, 1.0)


def make_batch(seed, batch=2, size=32):
  rng = np.random.default_rng(seed)
  images = rng.uniform(-1, 1, (batch, size, size, 3)).astype(np.float32)
  masks = np.zeros((batch, size, size, 1), np.float32)
  for i in range(batch):
    top, left = rng.integers(0, size // 2, 2)
    masks[i, top:top + size // 2, left:left + size // 2] = 1.0
  return tf.constant(images), tf.constant(masks)


def _selected(gen, config):
  return reweighting.selected_variables(gen, config.awa_all_parameters)


def _generator_step(reweighter, loss_fn, optimizer):
  """A tf.function: ``steps.reweighted_gradients``, then the update."""
  variables = reweighter.generator.trainable_variables

  @tf.function
  def step(batch, guidance_batch=None):
    result = steps_lib.reweighted_gradients(
        reweighter, loss_fn, batch, guidance_batch,
        learning_rate=optimizer.learning_rate)
    optimizer.apply_gradients(
        [(g, v) for g, v in zip(result.gradients, variables) if g is not None])
    return result

  return step


def main_loss(pred, images, masks):
  err = tf.abs(pred - images)
  return (tf.reduce_mean(err * (1.0 - masks)) +
          0.5 * tf.reduce_mean(err * masks))


def mae_metric(pred, images, masks):
  completed = pred * masks + images * (1.0 - masks)
  return 0.5 * tf.reduce_mean(tf.abs(completed - images))


class AWAGradientTest(tf.test.TestCase, parameterized.TestCase):

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    keras.utils.set_random_seed(0)
    cls.vgg = vgg_lib.VGGFeatures(weights=None)
    cls.lpips = lpips_lib.LPIPS.with_random_weights(seed=3)
    cls.batch = make_batch(1)
    cls.guidance_batch = make_batch(2)

  def _setup(self, seed=0):
    gen = make_tiny(seed)
    aux = perceptual.TunableAuxiliaryLoss(
        reweighting.tpl_tsl_weights(), features=self.vgg)
    rng = np.random.default_rng(seed + 10)
    aux.tunable.phi.assign(aux.tunable.phi + rng.normal(0, 0.5, 6))
    return gen, aux

  def _loss_fn(self, gen, aux, fast):
    def loss_fn(batch):
      images, masks = batch
      pred = gen((images * (1.0 - masks), masks), training=True)
      terms = aux.terms(pred, images, masks)
      return (main_loss(pred, images, masks),
              terms if fast else tuple(terms), pred)
    return loss_fn

  @parameterized.named_parameters(
      ('output_layer_fast', False, True, 'mae'),
      ('output_layer_generic', False, False, 'mae'),
      ('all_parameters', True, False, 'mae'),
      ('output_layer_lpips', False, True, 'lpips'),
  )
  def test_surrogate_gradient_is_exact_gradient_over_alpha(
      self, all_parameters, fast, guidance):
    alpha = 1e-3
    gen, aux = self._setup()
    (images, masks), (images2, masks2) = self.batch, self.guidance_batch
    params = [tf.constant(v.numpy()) for v in gen.trainable_variables]
    selected = [0, 1, 2, 3] if all_parameters else [2, 3]
    if guidance == 'lpips':
      metric = lambda p, x, m: tf.reduce_mean(
          self.lpips(p * m + x * (1.0 - m), x))
    else:
      metric = mae_metric

    # Exact: differentiate the metric at theta^1(phi) through the SGD step.
    with tf.GradientTape() as outer:
      w = aux.tunable()
      with tf.GradientTape() as inner:
        inner.watch(params)
        pred = tiny_forward(params, images * (1.0 - masks), masks)
        terms = perceptual.perceptual_style_terms(self.vgg, pred, images,
                                                  masks)
        total = main_loss(pred, images, masks) + tf.reduce_sum(
            w * tf.stack(terms))
      grads = inner.gradient(total, [params[i] for i in selected])
      moved = list(params)
      for i, g in zip(selected, grads):
        moved[i] = params[i] - alpha * g
      pred2 = tiny_forward(moved, images2 * (1.0 - masks2), masks2)
      value = metric(pred2, images2, masks2)
    exact = outer.gradient(value, aux.tunable.phi).numpy()

    config = AWAConfig(awa_all_parameters=all_parameters, guidance=guidance)
    reweighter = reweighting.AWAReweighter(
        aux.tunable, gen, _selected(gen, config), config, lpips=self.lpips)
    scalars = steps_lib.reweighted_gradients(
        reweighter, self._loss_fn(gen, aux, fast), self.batch,
        self.guidance_batch, learning_rate=alpha).scalars
    used = np.array([scalars[f'dphi_{n}'] for n in aux.tunable.names])
    scale = np.abs(exact).max()
    self.assertGreater(scale, 0.0)
    self.assertAllClose(alpha * used / scale, exact / scale, atol=2e-3)
    self.assertAllClose(scalars['guidance'], value, rtol=1e-4)
    # The look-ahead leaves the generator where it was.
    for v, p in zip(gen.trainable_variables, params):
      self.assertAllEqual(v, p)

  def test_two_step_lookahead_fast_equals_generic(self):
    results = []
    for fast in (True, False):
      gen, aux = self._setup(seed=4)
      config = AWAConfig(lookahead_steps=2, guidance='mae')
      reweighter = reweighting.AWAReweighter(
          aux.tunable, gen, _selected(gen, config), config)
      scalars = steps_lib.reweighted_gradients(
          reweighter, self._loss_fn(gen, aux, fast), self.batch,
          self.guidance_batch, learning_rate=1e-3).scalars
      results.append([float(scalars[f'dphi_{n}'])
                      for n in aux.tunable.names])
    scale = np.abs(results[1]).max()
    self.assertGreater(scale, 0.0)
    self.assertAllClose(np.array(results[0]) / scale,
                        np.array(results[1]) / scale, atol=1e-3)

  def test_reused_generator_gradient_lags_weights_by_one_step(self):
    results = []
    for name, config in (('awa', AWAConfig(guidance='mae')),
                         ('awa', AWAConfig(guidance='mae',
                                           reuse_generator_gradient=True)),
                         ('fixed', AWAConfig())):
      gen, aux = self._setup(seed=5)
      reweighter = reweighting.make_reweighter(name, aux.tunable, gen, config)
      results.append(steps_lib.reweighted_gradients(
          reweighter, self._loss_fn(gen, aux, True), self.batch,
          self.guidance_batch, learning_rate=1e-3))
    exact, reused, fixed = results
    names = ['dphi_' + n for n in perceptual.TERM_NAMES]
    self.assertAllClose([reused.scalars[n] for n in names],
                        [exact.scalars[n] for n in names], rtol=1e-5)
    # The generator step of the reusing variant is the one with the weights
    # before the update; that of Algorithm 1 uses the updated weights.
    self.assertAllClose(reused.weights, fixed.weights)
    self.assertNotAllClose(exact.weights, fixed.weights)
    for a, b in zip(reused.gradients, fixed.gradients):
      self.assertAllClose(a, b, rtol=1e-5, atol=1e-7)

  def test_frozen_phi_trains_like_standard_losses(self):
    config = AWAConfig()
    frozen = AWAConfig(awa_lr=0.0, awa_weight_decay=0.0,
                       guidance='mae')
    gens = [make_tiny(7) for _ in range(3)]
    auxes = [perceptual.TunableAuxiliaryLoss(
        reweighting.tpl_tsl_weights(), features=self.vgg) for _ in range(2)]
    reweighters = [
        reweighting.FixedReweighter(auxes[0].tunable, gens[0],
                                    _selected(gens[0], config)),
        reweighting.AWAReweighter(auxes[1].tunable, gens[1],
                                  _selected(gens[1], frozen), frozen)]
    sgd = [keras.optimizers.SGD(1e-3) for _ in range(3)]

    def standard_loss(pred, images, masks):
      # Perceptual + style losses written out independently.
      completed = pred * masks + images * (1.0 - masks)
      total = main_loss(pred, images, masks)
      for fo, fc, fg in zip(self.vgg(pred), self.vgg(completed),
                            self.vgg(images)):
        size = float(np.prod(fo.shape[1:]))
        gram = lambda f: tf.einsum('bhwc,bhwd->bcd', f, f) / size
        total += config.perceptual_base * (
            tf.reduce_mean(tf.abs(fo - fg)) + tf.reduce_mean(tf.abs(fc - fg)))
        total += config.style_base * (
            tf.reduce_mean(tf.abs(gram(fo) - gram(fg))) +
            tf.reduce_mean(tf.abs(gram(fc) - gram(fg))))
      return total

    for step in range(3):
      batch = make_batch(20 + step)
      for gen, aux, rw, opt in zip(gens, auxes, reweighters, sgd):
        result = steps_lib.reweighted_gradients(
            rw, self._loss_fn(gen, aux, True), batch, make_batch(40 + step),
            learning_rate=opt.learning_rate)
        opt.apply_gradients(zip(result.gradients, gen.trainable_variables))
      images, masks = batch
      with tf.GradientTape() as tape:
        pred = gens[2]((images * (1.0 - masks), masks))
        loss = standard_loss(pred, images, masks)
      variables = gens[2].trainable_variables
      sgd[2].apply_gradients(zip(tape.gradient(loss, variables), variables))
      self.assertAllClose(result.total_loss, loss, rtol=1e-5)
      for a, b, c in zip(*[g.trainable_variables for g in gens]):
        self.assertAllClose(a, c, rtol=1e-4, atol=1e-6)
        self.assertAllClose(b, c, rtol=1e-4, atol=1e-6)
    for aux in auxes:
      self.assertAllClose(aux.tunable(), aux.tunable.base)


class ToyProblemTest(tf.test.TestCase):
  """Term 'helpful' pulls the hole towards the truth, 'hurtful' towards its
  negative (squared errors); the main loss is the L1 error of the whole
  image."""

  size = 8
  batch = 4

  def setUp(self):
    super().setUp()
    keras.utils.set_random_seed(5)
    rng = np.random.default_rng(5)
    n = 64
    # Flat colours plus a little noise: the hole is predictable from the
    # known pixels around it.
    colours = rng.uniform(-0.8, 0.8, (n, 1, 1, 3))
    noise = rng.normal(0, 0.05, (n, self.size, self.size, 3))
    self.images = tf.constant(colours + noise, tf.float32)
    masks = np.zeros((n, self.size, self.size, 1), np.float32)
    masks[:, 2:6, 2:6] = 1.0
    self.masks = tf.constant(masks)
    self.gen = make_tiny(6, size=self.size, hidden=8, std=0.1)
    self.tunable = reweighting.TunableWeights([1.0, 1.0], [3.0, 3.0],
                                              names=('helpful', 'hurtful'))

  def loss_fn(self, batch):
    images, masks = batch
    pred = self.gen((images * (1.0 - masks), masks), training=True)
    helpful = tf.reduce_mean(tf.square(pred - images) * masks)
    hurtful = tf.reduce_mean(tf.square(pred + images) * masks)
    return tf.reduce_mean(tf.abs(pred - images)), (helpful, hurtful), pred

  def sample(self, step, stream):
    idx = tf.random.stateless_uniform([self.batch], [step, stream], 0, 64,
                                      tf.int32)
    return tf.gather(self.images, idx), tf.gather(self.masks, idx)

  def train(self, reweighter, steps, lr=0.2):
    step_fn = _generator_step(reweighter, self.loss_fn,
                              keras.optimizers.SGD(lr))
    results = []
    for step in range(steps):
      result = step_fn(self.sample(step, 0), self.sample(step, 1))
      results.append({k: float(v) for k, v in result.scalars.items()})
    return results

  def selected_gradients(self, batch):
    with tf.GradientTape(persistent=True) as tape:
      main, (a, b), _ = self.loss_fn(batch)
    variables = self.gen.output_layer.trainable_variables
    flat = lambda t: np.concatenate(
        [g.numpy().ravel() for g in tape.gradient(t, variables)])
    return flat(main), flat(a), flat(b), (float(a), float(b))

  def test_awa_raises_helpful_and_lowers_hurtful_weight(self):
    config = AWAConfig(guidance='mae')
    reweighter = reweighting.AWAReweighter(
        self.tunable, self.gen, _selected(self.gen, config), config)
    history = self.train(reweighter, 300, lr=0.2)
    w = self.tunable().numpy()
    self.assertGreater(w[0], 1.1)
    self.assertLess(w[1], 0.95)
    self.assertLess(np.mean([h['guidance'] for h in history[-20:]]),
                    history[0]['guidance'])

  def test_gradsim_drops_the_opposing_term(self):
    batch = self.sample(0, 0)
    g_main, g_a, g_b, _ = self.selected_gradients(batch)
    cos = lambda x, y: x @ y / np.linalg.norm(x) / np.linalg.norm(y)
    gates = np.array([cos(g_main, g_a) >= 0, cos(g_main, g_b) >= 0], float)
    self.assertAllEqual(gates, [1.0, 0.0])
    reweighter = reweighting.make_reweighter('gradsim', self.tunable, self.gen)
    result = steps_lib.reweighted_gradients(reweighter, self.loss_fn, batch)
    self.assertAllClose(result.weights, self.tunable.base * gates)
    self.assertAllClose(result.scalars['cos_helpful'], cos(g_main, g_a),
                        rtol=1e-4)

  def test_adaloss_weights_are_inverse_running_means(self):
    reweighter = reweighting.make_reweighter('adaloss', self.tunable, self.gen)
    opt = keras.optimizers.SGD(0.05)
    beta = AWAConfig().adaloss_momentum
    mean, constant = np.zeros(2), None
    for step in range(4):
      result = steps_lib.reweighted_gradients(reweighter, self.loss_fn,
                                              self.sample(step, 0))
      opt.apply_gradients(zip(result.gradients, self.gen.trainable_variables))
      terms = result.aux_terms.numpy().astype(np.float64)
      if constant is None:
        constant = np.mean(self.tunable.base.numpy() * terms)
      mean = beta * mean + (1 - beta) * terms
      expected = constant / (mean / (1 - beta ** (step + 1)))
      self.assertAllClose(result.weights, expected, rtol=1e-4)
    self.assertAllClose(reweighter.weights(), expected, rtol=1e-4)

  def test_gradnorm_follows_its_loss(self):
    batch = self.sample(0, 0)
    g_main, g_a, g_b, _ = self.selected_gradients(batch)
    w = self.tunable().numpy()
    norms = np.array([np.linalg.norm(g_a), np.linalg.norm(g_b)])
    weighted = w * norms
    target = np.mean([np.linalg.norm(g_main), *weighted])  # ratios are 1.
    sigma = 1.0 / self.tunable.scale.numpy()  # sigmoid(phi) at the start.
    expected = np.sign(weighted - target) * norms * w * (1 - sigma)
    reweighter = reweighting.make_reweighter('gradnorm', self.tunable, self.gen)
    result = steps_lib.reweighted_gradients(reweighter, self.loss_fn, batch)
    got = [result.scalars['dphi_helpful'], result.scalars['dphi_hurtful']]
    self.assertAllClose(got, expected, rtol=1e-4)
    self.assertAllClose(result.scalars['gradnorm_loss'],
                        np.abs(weighted - target).sum(), rtol=1e-4)
    # With the generator frozen the norms stay put and the weighted norms
    # must approach their common target.
    step_fn = _generator_step(reweighter, self.loss_fn,
                              keras.optimizers.SGD(0.0))
    losses = [float(step_fn(batch).scalars['gradnorm_loss'])
              for _ in range(200)]
    self.assertLess(losses[-1], 0.95 * losses[0])
    self.assertTrue(np.all(np.diff(losses) < 1e-6))
    # Both weighted norms started below the target (the main loss's norm is
    # larger), so both weights grew.
    self.assertTrue(np.all(weighted < target))
    self.assertTrue(np.all(self.tunable().numpy() > w))

  def test_fixed_weights_never_move(self):
    # A copy of the generator trained on main + base . terms, written out.
    twin = make_tiny(6, size=self.size, hidden=8, std=0.1)
    twin_opt = keras.optimizers.SGD(0.2)
    base = self.tunable.base.numpy()
    phi = self.tunable.phi.numpy()
    reweighter = reweighting.make_reweighter('fixed', self.tunable, self.gen)
    history = self.train(reweighter, 3, lr=0.2)
    for step in range(3):
      images, masks = self.sample(step, 0)
      with tf.GradientTape() as tape:
        pred = twin((images * (1.0 - masks), masks), training=True)
        loss = (tf.reduce_mean(tf.abs(pred - images)) +
                base[0] * tf.reduce_mean(tf.square(pred - images) * masks) +
                base[1] * tf.reduce_mean(tf.square(pred + images) * masks))
      grads = tape.gradient(loss, twin.trainable_variables)
      twin_opt.apply_gradients(zip(grads, twin.trainable_variables))
      self.assertAllClose([history[step]['w_helpful'],
                           history[step]['w_hurtful']], base, rtol=1e-6)
    self.assertAllEqual(self.tunable.phi, phi)
    self.assertAllClose(reweighter.weights(), base, rtol=1e-6)
    for a, b in zip(self.gen.trainable_variables, twin.trainable_variables):
      self.assertAllClose(a, b, rtol=1e-5, atol=1e-6)


class InterfaceTest(tf.test.TestCase):

  def setUp(self):
    super().setUp()
    self.gen = make_tiny(0, size=16)
    self.tunable = reweighting.TunableWeights([1.0], [3.0])

  def test_factory_covers_every_name(self):
    for name in config_lib.REWEIGHTERS:
      config = AWAConfig(guidance='mae')
      reweighter = reweighting.make_reweighter(name, self.tunable, self.gen,
                                               config)
      self.assertIsInstance(reweighter, reweighting.Reweighter)
      self.assertEqual(reweighter.uses_guidance, name == 'awa')
      self.assertEqual(reweighter.weights().shape, (1,))
    with self.assertRaisesRegex(ValueError, 'reweighter: expected one of'):
      reweighting.make_reweighter('uncertainty', self.tunable, self.gen)

  def test_bad_arguments(self):
    selected = _selected(self.gen, AWAConfig())
    with self.assertRaisesRegex(ValueError, 'lpips: .*needs an LPIPS'):
      reweighting.AWAReweighter(self.tunable, self.gen, selected,
                                AWAConfig(guidance='lpips'))
    with self.assertRaisesRegex(ValueError, 'lpips_weights: '):
      reweighting.make_reweighter('awa', self.tunable, self.gen, AWAConfig())
    with self.assertRaisesRegex(ValueError, 'guidance: expected one of'):
      reweighting.AWAReweighter(self.tunable, self.gen, selected,
                                AWAConfig(guidance='ssim'))
    plain = keras.Sequential([keras.layers.Dense(3)])
    with self.assertRaisesRegex(ValueError, 'output_layer'):
      reweighting.make_reweighter('gradsim', self.tunable, plain)
    reweighter = reweighting.make_reweighter('awa', self.tunable, self.gen,
                                             AWAConfig(guidance='mae'))
    loss_fn = lambda batch: (tf.constant(0.0), (tf.constant(1.0),), None)
    with self.assertRaisesRegex(ValueError, 'guidance_batch: '):
      steps_lib.reweighted_gradients(reweighter, loss_fn,
                                     make_batch(0, size=16))
    bad_fn = lambda batch: (tf.constant(0.0), (tf.constant(1.0),) * 2, None)
    with self.assertRaisesRegex(ValueError, 'terms: expected 1 scalar'):
      steps_lib.reweighted_gradients(reweighter, bad_fn, make_batch(0, size=16),
                                     make_batch(1, size=16))
    with self.assertRaisesRegex(ValueError, "^learning_rate: AWA's look"):
      steps_lib.reweighted_gradients(reweighter, loss_fn,
                                     make_batch(0, size=16),
                                     make_batch(1, size=16))

  def test_checkpoint_round_trip(self):
    def loss_fn(batch):
      images, masks = batch
      pred = self.gen((images * (1.0 - masks), masks))
      return tf.reduce_mean(tf.abs(pred - images)), (
          tf.reduce_mean(tf.abs(pred - images) * masks),), pred
    reweighter = reweighting.make_reweighter('awa', self.tunable, self.gen,
                                             AWAConfig(guidance='mae'))
    steps_lib.reweighted_gradients(reweighter, loss_fn, make_batch(0, size=16),
                                   make_batch(1, size=16), learning_rate=1e-4)
    path = tf.train.Checkpoint(reweighter=reweighter).save(
        os.path.join(self.get_temp_dir(), 'ckpt'))
    other_tunable = reweighting.TunableWeights([1.0], [3.0])
    other = reweighting.make_reweighter('awa', other_tunable,
                                        make_tiny(9, size=16),
                                        AWAConfig(guidance='mae'))
    tf.train.Checkpoint(reweighter=other).restore(path).assert_consumed()
    self.assertAllEqual(other_tunable.phi, self.tunable.phi)
    self.assertEqual(int(other.optimizer.iterations), 1)
    self.assertNotIn(self.gen.trainable_variables[0].ref(),
                     {v.ref() for v in reweighter.variables})


class PlotWeightsTest(tf.test.TestCase):
  """tools/plot_weights.py and inpaint_tf.plots on a synthetic weights CSV."""

  def _write_csv(self, path, rows=60):
    steps = np.arange(rows) * 10
    weights = np.stack(
        [0.1 + 0.01 * k * np.log1p(steps) for k in range(1, 4)] +
        [250 + 20 * k * np.sin(steps / 100.0) for k in range(1, 4)], axis=1)
    with open(path, 'w') as f:
      f.write('step,' + ','.join(perceptual.WEIGHT_NAMES) + '\n')
      for s, w in zip(steps, weights):
        f.write(f'{s},' + ','.join(f'{x:.6f}' for x in w) + '\n')
    return steps, weights

  def test_reads_csv_and_draws_one_panel_per_loss(self):
    path = os.path.join(self.get_temp_dir(), 'weights.csv')
    steps, weights = self._write_csv(path)
    got_steps, got_weights, names = plots.read_weights_csv(path)
    self.assertEqual(names, perceptual.WEIGHT_NAMES)
    self.assertAllClose(got_steps, steps)
    self.assertAllClose(got_weights, weights, atol=1e-6)
    image = plots.weight_curves_image(got_steps, got_weights, names,
                                      width=600, panel_height=200)
    self.assertEqual(image.shape, (400, 600, 3))
    for panel in (image[:200], image[200:]):
      for colour in plots._COLOURS[:3]:  # pylint: disable=protected-access
        hits = np.all(panel == np.array(colour, np.uint8), axis=-1).sum()
        self.assertGreater(hits, 20)  # The curve and its legend entry.
    bad = os.path.join(self.get_temp_dir(), 'bad.csv')
    with open(bad, 'w') as f:
      f.write('step,w_perc_1\n0,0.1\n1,abc\n')
    with self.assertRaisesRegex(ValueError, 'line 3: expected numbers'):
      plots.read_weights_csv(bad)

  def test_tool_writes_png_and_reports_bad_input(self):
    tmp = self.get_temp_dir()
    path = os.path.join(tmp, 'weights.csv')
    self._write_csv(path)
    empty = os.path.join(tmp, 'empty.csv')
    open(empty, 'w').close()
    out = os.path.join(tmp, 'weights.png')
    env = dict(os.environ, PYTHONPATH=ROOT)
    run = lambda *a: subprocess.Popen(
        [sys.executable, '-m', 'tools.plot_weights', *a], cwd=ROOT, env=env,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    good = run(f'--csv={path}', f'--output={out}')
    failing = run(f'--csv={empty}', f'--output={out}.bad.png')
    _, err = failing.communicate(timeout=300)
    self.assertEqual(failing.returncode, 1)
    self.assertRegex(err, 'error: --csv: .* is empty')
    stdout, err = good.communicate(timeout=300)
    self.assertEqual(good.returncode, 0, err)
    self.assertIn('6 weights over 60 rows', stdout)
    image = cv2.imread(out)
    self.assertEqual(image.shape, (640, 900, 3))
    self.assertFalse(os.path.exists(f'{out}.bad.png'))


if __name__ == '__main__':
  tf.test.main()
