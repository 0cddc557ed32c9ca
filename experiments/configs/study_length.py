r"""The length study: chain-of-thought addition, two update regimes, and a sampler/trainer mismatch.

Command (resumable: finished points are skipped when it runs again):
  python -m real_jax.study --config=experiments/configs/study_length.py \
      --workdir=runs/study_length --out=docs/study_length

The task is `chain_addition` (2-digit operands), whose responses run from 2
tokens (the sum and EOS) to 20 (a chain of column sums, then the sum); the
base model is warm-started on half direct and half chained demonstrations.
Policy: 2 layers, 32 wide. Each step samples 8 prompts x 8 rollouts; 60
steps. Regimes:

- `1`: one update per sampled batch (on-policy);
- `16`: 4 epochs x 4 minibatches (each rollout reused four times);
- `1 bf16`, `1 bf16 tis_token`: on-policy, but sampled with the weights
  rounded to bfloat16 and computed in bfloat16 while the trainer stays in
  float32 and recomputes pi_old: the mismatch of an inference engine, without
  and with token-level truncated importance sampling (GRPO and REAL only).

Learning rates 1e-5, 3e-5, 1e-4 and 3e-4, and 3e-6 too for 16 updates, x 10
paired seeds. Every program is `points_per_program` = 30 runs wide (the
width the first 480 runs were trained at, kept when the grid grew), so a
point's numbers are the same to the last bit in any grouping (a rerun of a
subset checks it). Selection as in the off-policy study: each loss's rate is
chosen on validation pass@1 and reported on the disjoint test half, with 95%
t intervals over seeds and REAL's paired differences (sign-flip p, Holm).

`study_length.py:smoke` is the same study shrunk to seconds (1-digit
operands, a 16-wide policy, GRPO and REAL x the regimes `1` and
`1 bf16 tis_token` x 2 learning rates x 2 seeds, 4 steps); `make test` runs it.
"""

from real_jax.training import config

LOSSES = ("grpo", "dapo", "dr_grpo", "gspo", "real", "grad")
MISMATCH_LOSSES = ("grpo", "real")
# regime label -> (ppo_epochs, minibatches, sampler_dtype, correction)
REGIMES = {"1": (1, 1, "float32", "none"), "16": (4, 4, "float32", "none")}
MISMATCH_REGIMES = {"1 bf16": (1, 1, "bfloat16", "none"),
                    "1 bf16 tis_token": (1, 1, "bfloat16", "tis_token")}
LEARNING_RATES = (1e-5, 3e-5, 1e-4, 3e-4)
# Sixteen updates of one batch move the policy as far as a rate about ten times
# larger on-policy: their selected rate sat at 1e-5, the grid's edge, so their
# grid reaches one step lower.
LOW_RATES = {"16": (3e-6,)}
SEEDS = tuple(range(10))


def get_config(arg=None):
  c = config.get_config()
  c.task.name = "chain_addition"
  c.task.kwargs = {"digits": 2, "chain_fraction": 0.5}
  c.model.update(width=32, depth=2, heads=4)
  c.update(prompts_per_step=8, group_size=8, steps=60, eval_every=20, eval_split="validation",
           eval_size=256, test_size=256, points_per_program=30)
  if arg == "smoke":
    config.shrink_for_smoke(c)
  return c


def get_sweep(arg=None):
  seeds = SEEDS
  groups = [(loss, label) for loss in LOSSES for label in REGIMES]
  groups += [(loss, label) for loss in MISMATCH_LOSSES for label in MISMATCH_REGIMES]
  rates = {label: LOW_RATES.get(label, ()) + LEARNING_RATES for _, label in groups}
  if arg == "smoke":
    seeds = (0, 1)
    groups = [(loss, label) for loss in MISMATCH_LOSSES for label in ("1", "1 bf16 tis_token")]
    rates = {label: (3e-4, 1e-3) for _, label in groups}
  regimes = {**REGIMES, **MISMATCH_REGIMES}
  return [{"loss": loss, "ppo_epochs": regimes[label][0], "minibatches": regimes[label][1],
           "sampler_dtype": regimes[label][2], "correction": regimes[label][3], "lr": lr,
           "seed": seed}
          for loss, label in groups for lr in rates[label] for seed in seeds]
