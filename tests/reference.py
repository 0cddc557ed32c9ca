"""Independent NumPy float64 references, written from docs/derivations.md.

Loops over groups and rollouts, reading only unmasked positions; no JAX and no
code shared with `real_jax`. The product-style loss uses its double-sum form,
not the softplus/logsumexp form of the implementation; RLOO's advantage is
computed as the leave-one-out mean it is defined as, not the scaled
deviation the implementation uses.
"""

from __future__ import annotations

import numpy as np


def scores(logp, old_logp, mask):
  logp, old_logp, mask = map(np.asarray, (logp, old_logp, mask))
  out = np.zeros(mask.shape[:2])
  for b in range(mask.shape[0]):
    for k in range(mask.shape[1]):
      m = mask[b, k].astype(bool)
      if m.any():
        out[b, k] = np.mean(logp[b, k][m].astype(np.float64) - old_logp[b, k][m])
  return out


def _groups(mask, rewards):
  """Yields (b, present indices, positives, negatives) for non-empty groups."""
  mask = np.asarray(mask).astype(bool)
  rewards = np.asarray(rewards, np.float64)
  for b in range(mask.shape[0]):
    present = [k for k in range(mask.shape[1]) if mask[b, k].any()]
    if not present:
      continue
    pos = [k for k in present if rewards[b, k] == 1]
    neg = [k for k in present if rewards[b, k] == 0]
    yield b, present, pos, neg


def label_loss(name, logp, old_logp, mask, rewards, tau=0.5):
  s = scores(logp, old_logp, mask)
  total, count = 0.0, 0
  for b, present, pos, neg in _groups(mask, rewards):
    mixed = bool(pos) and bool(neg)
    if name == "bce":
      if not mixed:
        continue
      count += len(present)
      total += sum(np.log(1 + np.exp(-s[b, i] / tau)) for i in pos)
      total += sum(np.log(1 + np.exp(s[b, j] / tau)) for j in neg)
      continue
    count += 1
    if not mixed:
      continue
    pos_term = np.log(1 + sum(np.exp(-s[b, i] / tau) for i in pos))
    neg_term = np.log(1 + sum(np.exp(s[b, j] / tau) for j in neg))
    if name == "real":
      total += pos_term + neg_term
    elif name == "grad":
      total += pos_term
    elif name == "real_product":
      total += np.log(1 + sum(np.exp((s[b, j] - s[b, i]) / tau)
                              for i in pos for j in neg))
    else:
      raise ValueError(name)
  return total / max(count, 1)


def advantages(mask, rewards, estimator="grpo", eps=1e-6):
  """verl's estimators, group by group (verl/trainer/ppo/core_algos.py), with
  real_jax's one convention: a group of fewer than two present rollouts, or
  of equal rewards, has nothing to contrast and gets 0 before any whitening."""
  mask = np.asarray(mask).astype(bool)
  rewards = np.asarray(rewards, np.float64)
  adv = np.zeros(rewards.shape)
  for b in range(rewards.shape[0]):
    present = [k for k in range(rewards.shape[1]) if mask[b, k].any()]
    r = rewards[b, present]
    if len(present) < 2 or r.max() == r.min():
      continue
    if estimator == "rloo":
      a = np.array([r[i] - np.mean(np.delete(r, i)) for i in range(len(r))])
    elif estimator in ("drgrpo", "reinforce_pp"):
      a = r - r.mean()
    elif estimator == "grpo":
      a = (r - r.mean()) / (r.std(ddof=1) + eps)
    elif estimator == "opo":
      lengths = np.array([mask[b, k].sum() for k in present], np.float64)
      a = r - np.dot(lengths, r) / lengths.sum()
    elif estimator == "grpo_passk":
      order = sorted(range(len(r)), key=lambda i: (-r[i], i))  # best first, ties by index
      a = np.zeros(len(r))
      a[order[0]] = (r[order[0]] - r[order[1]]) / (r.std(ddof=1) + eps)
    else:
      raise ValueError(estimator)
    adv[b, present] = a
  if estimator == "reinforce_pp":  # verl's masked_whiten over every response token
    tokens = np.concatenate([np.full(mask[b, k].sum(), adv[b, k])
                             for b in range(mask.shape[0]) for k in range(mask.shape[1])
                             if mask[b, k].any()])
    mean, var = tokens.mean(), tokens.var(ddof=1)
    present = mask.any(-1)
    adv = np.where(present, (adv - mean) / np.sqrt(var + 1e-8), 0.0)
  return adv


def kl(logp, ref_logp, kl_type):
  if kl_type == "k1":
    return logp - ref_logp
  if kl_type == "k2":
    return 0.5 * (logp - ref_logp) ** 2
  x = ref_logp - logp
  return np.exp(x) - x - 1


CLIPPED = {
    "grpo": dict(epsilon_low=0.2, epsilon_high=0.2, advantage="grpo", clip_ratio_c=None,
                 loss_agg_mode="seq-mean-token-mean"),
    "dapo": dict(epsilon_low=0.2, epsilon_high=0.28, advantage="grpo", clip_ratio_c=None,
                 loss_agg_mode="token-mean"),
    "dr_grpo": dict(epsilon_low=0.2, epsilon_high=0.2, advantage="drgrpo", clip_ratio_c=None,
                    loss_agg_mode="seq-mean-token-sum-norm"),
    "gspo": dict(epsilon_low=3e-4, epsilon_high=4e-4, advantage="grpo",
                 loss_agg_mode="seq-mean-token-mean"),
    "cispo": dict(epsilon_low=None, epsilon_high=4.0, advantage="grpo",
                  loss_agg_mode="token-mean"),
    "sapo": dict(tau_pos=1.0, tau_neg=1.05, advantage="grpo", loss_agg_mode="seq-mean-token-mean"),
    "gmpo": dict(epsilon_low=0.4, epsilon_high=0.4, advantage="grpo"),
    "gpg": dict(advantage="drgrpo", loss_agg_mode="token-mean"),
    "luspo": dict(epsilon_low=2e-3, epsilon_high=2.5e-3, advantage="grpo",
                  loss_agg_mode="seq-mean-token-sum"),
    "dppo_tv": dict(epsilon_low=0.15, epsilon_high=0.15, tis_cap=20.0, advantage="grpo",
                    loss_agg_mode="token-mean"),
    "dppo_kl": dict(epsilon_low=0.05, epsilon_high=0.05, tis_cap=20.0, advantage="grpo",
                    loss_agg_mode="token-mean"),
    "clip_cov": dict(epsilon_low=0.2, epsilon_high=0.2, clip_cov_ratio=2e-4, clip_cov_lb=1.0,
                     clip_cov_ub=5.0, advantage="grpo", loss_agg_mode="token-mean"),
    "kl_cov": dict(kl_cov_ratio=2e-4, ppo_kl_coef=1.0, advantage="grpo",
                   loss_agg_mode="token-mean"),
    "dro": dict(dro_beta=0.1, advantage="grpo", loss_agg_mode="token-mean"),
    "vespo": dict(k_pos=2.0, lambda_pos=3.0, k_neg=3.0, lambda_neg=2.0, advantage="grpo",
                  loss_agg_mode="token-mean"),
    "topr": dict(advantage="drgrpo", loss_agg_mode="seq-mean-token-sum"),
}


# Objectives with stop-gradient weights, trust regions or token selections:
# finite differences must hold those at the point (`frozen_logp`).
FROZEN = ("cispo", "dppo_tv", "dppo_kl", "vespo", "clip_cov", "kl_cov", "topr")


def _binary_kl(mu, pi):
  """DPPO's binary KL of one token, from probabilities (verl's formula, 1e-8 included)."""
  with np.errstate(invalid="ignore", divide="ignore"):
    return mu * np.log(mu / pi) + (1 - mu) * np.log((1 - mu + 1e-8) / (1 - pi + 1e-8))


def _covariance_selection(name, cfg, logp, old_logp, mask, adv):
  """The tokens Clip-Cov detaches or KL-Cov penalises, as a set of (b, k, t).

  Written as the rule reads: list every response token with its covariance,
  keep the candidates, sort by covariance (largest first, then flat index),
  take max(floor(ratio * N), 1) of them.
  """
  tokens = [(b, k, t) for b in range(mask.shape[0]) for k in range(mask.shape[1])
            for t in range(mask.shape[2]) if mask[b, k, t]]
  a_mean = np.mean([adv[b, k] for b, k, _ in tokens])
  lp_mean = np.mean([logp[b, k, t] for b, k, t in tokens])
  cov = {x: (adv[x[0], x[1]] - a_mean) * (logp[x] - lp_mean) for x in tokens}
  ratio = cfg["clip_cov_ratio"] if name == "clip_cov" else cfg["kl_cov_ratio"]
  count = max(int(ratio * len(tokens)), 1)
  if name == "clip_cov":
    def open_(x):
      rho, a = np.exp(logp[x] - old_logp[x]), adv[x[0], x[1]]
      return not (-a * np.clip(rho, 1 - cfg["epsilon_low"], 1 + cfg["epsilon_high"]) > -a * rho)
    tokens = [x for x in tokens if open_(x) and cfg["clip_cov_lb"] < cov[x] < cfg["clip_cov_ub"]]
  flat = lambda x: np.ravel_multi_index(x, mask.shape)  # noqa: E731
  return set(sorted(tokens, key=lambda x: (-cov[x], flat(x)))[:count])


def _token_losses(name, cfg, s, logp, a, s_weight):
  """One rollout's token losses, `s` its log-ratios and `logp` its log-probs.

  CISPO's, DPPO's and VESPO's importance weights (and DPPO's trust region)
  are read from `s_weight`: the log-ratios at which they are frozen (`s`
  itself for the loss value; fixed for finite differences, which is what
  their stop-gradient means).
  """
  if name in ("grpo", "dapo", "dr_grpo", "gspo", "luspo", "clip_cov"):
    el, eh = cfg["epsilon_low"], cfg["epsilon_high"]
    rho = np.full(s.shape, np.exp(s.mean())) if name in ("gspo", "luspo") else np.exp(s)
    capped = rho if cfg.get("delta") is None else np.minimum(rho, cfg["delta"])
    tok = np.maximum(-a * capped, -a * np.clip(rho, 1 - el, 1 + eh))
    if cfg.get("clip_ratio_c") is not None and a < 0:
      tok = np.minimum(tok, -a * cfg["clip_ratio_c"])
    return tok
  if name in ("dppo_tv", "dppo_kl"):
    w = np.minimum(np.exp(s_weight), cfg["tis_cap"])
    # The trust region is read at the frozen point too (verl detaches its mask).
    mu, pi = np.exp(logp - s), np.exp(logp - s + s_weight)
    if name == "dppo_tv":
      kept = (pi - mu <= cfg["epsilon_high"]) if a > 0 else (pi - mu >= -cfg["epsilon_low"])
    else:
      d = _binary_kl(mu, pi)
      kept = ((d <= cfg["epsilon_high"]) | (pi <= mu)) if a > 0 else (
          (d <= cfg["epsilon_low"]) | (pi >= mu))
    return np.where(kept, -w * a * logp, 0.0)
  if name == "dro":
    return -(a * logp - 0.5 * cfg["dro_beta"] * s**2)
  if name == "topr":  # Le Roux et al., eq. 8: min(rho(o), 1) on negatives only
    w = 1.0 if a >= 0 else min(np.exp(np.sum(s_weight)), 1.0)
    return -w * a * logp
  if name == "vespo":
    log_w = np.clip(np.sum(np.clip(s_weight, -20, 20)), np.log(1e-8), 20)
    k, lam = (cfg["k_pos"], cfg["lambda_pos"]) if a >= 0 else (cfg["k_neg"], cfg["lambda_neg"])
    phi = np.exp(lam) * np.exp(log_w) ** k * np.exp(-lam * np.exp(log_w))
    return -phi * a * logp
  if name == "cispo":
    w = np.minimum(np.exp(s_weight), 1 + cfg["epsilon_high"])
    if cfg["epsilon_low"] is not None:
      w = np.maximum(w, 1 - cfg["epsilon_low"])
    return -w * a * logp
  if name == "sapo":
    tau = cfg["tau_pos"] if a > 0 else cfg["tau_neg"]
    return -(4.0 / tau) / (1.0 + np.exp(-tau * (np.exp(s) - 1.0))) * a
  if name == "gmpo":
    clipped = np.clip(s, -cfg["epsilon_low"], cfg["epsilon_high"])
    # A > 0: the smaller of s and its clip; A < 0: the larger.
    kept = np.minimum(s, clipped) if a > 0 else np.maximum(s, clipped) if a < 0 else 0 * s
    return np.full(s.shape, -a * np.exp(kept.mean()))
  if name == "gpg":
    return -a * logp
  raise ValueError(name)


def clipped_loss(name, logp, old_logp, mask, rewards, *, beta=0.0,
                 ref_logp=None, kl_type="low_var_kl", norm_length=None,
                 frozen_logp=None, **overrides):
  cfg = dict(CLIPPED[name], **overrides)
  positive_nll = cfg.pop("positive_nll", 0.0)
  frozen = np.asarray(logp if frozen_logp is None else frozen_logp, np.float64)
  mask = np.asarray(mask).astype(bool)
  logp = np.asarray(logp, np.float64)
  old_logp = np.asarray(old_logp, np.float64)
  adv = advantages(mask, rewards, cfg["advantage"])
  selected = set()
  if name in ("clip_cov", "kl_cov"):  # chosen at the frozen point: a selection has no gradient
    selected = _covariance_selection(name, cfg, np.where(mask, frozen, 0.0), old_logp, mask, adv)
  per_seq = []  # (token losses of one rollout)
  for b in range(mask.shape[0]):
    for k in range(mask.shape[1]):
      m = mask[b, k]
      if not m.any():
        continue
      s = logp[b, k][m] - old_logp[b, k][m]
      s_weight = frozen[b, k][m] - old_logp[b, k][m]
      if name == "kl_cov":
        tok = -adv[b, k] * np.exp(s)
        tok = tok + np.array([cfg["ppo_kl_coef"] * abs(s[t]) if (b, k, t) in selected else 0.0
                              for t in range(len(s))])
      else:
        tok = _token_losses(name, cfg, s, logp[b, k][m], adv[b, k], s_weight)
      if name == "clip_cov":
        tok = np.where([(b, k, t) in selected for t in range(len(s))], 0.0, tok)
      if beta:
        tok = tok + beta * kl(logp[b, k][m], np.asarray(ref_logp, np.float64)[b, k][m], kl_type)
      per_seq.append(tok)
  if not per_seq:
    return 0.0
  mode = "seq-mean-token-mean" if name == "gmpo" else cfg["loss_agg_mode"]
  if mode in ("token-mean", "bnpo"):
    total = np.concatenate(per_seq).sum() / sum(len(t) for t in per_seq)
  elif mode == "seq-mean-token-mean":
    total = np.mean([t.mean() for t in per_seq])
  elif mode == "seq-mean-token-sum":
    total = np.mean([t.sum() for t in per_seq])
  else:
    horizon = mask.shape[-1] if norm_length is None else norm_length
    total = sum(t.sum() for t in per_seq) / horizon
  if positive_nll:  # NeMo-RL's mean NLL over the tokens of rollouts with reward > 0
    correct = mask & (np.asarray(rewards) > 0)[..., None]
    if correct.any():
      total += positive_nll * -logp[correct].sum() / correct.sum()
  return total


def loss(name, logp, old_logp, mask, rewards, **kwargs):
  if name in CLIPPED:
    return clipped_loss(name, logp, old_logp, mask, rewards, **kwargs)
  return label_loss(name, logp, old_logp, mask, rewards, **kwargs)


def numeric_grad(fn, x, h=1e-6):
  """Central differences of a scalar NumPy function, entry by entry."""
  x = np.asarray(x, np.float64)
  g = np.zeros_like(x)
  for idx in np.ndindex(x.shape):
    xp, xm = x.copy(), x.copy()
    xp[idx] += h
    xm[idx] -= h
    g[idx] = (fn(xp) - fn(xm)) / (2 * h)
  return g
