r"""The off-policy study: six losses x three regimes of updates per step x five learning rates x five seeds.

Command (resumable: finished points are skipped when it runs again):
  python -m real_jax.study --config=experiments/configs/study_offpolicy.py \
      --workdir=runs/study --out=docs/study          # or: make study

2-digit addition from the shared base model, 100 steps of 16 prompts x 8
rollouts. A regime is `ppo_epochs x minibatches` updates on each sampled
batch: 1 (1 x 1, on-policy), 4 (1 x 4, the paper's setting) and 16 (4 x 4,
every rollout reused four times, clearly off-policy). Seeds are paired across
losses and learning rates: the same seed shares the base model, the prompts
and the sampling keys. Each (loss, regime) group of 5 learning rates x 5
seeds trains as one vmapped program.

Model selection is honest: held-out pass@1 is measured on two disjoint halves
of the held-out problems, `eval_pass_at_1` on the validation half (used only
to pick each loss's learning rate in each regime) and `test_pass_at_1` on the
test half (used only for the reported numbers).

`study_offpolicy.py:atlas` runs the same grid for the objectives since the
paper (CISPO, SAPO, GMPO, GPG) beside REAL and GRPO, each at its own
defaults, with the same paired seeds, so that REAL minus each loss is paired
as in the main study. REAL and GRPO rerun here do not reproduce the main
study's numbers to the last digit: they were trained in programs of 20 and
5 runs there and of 25 here, a program vmapped over a different number of
runs rounds differently, and 100 RL steps amplify that ("Replication" in
docs/results/study.md measures by how much; today every program of a config
has its `points_per_program` width, so a rerun is exact):
  python -m real_jax.study --config=experiments/configs/study_offpolicy.py:atlas \
      --workdir=runs/study_atlas --out=docs/study_atlas

`study_offpolicy.py:smoke` is the same study shrunk to seconds (1-digit
addition, a 16-wide policy, 2 losses x 2 regimes x 2 learning rates x 2
seeds, 4 steps); `make test` runs it.

Runtime: about 25 minutes on the 2-core CPU (budget: 90). What to look at:
`docs/study/summary.csv` (its table `summary.md`), `per_seed.csv` and the
figures; docs/results/study.md reads them.
"""

from real_jax.training import config

LOSSES = ("grpo", "dapo", "gspo", "real", "grad", "bce")
ATLAS_LOSSES = ("grpo", "real", "cispo", "sapo", "gmpo", "gpg")
# updates per step -> (ppo_epochs, minibatches)
REGIMES = {1: (1, 1), 4: (1, 4), 16: (4, 4)}
LEARNING_RATES = (1e-5, 3e-5, 1e-4, 3e-4, 1e-3)
SEEDS = (0, 1, 2, 3, 4)


def get_config(arg=None):
  c = config.get_config()
  c.steps = 100
  c.eval_every = 25
  c.eval_split = "validation"
  c.eval_size = 512
  c.test_size = 512
  # A (loss, regime) group's 5 learning rates x 5 seeds per program, the width
  # the committed results were trained at.
  c.points_per_program = 25
  if arg == "smoke":
    config.shrink_for_smoke(c)
  return c


def get_sweep(arg=None):
  losses, regimes, rates, seeds = LOSSES, REGIMES, LEARNING_RATES, SEEDS
  if arg == "smoke":
    losses, regimes, rates, seeds = ("grpo", "real"), {1: (1, 1), 4: (1, 4)}, (3e-4, 1e-3), (0, 1)
  elif arg == "atlas":
    losses = ATLAS_LOSSES
  return [{"loss": loss, "ppo_epochs": epochs, "minibatches": minibatches, "lr": lr,
           "seed": seed}
          for loss in losses for epochs, minibatches in regimes.values()
          for lr in rates for seed in seeds]
