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
    elif estimator == "drgrpo":
      a = r - r.mean()
    elif estimator == "grpo":
      a = (r - r.mean()) / (r.std(ddof=1) + eps)
    else:
      raise ValueError(estimator)
    adv[b, present] = a
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
}


def _token_losses(name, cfg, s, logp, a, s_weight):
  """One rollout's token losses, `s` its log-ratios and `logp` its log-probs.

  CISPO's importance weight is read from `s_weight`: the log-ratios at which it
  is frozen (`s` itself for the loss value; fixed for finite differences,
  which is what its stop-gradient means).
  """
  if name in ("grpo", "dapo", "dr_grpo", "gspo"):
    el, eh = cfg["epsilon_low"], cfg["epsilon_high"]
    rho = np.full(s.shape, np.exp(s.mean())) if name == "gspo" else np.exp(s)
    tok = np.maximum(-a * rho, -a * np.clip(rho, 1 - el, 1 + eh))
    if cfg.get("clip_ratio_c") is not None and a < 0:
      tok = np.minimum(tok, -a * cfg["clip_ratio_c"])
    return tok
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
  frozen = np.asarray(logp if frozen_logp is None else frozen_logp, np.float64)
  mask = np.asarray(mask).astype(bool)
  logp = np.asarray(logp, np.float64)
  old_logp = np.asarray(old_logp, np.float64)
  adv = advantages(mask, rewards, cfg["advantage"])
  per_seq = []  # (token losses of one rollout)
  for b in range(mask.shape[0]):
    for k in range(mask.shape[1]):
      m = mask[b, k]
      if not m.any():
        continue
      s = logp[b, k][m] - old_logp[b, k][m]
      s_weight = frozen[b, k][m] - old_logp[b, k][m]
      tok = _token_losses(name, cfg, s, logp[b, k][m], adv[b, k], s_weight)
      if beta:
        tok = tok + beta * kl(logp[b, k][m], np.asarray(ref_logp, np.float64)[b, k][m], kl_type)
      per_seq.append(tok)
  if not per_seq:
    return 0.0
  mode = "seq-mean-token-mean" if name == "gmpo" else cfg["loss_agg_mode"]
  if mode == "token-mean":
    return np.concatenate(per_seq).sum() / sum(len(t) for t in per_seq)
  if mode == "seq-mean-token-mean":
    return np.mean([t.mean() for t in per_seq])
  if mode == "seq-mean-token-sum":
    return np.mean([t.sum() for t in per_seq])
  horizon = mask.shape[-1] if norm_length is None else norm_length
  return sum(t.sum() for t in per_seq) / horizon


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
