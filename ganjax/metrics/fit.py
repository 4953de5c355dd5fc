"""The 1D fit benchmark of GANplifying Sec. 2: 5-parameter unbinned maximum-likelihood fit with iminuit.

Model: f N(mu1, s1) + (1 - f) N(mu2, s2) (two means, two widths, relative weight), the functional form of
Eq. (1). The paper used iminuit + probfit; iminuit.cost.UnbinnedNLL is probfit's successor. The fitted
density's quantile probabilities are exact CDF differences, so the fit's MSE (Eq. 2) has no sampling noise.
The log-pdf and its gradient are vectorised over points; one Minuit fit per sample (a small Python loop over
the ~100 samples, outside any jitted path).
"""

from __future__ import annotations

import numpy as np
from iminuit import Minuit
from iminuit.cost import UnbinnedNLL
from scipy.special import logsumexp, ndtr

PARAM_NAMES = ("mu1", "s1", "mu2", "s2", "f")
_LOG_SQRT_2PI = 0.5 * np.log(2.0 * np.pi)


def _component_logs(x, mu1, s1, mu2, s2, f):
  z1, z2 = (x - mu1) / s1, (x - mu2) / s2
  l1 = np.log(f) - np.log(s1) - _LOG_SQRT_2PI - 0.5 * z1 ** 2
  l2 = np.log1p(-f) - np.log(s2) - _LOG_SQRT_2PI - 0.5 * z2 ** 2
  return z1, z2, l1, l2


def mixture_logpdf(x, mu1, s1, mu2, s2, f):
  """log of f N(mu1, s1) + (1 - f) N(mu2, s2)."""
  _, _, l1, l2 = _component_logs(np.asarray(x, np.float64), mu1, s1, mu2, s2, f)
  return np.logaddexp(l1, l2)


def _mixture_logpdf_grad(x, mu1, s1, mu2, s2, f):
  """d logpdf / d(mu1, s1, mu2, s2, f), shape (5, N)."""
  z1, z2, l1, l2 = _component_logs(np.asarray(x, np.float64), mu1, s1, mu2, s2, f)
  lse = logsumexp(np.stack([l1, l2]), axis=0)
  w1, w2 = np.exp(l1 - lse), np.exp(l2 - lse)  # posterior component weights
  return np.stack([w1 * z1 / s1, w1 * (z1 ** 2 - 1.0) / s1, w2 * z2 / s2, w2 * (z2 ** 2 - 1.0) / s2,
                   w1 / f - w2 / (1.0 - f)])


def mixture_cdf(x, params) -> np.ndarray:
  """CDF of the fitted mixture; params = (mu1, s1, mu2, s2, f)."""
  mu1, s1, mu2, s2, f = params
  x = np.asarray(x, np.float64)
  return f * ndtr((x - mu1) / s1) + (1.0 - f) * ndtr((x - mu2) / s2)


def fit_mixture(x_N: np.ndarray) -> dict:
  """ML fit of the 5-parameter two-Gaussian model to one 1D sample; components ordered so mu1 <= mu2."""
  x = np.asarray(x_N, np.float64).reshape(-1)
  if x.size < 5 or not np.all(np.isfinite(x)):
    raise ValueError(f"fit_mixture: need >= 5 finite points, got {x.size} ({np.sum(~np.isfinite(x))} not finite)")
  lo, hi = x[x <= np.median(x)], x[x > np.median(x)]
  hi = hi if hi.size else lo
  start = dict(mu1=lo.mean(), s1=max(lo.std(), 0.1), mu2=hi.mean(), s2=max(hi.std(), 0.1), f=0.5)
  cost = UnbinnedNLL(x, mixture_logpdf, log=True, grad=_mixture_logpdf_grad, name=PARAM_NAMES)
  m = Minuit(cost, **start)
  m.limits["s1"] = m.limits["s2"] = (1e-3, 50.0)
  m.limits["f"] = (1e-4, 1.0 - 1e-4)
  m.migrad()
  m.hesse()
  p = np.array([m.values[n] for n in PARAM_NAMES])
  e = np.array([m.errors[n] for n in PARAM_NAMES])
  if p[0] > p[2]:  # label switching: order components by mean
    p = p[[2, 3, 0, 1, 4]]
    p[4] = 1.0 - p[4]
    e = e[[2, 3, 0, 1, 4]]
  return {"params": p, "errors": e, "valid": bool(m.valid), "nll": float(m.fval)}


def fit_samples(x_MxN: np.ndarray) -> dict[str, np.ndarray]:
  """Fit every sample of a stack (the paper fits the same 100 samples the GANs train on)."""
  fits = [fit_mixture(x) for x in np.asarray(x_MxN, np.float64).reshape(len(x_MxN), -1)]
  return {"params": np.stack([f["params"] for f in fits]), "errors": np.stack([f["errors"] for f in fits]),
          "valid": np.array([f["valid"] for f in fits])}


def fit_quantile_probs(params_Px5: np.ndarray, inner_edges: np.ndarray) -> np.ndarray:
  """Exact probability of each quantile under each fitted density: probs_PxK (K = len(inner_edges) + 1)."""
  params = np.atleast_2d(np.asarray(params_Px5, np.float64))
  cdf = mixture_cdf(np.asarray(inner_edges)[None, :], params.T[:, :, None])  # P x (K-1), broadcast
  full = np.concatenate([np.zeros((len(params), 1)), cdf, np.ones((len(params), 1))], axis=1)
  return np.diff(full, axis=1)
