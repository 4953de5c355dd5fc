"""Analysis-specific GAN training (paper: analysis-specific-gan, Sec. 4, Eq. 2) as a TrainSpec of the engine.

Per step s with key k = fold_in(run key, s) and k_idx, k_aug, k_zd, k_zg = split(k, 4):
  D update: B/2 real training events (drawn with k_idx, their random parts redrawn with k_aug, standardised)
            and B/2 generated ones (noise from k_zd), binary cross-entropy over the B events;
  G update: on B generated events (noise from k_zg), against the updated D,
            BCE(D(G(z)), 1) + sum_q c1_q (mean_B q - <q>)^2 + c2_q (std_B q - sigma_q)^2          (Eq. 2)
                            + sum_p c3_p mean_b (sort_B(p)_b - Q_p((b + 1/2) / B))^2
            with <q>, sigma_q the mean and RMS of the derived quantity q in the training data, and Q_p the
            training data's quantile function of the derived quantity p (config.regression.distribution).
The last sum is a distribution-level term: the squared 1D Wasserstein-2 distance between the batch's values of
p and the training distribution (sorted batch against the quantiles at the same levels). Eq. 2 constrains two
moments, which a peak with the right mean and RMS but a 2x too wide core and too heavy tails satisfies; the
sorted-sample term constrains the whole shape (the paper's remark that "an overall improvement on derived
quantities can be achieved adding extra regression terms", Sec. 6, taken to the full distribution).
The weights c1, c2, c3 sit in state.hyper, so members with different terms (on, off, ablations) train side by
side in one vmapped program. Optimizer: config.train.optimizer through engine.make_optimizer (adadelta with the
Keras defaults the paper used, or adam).

model.kind = "flow" (configs/zmumu.py option ',flow'): the generator is an unconditional spline flow
(ganjax/models/flow.py) on the same standardised features, trained on B real events per step by maximum
likelihood plus the same Eq. 2 terms on B events generated through its inverse (c1 = c2 = 0: pure maximum
likelihood); no discriminator. Generation draws the same latent normals, so the rest of the run is shared.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from ganjax import engine
from ganjax.asg.data import AsgData, Derived
from ganjax.data import asg_features
from ganjax.engine import losses
from ganjax.models import asg as asg_models
from ganjax.models.flow import Flow


def is_flow(config) -> bool:
  return config.model.kind == "flow"


def make_flow(config) -> Flow:
  f = config.model.flow
  return Flow(n_features=len(config.model.features), n_layers=f.layers, n_bins=f.bins, hidden=tuple(f.hidden),
              bound=f.bound)


def make_models(config):
  """(G, D) of Sec. 4 / Fig. 3 with the config's widths."""
  m = config.model
  return (asg_models.generator(len(m.features), m.g_hidden, m.slope),
          asg_models.discriminator(m.d_hidden, m.slope))


def make_generate(config):
  """generate(g_params, pre, key, n) -> {feature: (n,)} physical features (discrete floored, spikes clipped)."""
  g_net = make_flow(config) if is_flow(config) else make_models(config)[0]  # both map latent normals
  n_feat = len(config.model.features)

  def generate(g_params, pre: asg_features.Preproc, key, n: int) -> dict[str, jax.Array]:
    x = g_net.apply(g_params, jax.random.normal(key, (n, n_feat)))
    return asg_features.decode(pre, x, discretize=True)

  return generate


def regression_weights(config) -> tuple[jax.Array, jax.Array]:
  """(c1_R, c2_R) of config.regression.terms, in its order."""
  terms = config.regression.terms
  return (jnp.asarray([terms[r][0] for r in terms], jnp.float32),
          jnp.asarray([terms[r][1] for r in terms], jnp.float32))


def distribution_weights(config) -> jax.Array:
  """c3_P of config.regression.distribution, in its order."""
  dist = config.regression.distribution
  return jnp.asarray([dist[p] for p in dist], jnp.float32)


def parse_member_terms(config) -> list[set[str]] | None:
  """config.regression.member_terms: one entry per member naming the terms it trains with, joined by '+'
  (a key of regression.terms: its Eq. 2 terms; 'w2:<p>': the distribution term of p; '' or 'none': no terms);
  None when not given (then every member uses every term, but the last regression.off_members none)."""
  spec = tuple(config.regression.member_terms)
  if not spec:
    return None
  known = set(config.regression.terms) | {f"w2:{p}" for p in config.regression.distribution}
  out = []
  for m, entry in enumerate(spec):
    names = {t.strip() for t in entry.split("+") if t.strip() and t.strip() != "none"}
    unknown = sorted(names - known)
    if unknown:
      raise ValueError(f"regression.member_terms[{m}] = {entry!r}: unknown term(s) {unknown}; known: "
                       f"{sorted(known)} (joined by '+', '' = none)")
    out.append(names)
  return out


def member_weights(config) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """Per-member (c1_MxR, c2_MxR, c3_MxP): regression.member_terms when given, else all terms on except for
  the last regression.off_members members (c = 0, the paper's Fig. 6)."""
  n_mem = int(config.n_members)
  c1_R, c2_R = (np.asarray(c) for c in regression_weights(config))
  c3_P = np.asarray(distribution_weights(config))
  c1, c2, c3 = np.tile(c1_R, (n_mem, 1)), np.tile(c2_R, (n_mem, 1)), np.tile(c3_P, (n_mem, 1))
  chosen = parse_member_terms(config)
  if chosen is None:
    off = np.arange(n_mem) >= n_mem - int(config.regression.off_members)
    c1[off], c2[off], c3[off] = 0.0, 0.0, 0.0
  else:
    for m, names in enumerate(chosen):
      for i, r in enumerate(config.regression.terms):
        if r not in names:
          c1[m, i] = c2[m, i] = 0.0
      for i, p in enumerate(config.regression.distribution):
        if f"w2:{p}" not in names:
          c3[m, i] = 0.0
  return c1.astype(np.float32), c2.astype(np.float32), c3.astype(np.float32)


def sorted_w2(values_PxB: jax.Array, quantiles_PxB: jax.Array) -> jax.Array:
  """Squared 1D Wasserstein-2 distance between each row of values (a batch) and the sorted target values of the
  same length: mean_b (sort(values)_b - quantiles_b)^2 (in 1D the sorted matching is the optimal transport plan).
  Differentiable a.e. (sort is a permutation)."""
  return jnp.mean((jnp.sort(values_PxB, axis=1) - quantiles_PxB) ** 2, axis=1)


def make_spec(config, derived: Derived) -> engine.TrainSpec:
  """Models, losses, optimizers and sampler of one member; the data is the members' shared AsgData."""
  n_feat = len(config.model.features)
  reg = tuple(config.regression.terms.keys())
  dist = tuple(config.regression.distribution.keys())
  missing = [r for r in reg + dist if r not in derived]
  if missing:
    raise ValueError(f"regression quantities {missing} are not in the analysis' DERIVED {list(derived)}")
  bs = int(config.train.batch_size)
  half = bs // 2
  g_net, d_net = make_models(config)
  tx = engine.make_optimizer(config.train.optimizer, total_steps=int(config.train.steps))
  c1_R, c2_R = regression_weights(config)
  c3_P = distribution_weights(config)

  def init(key):
    kg, kd, kstate = jax.random.split(key, 3)
    params = {"g": g_net.init(kg, jnp.zeros((1, n_feat))), "d": d_net.init(kd, jnp.zeros((1, n_feat)))}
    return engine.Init(params=params, key=kstate, hyper={"c1": c1_R, "c2": c2_R, "c3": c3_P})

  n_real = bs if is_flow(config) else half

  def real_batch(data: AsgData, k, _step):
    """B/2 (a flow: B) standardised training events with their random parts (smearing, spike filling)
    redrawn."""
    k_idx, k_aug, _, _ = jax.random.split(k, 4)
    idx = jax.random.randint(k_idx, (n_real,), 0, data.u_raw_NxD.shape[0])
    pre = data.pre
    return asg_features.standardize(
        pre, asg_features.augment(pre.param_D, pre.width_D, pre.kinds, data.u_raw_NxD[idx], k_aug))

  def d_loss(params, real_BxD, ctx):
    k_zd = jax.random.split(ctx.key, 4)[2]
    fake = jax.lax.stop_gradient(g_net.apply(params["g"], jax.random.normal(k_zd, (half, n_feat))))
    logits = d_net.apply(params["d"], jnp.concatenate([real_BxD, fake]))[:, 0]
    labels = jnp.concatenate([jnp.ones(half), jnp.zeros(half)])
    return losses.bce(logits, labels).mean(), {}

  def regression_terms(x_BxD, data: AsgData, hyper):
    """Eq. 2 terms and the distribution terms of a generated batch; the batch mean / width of each Eq. 2
    quantity and the squared W2 distance of each distribution quantity."""
    phys = asg_features.decode(data.pre, x_BxD, discretize=False)
    q_RxB = jnp.stack([derived[r](phys) for r in reg]) if reg else jnp.zeros((0, x_BxD.shape[0]))
    # sqrt(var + 1e-12): the same value in float32, but a finite gradient when a batch collapses to one value
    mean_R, std_R = q_RxB.mean(1), jnp.sqrt(q_RxB.var(1) + 1e-12)
    loss = jnp.sum(hyper["c1"] * (mean_R - data.target_mean_R) ** 2
                   + hyper["c2"] * (std_R - data.target_std_R) ** 2)
    p_PxB = jnp.stack([derived[p](phys) for p in dist]) if dist else jnp.zeros((0, x_BxD.shape[0]))
    w2_P = sorted_w2(p_PxB, data.target_quantiles_PxB)
    return loss + jnp.sum(hyper["c3"] * w2_P), mean_R, std_R, w2_P

  def g_loss(params, _batch, ctx):
    k_zg = jax.random.split(ctx.key, 4)[3]
    x = g_net.apply(params["g"], jax.random.normal(k_zg, (bs, n_feat)))
    bce = losses.generator_nonsaturating(d_net.apply(params["d"], x)[:, 0])
    reg_loss, mean_R, std_R, w2_P = regression_terms(x, ctx.data, ctx.hyper)
    aux = {"bce": bce, "regression": reg_loss, **{f"{r}_mean": mean_R[i] for i, r in enumerate(reg)},
           **{f"{r}_std": std_R[i] for i, r in enumerate(reg)}, **{f"{p}_w2": w2_P[i] for i, p in enumerate(dist)}}
    return bce + reg_loss, aux

  if is_flow(config):
    flow = make_flow(config)

    def flow_init(key):
      kf, kstate = jax.random.split(key)
      params = {"g": flow.init(kf, jnp.zeros((1, n_feat)), None, method=Flow.log_prob)}
      return engine.Init(params=params, key=kstate, hyper={"c1": c1_R, "c2": c2_R, "c3": c3_P})

    def flow_loss(params, real_BxD, ctx):
      """-mean log p(real) + Eq. 2 terms of B events generated through the inverse."""
      nll = losses.neg_log_likelihood(flow.apply(params["g"], real_BxD, None, method=Flow.log_prob))
      x = flow.apply(params["g"], jax.random.normal(jax.random.split(ctx.key, 4)[3], (bs, n_feat)))
      reg_loss, mean_R, std_R, w2_P = regression_terms(x, ctx.data, ctx.hyper)
      aux = {"nll": nll, "regression": reg_loss, **{f"{r}_mean": mean_R[i] for i, r in enumerate(reg)},
             **{f"{r}_std": std_R[i] for i, r in enumerate(reg)}, **{f"{p}_w2": w2_P[i] for i, p in enumerate(dist)}}
      return nll + reg_loss, aux

    return engine.TrainSpec(init=flow_init, optimizers={"g": tx}, updates=(engine.Update("g", "g", flow_loss),),
                            sampler=engine.step_sampler(real_batch))

  return engine.TrainSpec(init=init, optimizers={"g": tx, "d": tx},
                          updates=(engine.Update("d", "d", d_loss), engine.Update("g", "g", g_loss)),
                          sampler=engine.step_sampler(real_batch))


def make_members(config, derived: Derived) -> engine.Members:
  """The ensemble: jit of the members' training on the shared data, member axis per config.member_axis."""
  return engine.make_members(engine.make_train(make_spec(config, derived)), data_axis=None,
                             how=config.member_axis)


def set_regression(state, c1_MxR, c2_MxR, c3_MxP=None):
  """The stacked state with per-member Eq. 2 (and distribution) weights (e.g. 0 for the regression-off members)."""
  hyper = {**state.hyper, "c1": jnp.asarray(c1_MxR, jnp.float32), "c2": jnp.asarray(c2_MxR, jnp.float32)}
  if c3_MxP is not None:
    hyper["c3"] = jnp.asarray(c3_MxP, jnp.float32)
  return state.replace(hyper=hyper)
