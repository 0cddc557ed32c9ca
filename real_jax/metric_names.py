"""The metrics schema's names, declared once; this module imports nothing.

Every driver (the scanned run, the resumable loop, the sweep) writes records
with exactly the keys of `METRICS`, one record per step, step 0 being the
base model; `real_jax.training.metrics` computes them, and the Tunix adapter
names its diagnostics after them. A metric that is undefined at a step
(held-out pass@1 between evaluations, a negatives-only statistic in a step with
no wrong rollout, any training metric at step 0) is written as `null`.
What the names mean (B groups of G rollouts per step; the "last update" is
the step's final minibatch update, the most off-policy one):

- `loss`, `grad_norm`: means over the step's updates.
- `reward_mean`: mean reward of the step's B x G rollouts.
- `eval_pass_at_1`: held-out pass@1 (greedy by default) after the step, on the
  config's `eval_split` (the whole held-out split, or its validation half).
- `test_pass_at_1`: the same on the test half, where the config asks for it
  (`test_size > 0`); null otherwise.
- `test_sampled_pass_at_1`, `test_sampled_pass_at_k`: where the config asks
  for them (`sampled_k > 0`, with `test_size > 0`), `sampled_k` responses per
  test prompt sampled at the training temperature with a fixed key: the share
  that are correct, and the share of prompts with at least one correct.
- `probe_entropy`: the mean token entropy of the policy (at the training
  temperature) along those same responses: the entropy on a fixed probe set,
  free of the training batch's noise; null without `sampled_k`.
- `entropy`: mean token entropy of the policy on the step's first minibatch,
  before any update (the sampling policy, at the sampling temperature).
- `response_length`: mean response length in tokens, EOS included.
- `length_correct`, `length_wrong`: the same over correct and over wrong
  rollouts; `length_wrong_max`: the longest wrong rollout.
- `truncated_fraction`: share of rollouts that reached the task's response
  limit without EOS (each scores 0).
- `mixed_group_fraction`, `solve_all_fraction`: share of groups with both
  labels, and with every rollout correct.
- `score_pos_mean`, `score_neg_mean`: mean sequence score `sbar` of correct
  and of wrong rollouts at the last update: how far off-policy it is.
- `score_abs_p50`, `score_abs_p90`, `score_abs_max`: the median, 90%
  quantile and maximum of `|sbar|` over the last update's rollouts: divided by
  `tau`, how far REAL's weights are from their on-policy values.
- `grad_norm_max`: the largest gradient norm of the step's updates (a spike
  that the mean `grad_norm` would hide).
- `ratio_neg_p10`, `ratio_neg_p50`, `ratio_neg_p90`, `ratio_neg_max`: the
  quantiles and the largest of the token ratios `pi / pi_old` on the last
  update's wrong rollouts: how far off-policy the negatives are.
- `grad_cosine`: cosine between the last update's parameter gradient and
  that of the config's `compare_loss` on the same minibatch; null without one.
- `weight_{pos,neg}_mean`, `weight_neg_max`, `weight_{pos,neg}_p{10,50,90}`:
  the per-rollout gradient weight `|w_k|`, `w_k = n_groups * sum_t dL/ds_{k,t}`
  at the last update (for the label-based losses this is `|dL_g/dsbar_k|`,
  the weight inside the rollout's own group).
- `neg_top_share`: over groups with at least two wrong rollouts, the mean
  share of the group's negative weight carried by its largest negative.
- `net_weight_pass_25`, `net_weight_pass_50`, `net_weight_pass_75`,
  `net_weight_pass_100`: the mean net weight `sum_k w_k` of the last update's
  mixed groups whose pass rate (correct share of the group) lies in (0, 1/4],
  (1/4, 1/2], (1/2, 3/4] and (3/4, 1): positive when the update pushes the
  group's sampled responses down on net, 0 for a baseline whose weights sum to
  zero (GRPO on-policy), `(1/tau) [(G-k)/(G+1-k) - k/(1+k)]` for REAL on-policy.
- `neg_dominated_fraction`: over the same groups, the fraction in which that
  largest negative carries more than half of the negative weight (a
  "domination event": one wrong rollout outweighs all the others together).
- `clip_fraction`: share of the last update's response tokens whose clip is
  active (0 for the label-based losses, which have no clip).
- `kl_old`: token-mean `k3` estimate of KL(pi_old || pi) at the last update,
  `mean(e^s - 1 - s)` with `s = log pi - log pi_old` on tokens sampled from
  pi_old: 0 on-policy, growing as the updates move the policy.
- `mismatch_kl`, `is_ratio_min`, `is_ratio_max`, `seq_log_ratio_max`: how far
  the sampler's policy `mu` is from the trainer's `pi_old` on the step's
  rollouts (`real_jax.losses.mismatch_stats`): the k3 estimate of
  KL(mu || pi_old), the extreme token ratios `pi_old / mu`, and the largest
  `|log|` of a rollout's sequence ratio. 0, 1, 1 and 0 when the trainer samples
  with its own policy (`sampler_dtype` float32).
- `corrected_fraction`: share of the last update's response tokens whose
  weight the rollout correction changed (truncated or masked); 0 without one.
"""

__all__ = ["STEP_METRICS", "EVAL_METRIC", "TEST_METRIC", "SAMPLED_METRICS", "EVAL_METRICS",
           "METRICS", "PERCENTILES", "RATIO_NEG", "RATIO_NEG_QUANTILES", "NET_WEIGHT",
           "NET_WEIGHT_BINS", "name"]

PERCENTILES = (10, 50, 90)
# The quantiles (100: the largest) of the last update's token ratios on wrong rollouts.
RATIO_NEG_QUANTILES = (10, 50, 90, 100)
RATIO_NEG: tuple[str, ...] = tuple(f"ratio_neg_{'max' if q == 100 else f'p{q}'}"
                                   for q in RATIO_NEG_QUANTILES)
# The upper ends, in percent, of the pass-rate bins of the net weight per group.
NET_WEIGHT_BINS = (25, 50, 75, 100)
NET_WEIGHT: tuple[str, ...] = tuple(f"net_weight_pass_{q}" for q in NET_WEIGHT_BINS)

# Computed by `step_metrics`, one value per training step.
STEP_METRICS: tuple[str, ...] = (
    "loss", "reward_mean", "entropy", "response_length",
    "length_correct", "length_wrong", "length_wrong_max", "truncated_fraction", "grad_norm",
    "mixed_group_fraction", "solve_all_fraction",
    "score_pos_mean", "score_neg_mean", "score_abs_p50", "score_abs_p90", "score_abs_max",
    "grad_cosine", "grad_norm_max", *RATIO_NEG,
    "weight_pos_mean", "weight_neg_mean", "weight_neg_max", "neg_top_share",
    "neg_dominated_fraction", *NET_WEIGHT,
    *(f"weight_{sign}_p{q}" for sign in ("pos", "neg") for q in PERCENTILES),
    "clip_fraction", "kl_old",
    "mismatch_kl", "is_ratio_min", "is_ratio_max", "seq_log_ratio_max", "corrected_fraction",
)
EVAL_METRIC = "eval_pass_at_1"
TEST_METRIC = "test_pass_at_1"
# Measured at evaluation steps only (`eval_steps`).
SAMPLED_METRICS = ("test_sampled_pass_at_1", "test_sampled_pass_at_k", "probe_entropy")
EVAL_METRICS: tuple[str, ...] = (EVAL_METRIC, TEST_METRIC, *SAMPLED_METRICS)
# The keys of every `metrics.jsonl` record, in order.
METRICS: tuple[str, ...] = ("step", *STEP_METRICS, *EVAL_METRICS)


def name(metric: str) -> str:
  """Returns `metric`, after checking it is in the schema (for code that names metrics)."""
  if metric not in METRICS:
    raise ValueError(f"{metric!r} is not a metric of the schema; known: {', '.join(METRICS)}.")
  return metric
