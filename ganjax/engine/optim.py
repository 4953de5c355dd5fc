"""The one optimizer factory: `train.optimizer` of every method's config -> an optax transformation.

Config fields (ml_collections, the same names in every config):
  name           lamb | adam | adamw | sgd | adadelta
  learning_rate  peak learning rate
  b1, b2         moment decays of lamb / adam / adamw
  weight_decay   adamw only (decoupled weight decay, Loshchilov & Hutter 2019)
  schedule       constant | cosine (to 0 at decay_length, then 0) | linear (to 0 at decay_length)
                 | staircase (x decay_rate every decay_every)
  decay_length   cosine / linear: length of the decay (0 = the whole training)
  decay_rate, decay_every   staircase
Lengths count in the unit of the method's training length (`train.epochs` or `train.steps`): the factory
gets `steps_per_unit` (steps per epoch, or 1).
sgd uses momentum 0.9; adadelta the Keras defaults the analysis-specific paper used (rho 0.95, eps 1e-7).

Two forms with the same schedule:
- plain (`inject=False`): the schedule is the optimizer's learning rate (lr(t) = peak * f(t));
- injected (`inject=True`): the peak learning rate (and b1) sit in the optimizer state
  (optax.inject_hyperparams), so members of a vmapped ensemble can differ in them (`set_hyperparams`), and
  the schedule f(t) scales the updates. Every optimizer here applies its learning rate as a final linear
  scale, so both forms train the same model (up to float rounding).
"""

from __future__ import annotations

import jax.numpy as jnp
import optax

OPTIMIZERS = ("lamb", "adam", "adamw", "sgd", "adadelta")
SCHEDULES = ("constant", "cosine", "linear", "staircase")


def _get(cfg, name, default):
  return cfg.get(name, default) if hasattr(cfg, "get") else getattr(cfg, name, default)


def check(cfg) -> list[str]:
  """Problems of an optimizer config, one line each (empty when it is usable)."""
  problems = []
  name, schedule = _get(cfg, "name", None), _get(cfg, "schedule", "constant")
  if name not in OPTIMIZERS:
    problems.append(f"train.optimizer.name={name!r}; use one of {', '.join(OPTIMIZERS)}")
  if schedule not in SCHEDULES:
    problems.append(f"train.optimizer.schedule={schedule!r}; use one of {', '.join(SCHEDULES)}")
  if not float(_get(cfg, "learning_rate", 0.0)) > 0:
    problems.append(f"train.optimizer.learning_rate must be > 0, got {_get(cfg, 'learning_rate', None)}")
  if float(_get(cfg, "weight_decay", 0.0)) < 0:
    problems.append(f"train.optimizer.weight_decay must be >= 0, got {_get(cfg, 'weight_decay', None)}")
  if int(_get(cfg, "decay_length", 0)) < 0:
    problems.append("train.optimizer.decay_length must be >= 0 (0 = the whole training)")
  if schedule == "staircase" and int(_get(cfg, "decay_every", 0)) < 1:
    problems.append("train.optimizer.decay_every must be >= 1 for the staircase schedule")
  return problems


def _schedule(cfg, peak: float, total_steps: int, steps_per_unit: int):
  """peak * f(step) as an optax schedule (a plain number for the constant schedule)."""
  name = _get(cfg, "schedule", "constant")
  n = max(1, int(_get(cfg, "decay_length", 0)) * steps_per_unit or total_steps)
  if name == "cosine":
    return optax.cosine_decay_schedule(peak, n)
  if name == "linear":
    return optax.linear_schedule(peak, 0.0, n)
  if name == "staircase":
    return optax.exponential_decay(peak, transition_steps=int(cfg.decay_every) * steps_per_unit,
                                   decay_rate=float(cfg.decay_rate), staircase=True)
  return peak


def _base(name: str, learning_rate, beta1: float = 0.9, beta2: float = 0.999, weight_decay: float = 0.0):
  if name == "lamb":
    return optax.lamb(learning_rate, b1=beta1, b2=beta2)
  if name == "adam":
    return optax.adam(learning_rate, b1=beta1, b2=beta2)
  if name == "adamw":
    return optax.adamw(learning_rate, b1=beta1, b2=beta2, weight_decay=weight_decay)
  if name == "sgd":
    return optax.sgd(learning_rate, momentum=0.9)
  if name == "adadelta":
    return optax.adadelta(learning_rate=learning_rate, rho=0.95, eps=1e-7)
  raise ValueError(f"unknown optimizer {name!r}; use one of {', '.join(OPTIMIZERS)}")


def make_optimizer(cfg, total_steps: int, steps_per_unit: int = 1, inject: bool = False
                   ) -> optax.GradientTransformation:
  """`train.optimizer` -> optax; `total_steps` (optimizer steps of the whole training) is the default decay
  length; `steps_per_unit` converts the config's lengths (epochs or steps) into optimizer steps."""
  problems = check(cfg)
  if problems:
    raise ValueError(problems[0])
  name = cfg.name
  b1, b2 = float(_get(cfg, "b1", 0.9)), float(_get(cfg, "b2", 0.999))
  wd = float(_get(cfg, "weight_decay", 0.0))
  if not inject:
    return _base(name, _schedule(cfg, float(cfg.learning_rate), total_steps, steps_per_unit), b1, b2, wd)
  hyper = {"learning_rate": float(cfg.learning_rate)}
  if name in ("lamb", "adam", "adamw"):
    hyper["beta1"] = b1
  inner = optax.inject_hyperparams(_base, static_args=("name", "beta2", "weight_decay"))(
      name=name, beta2=b2, weight_decay=wd, **hyper)
  if _get(cfg, "schedule", "constant") == "constant":
    return inner
  return optax.chain(inner, optax.scale_by_schedule(_schedule(cfg, 1.0, total_steps, steps_per_unit)))


def set_hyperparams(opt_state, learning_rate=None, beta1=None):
  """An injected optimizer state with another peak learning rate / b1 (use under vmap for per-member values)."""
  chained = isinstance(opt_state, tuple) and not hasattr(opt_state, "hyperparams")
  inner = opt_state[0] if chained else opt_state
  hp = dict(inner.hyperparams)
  if learning_rate is not None:
    hp["learning_rate"] = jnp.asarray(learning_rate, hp["learning_rate"].dtype)
  if beta1 is not None:
    if "beta1" not in hp:
      raise ValueError("beta1 is not a hyperparameter of this optimizer")
    hp["beta1"] = jnp.asarray(beta1, hp["beta1"].dtype)
  inner = inner._replace(hyperparams=hp)
  return (inner,) + tuple(opt_state[1:]) if chained else inner
