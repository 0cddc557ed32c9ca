r"""The mechanism study: is REAL's score dependence doing anything, and when?

E1 (this file's default): REAL against a *frozen REAL*, whose per-rollout
weights are held at their on-policy values, in the off-policy study's
testbed (2-digit addition from the shared base model, 100 steps of 16
prompts x 8 rollouts, validation-selected lr, test pass@1 reported).

  python -m real_jax.study --config=experiments/configs/mechanism.py \
      --workdir=runs/mechanism_e1 --out=docs/mechanism/e1      # or: make mechanism

Arms (primary: 20 paired seeds; exploratory: 5, labelled so):
- `real` at tau 0.5 (primary), and at tau 0.05, 0.2 and 2 (exploratory). Every
  REAL arm also takes the gradient of frozen REAL on each minibatch and logs
  the cosine between the two (`compare_loss`, metric `grad_cosine`).
- `frozen_real` (primary): the weights `-1 / (tau (1 + n+))` on a group's
  correct rollouts and `+1 / (tau (1 + n-))` on its wrong ones, REAL's own at
  `sbar = 0`, whatever the scores. On-policy it is REAL exactly; off-policy it
  is REAL without the score dependence.
- `grpo` (primary) and `gpg` with GRPO's advantages (exploratory): the
  clipped baseline, and the same advantages with no ratio at all.

Regimes 1 (on-policy) and 16 (4 epochs x 4 minibatches) updates per step, at
learning rates 3e-5, 1e-4 and 3e-4. The gradient clip is raised to 1e9, so
that it never binds: with it, tau would change which updates are clipped,
and the built-in control below would test the clip instead of REAL.

Built-in control: on-policy, REAL's gradient is its tau-independent
direction times 1/tau, and Adam removes the scale (up to its epsilon, 1e-8),
so every tau must train the same run; docs/results/mechanism.md states how
close they come.

The primary comparisons are declared below (`get_comparisons`), before any
run: REAL - frozen REAL and REAL - GRPO at 16 updates, REAL - GRPO on-policy,
Holm-corrected among themselves; every other comparison is exploratory.

`zero_sum_real` (REAL's weights re-centred to sum to zero in each group) is
declared here for E3; like `frozen_real`, it is registered with its closed
form, which `tests/test_mechanism.py` checks through
`grad_analysis.check_objective`.

E2 (`mechanism.py:e2`, written to docs/mechanism/e2): force the domination
regime with a *lagged sampler*. Rollouts come from the policy of k in
{0, 2, 8} steps earlier, with pi_old the sampler's own log-probabilities, as
asynchronous engines do (`config.sampler_lag`), one update per step, so that
every bit of off-policyness is the lag. Losses: GRPO, GRPO with the dual clip
(`clip_ratio_c = 3`), CISPO, REAL, frozen REAL and GRAD, at learning rates
1e-4 and 3e-4, 6 paired seeds (exploratory: no primary comparison). The
regime counts as reached only if GRPO's largest negative weight is at least
3 times its on-policy (lag 0) value at the largest lag; docs/results/
mechanism.md says whether it was.

`mechanism.py:e2_push` is the manipulation tried when the lag alone does not
reach that regime: GRPO and REAL at lags 0, 8 and 32, learning rates 1e-3
and 3e-3, 3 seeds (docs/mechanism/e2_push).

`mechanism.py:e2_confirm` tests what E2's exploratory arms showed, declared
before it ran and on fresh seeds (100 to 119): REAL - frozen REAL at lag 8,
its primary comparison, with 20 paired seeds at learning rates 1e-4 and
3e-4 (docs/mechanism/e2_confirm).

E3 (`mechanism.py:e3`, written to docs/mechanism/e3; `make mechanism-e3`):
entropy under controlled reward sparsity. REAL's on-policy weights do not
sum to zero in a group: with k correct rollouts of G, their net is
(1/tau) [(G-k)/(G+1-k) - k/(1+k)], positive (responses pushed down on net)
when few are correct and negative when most are. Two base models, the
warm start stopped at a greedy pass@1 of 0.1 (*sparse*: about 0.07 of
sampled rollouts correct) and of 0.8 (*dense*: about 0.56); losses GRPO,
DAPO, REAL, zero-sum REAL (REAL's weights re-centred to sum to zero in each
group) and GRAD; on-policy and 4 updates per step (1 x 4); 300 steps at
lr 1e-4 (the off-policy study's validation-selected on-policy rate for REAL
and GRPO, fixed before the run, so no test data picks it); 20 fresh paired
seeds (200 to 219) for every arm. Measured on 256 fixed test prompts every
50 steps: 8 responses each at the training temperature, their sampled
pass@1 and pass@8 and the policy's entropy along them (`probe_entropy`);
and at every step the net weight per group in four pass-rate bins.
The hypotheses, declared before the run: the paper's (GRPO's entropy
collapses, DAPO's explodes, REAL's stays stable) against the baseline shift
(REAL's entropy sits above GRPO's under sparse rewards and below it under
dense ones, and zero-sum REAL tracks GRPO). The primary comparisons
(`get_comparisons("e3")`): REAL - GRPO and REAL - zero-sum REAL in final
probe entropy, on-policy, under each base model; the rest are exploratory.

`mechanism.py:smoke`, `mechanism.py:e2_smoke` and `mechanism.py:e3_smoke`
are E1, E2 and E3 shrunk to seconds (make test runs them).
"""

import os

import jax
import jax.numpy as jnp

from real_jax import grad_analysis
from real_jax import losses
from real_jax.training import config
from real_jax.training import sweep

PRIMARY_SEEDS = tuple(range(20))
EXPLORATORY_SEEDS = tuple(range(5))
REGIMES = {1: (1, 1), 16: (4, 4)}  # updates per step -> (ppo_epochs, minibatches)
LEARNING_RATES = (3e-5, 1e-4, 3e-4)
EXPLORATORY_TAUS = (0.05, 0.2, 2.0)
E2_LAGS = (0, 2, 8)
E2_RATES = (1e-4, 3e-4)
E2_SEEDS = tuple(range(6))
_E2 = ("e2", "e2_smoke", "e2_push", "e2_confirm")
# E3: base models by their greedy pass@1 on the held-out set (the warm start
# stops at the band's lower end, checked every 5 SFT steps), whose sampled
# pass rates at temperature 1 are about 0.07 (sparse) and 0.56 (dense).
E3_BASES = {"sparse": (0.1, 0.3), "dense": (0.8, 1.0)}
E3_REGIMES = {1: (1, 1), 4: (1, 4)}
E3_LOSSES = ("grpo", "dapo", "real", "zero_sum_real", "grad")
E3_SEEDS = tuple(range(200, 220))  # fresh seeds, none used by E1 or E2
E3_LR = 1e-4
E3_METRICS = ("probe_entropy", "test_sampled_pass_at_1", "test_sampled_pass_at_k",
              "test_pass_at_1")
_E3 = ("e3", "e3_smoke")
E2_ARMS = ({"loss": "grpo"}, {"loss": "grpo", "clip_ratio_c": 3.0}, {"loss": "cispo"},
           {"loss": "real"}, {"loss": "frozen_real"}, {"loss": "grad"})


# --------------------------------------------------- the two variants ----

def _counts(positive, negative, dtype):
  return (jnp.sum(positive).astype(dtype), jnp.sum(negative).astype(dtype),
          jnp.any(positive) & jnp.any(negative))


def frozen_real_group(scores, positive, negative, *, tau):
  """REAL's on-policy weights, held whatever the scores: linear in `sbar`."""
  n_pos, n_neg, valid = _counts(positive, negative, scores.dtype)
  zero = jnp.zeros((), scores.dtype)
  loss = (jnp.sum(jnp.where(negative, scores, zero)) / (1 + n_neg)
          - jnp.sum(jnp.where(positive, scores, zero)) / (1 + n_pos)) / tau
  count = jnp.any(positive | negative).astype(scores.dtype)
  return jnp.where(valid, loss, zero), count


def zero_sum_real_group(scores, positive, negative, *, tau):
  """REAL's loss less its weights' group mean times the summed scores: net weight 0."""
  loss, count = losses.real_group(scores, positive, negative, tau=tau)
  present = positive | negative
  weights = jax.grad(lambda s: losses.real_group(s, positive, negative, tau=tau)[0])(
      jax.lax.stop_gradient(scores))
  mean = jnp.sum(jnp.where(present, weights, 0.0)) / jnp.maximum(jnp.sum(present), 1)
  shift = jax.lax.stop_gradient(mean) * jnp.sum(jnp.where(present, scores, 0.0))
  return loss - shift, count


def frozen_real(logp, old_logp, mask, rewards, *, tau=0.5):
  return losses.label_objective(frozen_real_group, logp, old_logp, mask, rewards, tau)


def zero_sum_real(logp, old_logp, mask, rewards, *, tau=0.5):
  return losses.label_objective(zero_sum_real_group, logp, old_logp, mask, rewards, tau)


# Their closed forms, d loss / d logp per token, written from the formulas
# (REAL's own weights from grad_analysis' closed form, no autodiff).
def _per_token(group_weights, logp, old_logp, mask, rewards):
  m = mask != 0
  present = jnp.any(m, -1)
  normaliser = jnp.maximum(jnp.sum(jnp.any(present, -1)), 1).astype(logp.dtype)
  length = jnp.maximum(jnp.sum(m, -1, keepdims=True), 1).astype(logp.dtype)
  return jnp.where(m, (group_weights / normaliser)[..., None] / length, 0.0)


def _labels(logp, old_logp, mask, rewards):
  m = mask != 0
  present = jnp.any(m, -1)
  positive, negative = present & (rewards > 0.5), present & ~(rewards > 0.5)
  valid = (jnp.any(positive, -1) & jnp.any(negative, -1))[:, None]
  return losses.sequence_scores(logp, old_logp, m), positive, negative, valid


def frozen_real_weights(logp, old_logp, mask, rewards, *, tau=0.5):
  _, positive, negative, valid = _labels(logp, old_logp, mask, rewards)
  n_pos = jnp.sum(positive, -1, keepdims=True).astype(logp.dtype)
  n_neg = jnp.sum(negative, -1, keepdims=True).astype(logp.dtype)
  w = jnp.where(positive, -1 / (tau * (1 + n_pos)), jnp.where(negative, 1 / (tau * (1 + n_neg)),
                                                                0.0))
  return _per_token(jnp.where(valid, w, 0.0), logp, old_logp, mask, rewards)


def zero_sum_real_weights(logp, old_logp, mask, rewards, *, tau=0.5):
  scores, positive, negative, valid = _labels(logp, old_logp, mask, rewards)
  real = jax.vmap(lambda s, p, n: grad_analysis.real_group_weights(s, p, n, tau).weights)(
      scores, positive, negative)
  real = jnp.where(valid, real, 0.0)
  present = positive | negative
  mean = (jnp.sum(jnp.where(present, real, 0.0), -1, keepdims=True)
          / jnp.maximum(jnp.sum(present, -1, keepdims=True), 1))
  # Sums of terms of both signs (the mean too, whose terms nearly cancel in a
  # saturated group): near their zero, rounding is relative to the terms.
  mean_abs = (jnp.sum(jnp.where(present, jnp.abs(real), 0.0), -1, keepdims=True)
              / jnp.maximum(jnp.sum(present, -1, keepdims=True), 1))
  terms = jnp.where(present, jnp.abs(real) + mean_abs, 0.0)
  return tuple(_per_token(w, logp, old_logp, mask, rewards)
               for w in (jnp.where(present, real - mean, 0.0), terms))


# Registered when the config is loaded (every process that loads it), for the
# trainer, the sweep, the gradient check and the figures alike.
losses.register("frozen_real", frozen_real, weights=frozen_real_weights,
                label="frozen REAL (on-policy weights)", color="#6a51a3", replace=True)
losses.register("zero_sum_real", zero_sum_real, weights=zero_sum_real_weights,
                label="zero-sum REAL", color="#41b6c4", replace=True)


# ------------------------------------------------------------ the study ----

# E1 runs in the off-policy study's testbed: its config, loaded by path as the
# commands load configs.
_OFFPOLICY = sweep.load_config_module(os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                   "study_offpolicy.py"))


def get_config(arg=None):
  c = _OFFPOLICY.get_config()
  c.grad_clip = 1e9  # never binds: see the module docstring
  c.points_per_program = 20
  if arg in _E2:
    c.ppo_epochs, c.minibatches = 1, 1  # one update per step: the lag is all the drift
    c.points_per_program = 12
  if arg in _E3:
    c.ppo_epochs, c.minibatches = 1, 1
    c.steps, c.eval_every, c.lr = 300, 50, E3_LR
    c.eval_size, c.test_size, c.sampled_k = 128, 256, 8
    c.base.eval_every = 5
    c.points_per_program = 20
  if arg in ("smoke", "e2_smoke", "e3_smoke"):
    config.shrink_for_smoke(c)
  if arg == "e3_smoke":
    c.sampled_k = 4
  return c


def _arms(arg):
  """`(overrides, seeds)` per arm."""
  primary = PRIMARY_SEEDS if arg != "smoke" else (0, 1)
  exploratory = EXPLORATORY_SEEDS if arg != "smoke" else (0, 1)
  taus = EXPLORATORY_TAUS if arg != "smoke" else (2.0,)
  arms = [({"loss": "real", "compare_loss": "frozen_real"}, primary),
          ({"loss": "frozen_real"}, primary),
          ({"loss": "grpo"}, primary)]
  arms += [({"loss": "real", "tau": tau, "compare_loss": "frozen_real"}, exploratory)
           for tau in taus]
  if arg != "smoke":
    arms.append(({"loss": "gpg", "advantage": "grpo"}, exploratory))
  return arms


def _e2_sweep(arg: str):
  lags, rates, seeds, arms = {
      "e2": (E2_LAGS, E2_RATES, E2_SEEDS, E2_ARMS),
      "e2_smoke": ((0, 2), (1e-3,), (0, 1), E2_ARMS[:2] + E2_ARMS[3:4]),
      "e2_push": ((0, 8, 32), (1e-3, 3e-3), (0, 1, 2), (E2_ARMS[0], E2_ARMS[3])),
      "e2_confirm": ((8,), E2_RATES, tuple(range(100, 120)), E2_ARMS[3:5]),
  }[arg]
  return [{**arm, "sampler_lag": lag, "lr": lr, "seed": seed}
          for arm in arms for lag in lags for lr in rates for seed in seeds]


def _e3_bases(arg: str) -> dict:
  # The smoke run's 30-step warm start: the first evaluation, and the budget's end.
  return E3_BASES if arg == "e3" else {"sparse": (0.0, 1.0), "dense": (0.5, 1.0)}


def _e3_sweep(arg: str):
  smoke = arg == "e3_smoke"
  bases = _e3_bases(arg)
  # The smoke run: what its primary comparisons need, on-policy.
  regimes = E3_REGIMES if not smoke else {1: (1, 1)}
  seeds = E3_SEEDS if not smoke else (0, 1)
  names = E3_LOSSES if not smoke else ("grpo", "real", "zero_sum_real")
  return [{"loss": loss, "base.band": band, "ppo_epochs": epochs, "minibatches": minibatches,
           "seed": seed}
          for band in bases.values() for loss in names
          for epochs, minibatches in regimes.values() for seed in seeds]


def get_sweep(arg=None):
  if arg in _E3:
    return _e3_sweep(arg)
  if arg in _E2:
    return _e2_sweep(arg)
  rates = LEARNING_RATES if arg != "smoke" else (1e-3,)
  return [{**overrides, "ppo_epochs": epochs, "minibatches": minibatches, "lr": lr, "seed": seed}
          for overrides, seeds in _arms(arg) for epochs, minibatches in REGIMES.values()
          for lr in rates for seed in seeds]


def get_comparisons(arg=None):
  """Declared before the run: REAL (tau 0.5) against each arm; the primary ones (E1 only)."""
  if arg == "e2_confirm":  # declared after E2's exploratory arms, before this run
    return {"reference": "real", "primary": (("frozen_real", "1 lag8"),)}
  if arg in _E2:
    return {"reference": "real", "primary": ()}
  if arg in _E3:
    # The baseline-shift hypothesis, on-policy where nothing else moves REAL's
    # weights: its entropy against GRPO's and against zero-sum REAL's, under
    # sparse and under dense rewards.
    bands = _e3_bases(arg).values()
    return {"reference": "real", "metrics": E3_METRICS,
            "primary": tuple((other, f"1 base{band[0]:g}", "probe_entropy")
                             for band in bands for other in ("grpo", "zero_sum_real"))}
  return {"reference": "real",
          "primary": (("frozen_real", "16"), ("grpo", "16"), ("grpo", "1"))}
