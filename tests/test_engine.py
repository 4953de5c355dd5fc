"""The engine on a tiny regression: optimizer factory, member axis, update order, exact resume, per-member
best selection, NaN stop, SIGTERM, TensorBoard."""

import os
import signal

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest
from conftest import tb_scalars

from ganjax import engine
from ganjax.engine import driver, losses
from ganjax.engine.errors import InterruptedError_, TrainingDivergedError

N, B = 64, 16


def _opt(**kw):
  c = ml_collections.ConfigDict(dict(name="adam", learning_rate=0.1, b1=0.9, b2=0.999, schedule="constant",
                                     decay_length=0, decay_rate=0.5, decay_every=1, weight_decay=0.0))
  c.update(kw)
  return c


def _spec(opt=None, nan_after=None, repeats=1):
  """y = a x + b by least squares, shuffled epochs of B events; `a` and `b` are two models updated in turn."""
  opt = opt or _opt()

  def init(key):
    ka, kb = jax.random.split(key)
    return engine.Init(params={"a": jax.random.normal(ka, ()), "b": jax.random.normal(kb, ())},
                       key=jax.random.fold_in(key, 7), hyper={"scale": 1.0})

  def loss(params, batch, ctx):
    x, y = batch
    noise = 0.01 * jax.random.normal(ctx.key, y.shape)
    err = jnp.mean((params["a"] * x + params["b"] - y - noise) ** 2) * ctx.hyper["scale"]
    if nan_after is not None:
      err = jnp.where(ctx.step >= nan_after, jnp.nan, err)
    return err, {"abs_a": jnp.abs(params["a"])}

  def keys(key, epoch, steps_S):
    k = jax.random.fold_in(key, epoch)
    return k, jax.vmap(lambda i: jax.random.fold_in(k, i))(steps_S)

  sampler = engine.epoch_sampler(N, B, lambda d, idx: (d[0][idx], d[1][idx]), keys)
  tx = engine.make_optimizer(opt, total_steps=40, steps_per_unit=sampler.steps_per_epoch)
  return engine.TrainSpec(init, {"a": tx, "b": tx},
                          (engine.Update("fit_a", "a", loss, repeats), engine.Update("fit_b", "b", loss)), sampler)


def _data(m=None):
  x = jnp.linspace(-1, 1, N)
  y = 2.0 * x - 0.5
  if m is None:
    return x, y
  return jnp.stack([x] * m), jnp.stack([y + i for i in range(m)])


def test_optimizer_factory_forms_and_checks():
  params = {"w": jnp.ones(3)}
  grads = {"w": jnp.asarray([0.1, -0.2, 0.3])}
  for name in engine.optim.OPTIMIZERS:
    for schedule in engine.optim.SCHEDULES:
      cfg = _opt(name=name, schedule=schedule, weight_decay=0.01 if name == "adamw" else 0.0)
      plain, inj = engine.make_optimizer(cfg, 10), engine.make_optimizer(cfg, 10, inject=True)
      p1, s1, p2, s2 = params, plain.init(params), params, inj.init(params)
      for _ in range(3):
        u, s1 = plain.update(grads, s1, p1)
        p1 = optax.apply_updates(p1, u)
        u, s2 = inj.update(grads, s2, p2)
        p2 = optax.apply_updates(p2, u)
      np.testing.assert_allclose(p1["w"], p2["w"], rtol=1e-5, err_msg=f"{name}/{schedule}")
  # cosine to 0 after decay_length units: the 4th step (of 2 steps per unit, decay over 2 units) does nothing
  tx = engine.make_optimizer(_opt(name="sgd", schedule="cosine", decay_length=2), 100, steps_per_unit=2)
  s = tx.init(params)
  for i in range(5):
    u, s = tx.update(grads, s, params)
  np.testing.assert_array_equal(u["w"], 0.0)
  assert engine.optim.check(_opt(name="rmsprop"))[0].startswith("train.optimizer.name='rmsprop'")
  assert "schedule" in engine.optim.check(_opt(schedule="exp"))[0]
  st = engine.set_hyperparams(engine.make_optimizer(_opt(schedule="cosine"), 10, inject=True).init(params),
                              learning_rate=0.5, beta1=0.3)
  assert float(st[0].hyperparams["learning_rate"]) == 0.5 and np.isclose(st[0].hyperparams["beta1"], 0.3)


def test_losses_against_references():
  logit, label = jnp.asarray([-30.0, -1.0, 0.0, 2.0, 30.0]), jnp.asarray([1.0, 0.0, 0.3, 1.0, 0.0])
  x64, l64 = np.asarray(logit, np.float64), np.asarray(label, np.float64)
  ref = l64 * np.logaddexp(0, -x64) + (1 - l64) * np.logaddexp(0, x64)  # -l ln p - (1 - l) ln(1 - p)
  np.testing.assert_allclose(losses.bce(logit, label), ref, rtol=1e-5)
  np.testing.assert_array_equal(losses.bce(logit, label), optax.sigmoid_binary_cross_entropy(logit, label))
  np.testing.assert_allclose(losses.neg_log_d(logit), np.logaddexp(0, -x64), rtol=1e-6)   # -ln sigmoid(x)
  np.testing.assert_allclose(losses.neg_log_1md(logit), np.logaddexp(0, x64), rtol=1e-6)  # -ln(1 - sigmoid(x))
  w = jnp.asarray([[1.0, -2.0]])
  x = jnp.asarray([[0.5, 1.0], [2.0, -1.0]])
  np.testing.assert_allclose(losses.r1_penalty(lambda v: (v * w).sum(-1) ** 2, x),
                             np.mean([np.sum((2 * float((xi * w).sum()) * np.asarray(w)) ** 2) for xi in x]),
                             rtol=1e-6)
  lab = losses.noisy_labels(jax.random.PRNGKey(0), 1000, True, 0.15)
  assert 0.85 <= float(lab.min()) and float(lab.max()) <= 1.0


def test_segments_compose_and_update_order():
  train = engine.make_train(_spec())
  seg = jax.jit(train.train_segment, static_argnums=2)
  s0 = train.init(jax.random.PRNGKey(0))
  one, m_one = seg(s0, _data(), 8)
  two, _ = seg(seg(s0, _data(), 4)[0], _data(), 4)
  jax.tree.map(lambda u, v: np.testing.assert_array_equal(u, v), one, two)
  assert int(one.step) == 8 and int(one.epoch) == 2 and m_one["fit_a_loss"].shape == (2,)
  assert set(m_one) == {"fit_a_loss", "fit_a_abs_a", "fit_b_loss", "fit_b_abs_a"}
  long, m_long = seg(s0, _data(), 160)
  np.testing.assert_allclose([long.params["a"], long.params["b"]], [2.0, -0.5], atol=0.05)
  assert m_long["fit_b_loss"][-1] < 1e-2 * m_long["fit_b_loss"][0]
  # repeats=3 updates `a` three times per step: it moves further than once per step
  r3 = engine.make_train(_spec(repeats=3))
  s3, _ = jax.jit(r3.train_segment, static_argnums=2)(r3.init(jax.random.PRNGKey(0)), _data(), 8)
  assert abs(float(s3.params["a"]) - 2.0) < abs(float(one.params["a"]) - 2.0)


@pytest.mark.parametrize("how", ["vmap", "map"])
def test_member_equals_run_alone(how):
  train = engine.make_train(_spec())
  members = engine.make_members(train, data_axis=0, how=how)
  keys = engine.member_keys(3, 3)
  state, metrics = members.segment(members.init(keys), _data(3), 8)
  alone, m_alone = jax.jit(train.train_segment, static_argnums=2)(train.init(keys[2]), jax.tree.map(
      lambda a: a[2], _data(3)), 8)
  jax.tree.map(lambda u, v: np.testing.assert_allclose(u[2], v, rtol=1e-6), state, alone)
  np.testing.assert_allclose(metrics["fit_b_loss"][2], m_alone["fit_b_loss"], rtol=1e-6)
  one = engine.make_members(train, data_axis=None, how=how)  # an ensemble of one is the plain call
  s1, _ = one.segment(one.init(keys[:1]), _data(), 8)
  alone0, _ = jax.jit(train.train_segment, static_argnums=2)(train.init(keys[0]), _data(), 8)
  jax.tree.map(lambda u, v: np.testing.assert_array_equal(u[0], v), s1, alone0)


def _loop(members, data, evaluate=None, select=None, total=16, also_select=()):
  return driver.Loop(members, data, total_steps=total, segment_steps=4, evaluate=evaluate, select=select,
                     keep=lambda s: s.params, also_select=also_select)


def test_driver_keeps_each_members_argmin_and_resumes(tmp_path):
  """The kept models are those of each member's lowest `select` value (this fails if the comparison flips),
  likewise for a second rule (`also_select`), and an interrupted run resumed from its checkpoint ends identical
  to a straight one."""
  members = engine.make_members(engine.make_train(_spec()), data_axis=0, how="map")
  scores = {4: [3.0, 1.0], 8: [1.0, 2.0], 12: [2.0, 0.5], 16: [5.0, 0.7]}  # member 0 best at 8, member 1 at 12
  other = {4: [0.1, 9.0], 8: [0.2, 8.0], 12: [0.3, 7.0], 16: [0.4, 6.0]}   # member 0 best at 4, member 1 at 16
  seen = {}

  def evaluate(state, step):
    seen[step] = jax.tree.map(np.asarray, state.params)
    return {"score": np.asarray(scores[step]), "other": np.asarray(other[step]), "a": np.asarray(state.params["a"])}

  keys = engine.member_keys(0, 2)
  loop = _loop(members, _data(2), evaluate, "score", also_select=("other",))
  res = driver.run(loop, members.init(keys), str(tmp_path / "a"))
  np.testing.assert_array_equal(res.best_step, [8, 12])
  np.testing.assert_array_equal(res.best_score, [1.0, 0.5])
  for m, step in enumerate([8, 12]):
    for k in ("a", "b"):
      np.testing.assert_array_equal(np.asarray(res.best[k])[m], seen[step][k][m])
  other_best, other_score, other_step = res.also["other"]
  np.testing.assert_array_equal(other_step, [4, 16])
  np.testing.assert_array_equal(other_score, [0.1, 6.0])
  for m, step in enumerate([4, 16]):
    np.testing.assert_array_equal(np.asarray(other_best["a"])[m], seen[step]["a"][m])
  assert [r["step"] for r in res.history] == [4, 8, 12, 16] and res.history[0]["score"] == [3.0, 1.0]

  def stop_at_8(step):
    if step == 8:
      os.kill(os.getpid(), signal.SIGTERM)

  with pytest.raises(InterruptedError_, match="state saved at epoch 2"):
    driver.run(loop, members.init(keys), str(tmp_path / "b"), on_segment_end=stop_at_8)
  resumed = driver.run(loop, members.init(keys), str(tmp_path / "b"))
  assert resumed.resumed_from == 8
  jax.tree.map(lambda u, v: np.testing.assert_array_equal(u, v), res.state, resumed.state)
  jax.tree.map(lambda u, v: np.testing.assert_array_equal(u, v), res.best, resumed.best)
  jax.tree.map(lambda u, v: np.testing.assert_array_equal(u, v), res.also, resumed.also)
  assert [dict(r, seconds=0) for r in resumed.history] == [dict(r, seconds=0) for r in res.history]
  # TensorBoard scalars: per member and the mean, readable with tensorboardX's own protobuf
  tags = {t for t, _, _ in tb_scalars(tmp_path / "a" / "tb")}
  assert {"score/mean", "score/member_0", "score/member_1", "fit_a_loss/member_1"} <= tags


def test_driver_select_margin_keeps_the_earlier_model_within_it(tmp_path):
  """With `select_margin`, a lower value replaces the kept one only when lower by more than the member's
  margin; the margins are recorded as f"{select}_margin" (0 while a member keeps nothing), computed from the
  kept models and their steps, so a resumed run computes the same ones."""
  members = engine.make_members(engine.make_train(_spec()), data_axis=0, how="map")
  scores = {4: [np.inf, 5.0], 8: [3.0, 4.5], 12: [2.5, 3.0], 16: [1.0, 2.9]}  # member 0 keeps nothing at 4
  calls = []

  def margin(kept, kept_step, now, step):  # the kept model enters: its `a` (finite, not the current one)
    calls.append((step, kept_step.tolist()))
    assert np.all(np.isfinite(np.asarray(kept["a"])))
    return np.where(kept_step >= 0, 1.0, 99.0)  # 99: where nothing is kept the driver must use 0

  def evaluate(state, step):
    return {"score": np.asarray(scores[step])}

  loop = driver.Loop(members, _data(2), total_steps=16, segment_steps=4, evaluate=evaluate, select="score",
                     keep=lambda s: s.params, select_margin=margin)
  res = driver.run(loop, members.init(engine.member_keys(0, 2)), str(tmp_path / "a"))
  # member 0: 3.0 kept at 8 (first finite), 2.5 within 1 of it (tie, kept 8), 1.0 lower by more (16)
  # member 1: 5.0 at 4, 4.5 a tie, 3.0 lower by 2 (12), 2.9 a tie
  np.testing.assert_array_equal(res.best_step, [16, 12])
  np.testing.assert_array_equal(res.best_score, [1.0, 3.0])
  assert [r["score_margin"] for r in res.history] == [[0.0, 0.0], [0.0, 1.0], [1.0, 1.0], [1.0, 1.0]]
  assert calls == [(8, [-1, 4]), (12, [8, 4]), (16, [8, 12])]  # not at 4: nothing kept yet
  # an interrupted run recomputes the margins from the kept models saved in `latest`
  def stop_at_8(step):
    if step == 8:
      os.kill(os.getpid(), signal.SIGTERM)

  with pytest.raises(InterruptedError_):
    driver.run(loop, members.init(engine.member_keys(0, 2)), str(tmp_path / "b"), on_segment_end=stop_at_8)
  calls.clear()
  resumed = driver.run(loop, members.init(engine.member_keys(0, 2)), str(tmp_path / "b"))
  assert calls == [(12, [8, 4]), (16, [8, 12])]
  np.testing.assert_array_equal(resumed.best_step, res.best_step)
  jax.tree.map(lambda u, v: np.testing.assert_array_equal(u, v), res.best, resumed.best)
  assert [dict(r, seconds=0) for r in resumed.history] == [dict(r, seconds=0) for r in res.history]


def test_driver_nan_member_is_dropped_and_all_nan_stops(tmp_path):
  spec_ok, spec_nan = _spec(), _spec(nan_after=6)
  members = engine.make_members(engine.make_train(spec_nan), data_axis=None, how="map")
  with pytest.raises(TrainingDivergedError, match="NaN/inf at epoch 2"):
    driver.run(_loop(members, _data(), lambda s, t: {"score": np.asarray(s.params["a"])}, "score"),
               members.init(engine.member_keys(0, 1)), str(tmp_path / "nan"))
  # two members, one diverging (its hyperparameter makes the loss inf): the other goes on and is selected
  members = engine.make_members(engine.make_train(spec_ok), data_axis=None, how="vmap")
  state = members.init(engine.member_keys(0, 2))
  state = state.replace(hyper={"scale": jnp.asarray([1.0, jnp.inf])})
  res = driver.run(_loop(members, _data(), lambda s, t: {"score": np.abs(np.asarray(s.params["a"]) - 2)},
                         "score", total=8), state, None)
  assert res.diverged_at[1] == 4 and res.diverged_at[0] == -1
  assert res.best_step[0] == 8 and res.best_step[1] == -1
