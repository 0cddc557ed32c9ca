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

Each (loss, regime) group trains its 3 learning rates x 10 paired seeds as one
program of `points_per_program` = 30 runs. Every program has that width, so
a point's numbers are the same to the last bit in any grouping (a rerun of a
subset checks it). Selection as in the off-policy study: each loss's rate is
chosen on validation pass@1 and reported on the disjoint test half, with 95%
bootstrap intervals over seeds and REAL's paired differences.

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
LEARNING_RATES = (3e-5, 1e-4, 3e-4)
SEEDS = tuple(range(10))


def get_config(arg=None):
  c = config.get_config()
  c.task.name = "chain_addition"
  c.task.kwargs = {"digits": 2, "chain_fraction": 0.5}
  c.model.update(width=32, depth=2, heads=4)
  c.update(prompts_per_step=8, group_size=8, steps=60, eval_every=20, eval_split="validation",
           eval_size=256, test_size=256, points_per_program=len(LEARNING_RATES) * len(SEEDS))
  if arg == "smoke":
    config.shrink_for_smoke(c)
  return c


def get_sweep(arg=None):
  rates, seeds = LEARNING_RATES, SEEDS
  groups = [(loss, regime) for loss in LOSSES for regime in REGIMES.values()]
  groups += [(loss, regime) for loss in MISMATCH_LOSSES for regime in MISMATCH_REGIMES.values()]
  if arg == "smoke":
    rates, seeds = (3e-4, 1e-3), (0, 1)
    groups = [(loss, regime) for loss in MISMATCH_LOSSES
              for regime in (REGIMES["1"], MISMATCH_REGIMES["1 bf16 tis_token"])]
  return [{"loss": loss, "ppo_epochs": epochs, "minibatches": minibatches,
           "sampler_dtype": sampler, "correction": correction, "lr": lr, "seed": seed}
          for loss, (epochs, minibatches, sampler, correction) in groups
          for lr in rates for seed in seeds]
