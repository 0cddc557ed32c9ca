r"""The paper's 1.5B recipe through Tunix: REAL on DeepSeek-R1-Distill-Qwen-1.5B.

The paper's setting (docs/derivations.md, "The paper's results"): DeepScaleR-Preview problems, 8 rollouts per prompt, 128
prompts per step, 4 updates per step, lr 2e-6, temperature 0.6, responses up
to 8192 tokens, tau = 0.5, no KL. The paper ran verl on GPUs; this is the same
setting on Tunix (JAX, TPU-first). Commands for a Cloud TPU VM are in the
"From the toy to the 1.5B run" in docs/guide/tunix.md.

  python -m real_jax.integrations.tunix_train \
      --config=experiments/configs/r1_distill_1p5b_tunix.py \
      --config.model.path=/data/DeepSeek-R1-Distill-Qwen-1.5B \
      --config.data.train=/data/deepscaler.json --workdir=/data/runs/real_1p5b

Other objectives: `--config.loss=grad|bce|real_product`; `grpo` (Tunix's own
clipped loss) for the baseline; or any real_jax objective under its prefixed
name, `real_jax_grpo`, `real_jax_dapo`, `real_jax_gspo`, `real_jax_cispo`, ...,
the verified implementations of `real_jax.losses`, their hyperparameters in
`c.loss_kwargs` (e.g. `ml_collections.ConfigDict({"clip_ratio_c": 3.0})`).

`:toy` (`--config=experiments/configs/r1_distill_1p5b_tunix.py:toy`) keeps
every code path but swaps in a one-layer random Qwen2, a character tokenizer,
short responses and tiny batches, so it runs on a CPU in seconds; the tests
run it. It learns nothing: it is a wiring check, not an experiment.
"""

import os

import ml_collections

# Appended to every problem, as in DeepScaleR's training data pipeline.
INSTRUCTION = "Let's think step by step and output the final answer within \\boxed{}."


def get_config(variant: str = "paper") -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.loss = "real"
  c.tau = 0.5
  # Used only by loss=grpo (Tunix's GRPO), for a baseline run.
  c.epsilon = 0.2
  c.loss_agg_mode = "sequence-mean-token-mean"
  # Hyperparameters of a real_jax_<name> loss (its own defaults otherwise).
  c.loss_kwargs = ml_collections.ConfigDict()
  c.beta = 0.0

  c.group_size = 8
  c.prompts_per_step = 128
  # 4 optimizer updates per step: mini-batches of 32 prompts (256 rollouts).
  # Tunix samples each mini-batch with the policy of that moment, so every
  # update is on-policy (scores start at 0) and num_iterations stays 1.
  c.updates_per_step = 4
  c.num_iterations = 1
  # Prompts per forward/backward pass (gradient accumulation inside a
  # mini-batch); None means the whole mini-batch. 8 prompts x 8 rollouts x
  # 9k tokens fits a v5p/v6e host with remat; lower it on smaller HBM.
  c.micro_batch_prompts = 8
  c.lr = 2e-6
  c.weight_decay = 0.01  # verl's actor default
  c.grad_clip = 1.0      # verl's actor default
  # DeepScaleR-Preview has 40,315 problems: 315 steps is one epoch.
  c.steps = 315
  c.eval_every = 20
  c.seed = 0

  c.model = ml_collections.ConfigDict({
      "family": "qwen2",
      "config": "deepseek_r1_distill_qwen_1p5b",  # tunix.models.qwen2.ModelConfig
      # A local folder with config.json, *.safetensors and the tokenizer, or a
      # hub id (downloaded when the command runs, never at import or test).
      "path": "deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B",
      "dtype": "bfloat16",
      "param_dtype": "float32",
      "remat": "decoder",
      "flash_attention": True,
      "seed": 0,
  })
  c.data = ml_collections.ConfigDict({
      "train": "",            # .json / .jsonl / .parquet with problem, answer
      "eval": "",             # optional, same format (e.g. MATH500 or AIME24)
      "prompt_key": "problem",
      "answer_key": "answer",
      "instruction": INSTRUCTION,
      "chat_template": True,
  })
  c.rollout = ml_collections.ConfigDict({
      "engine": "vanilla",    # Tunix's JAX sampler; "vllm" or "sglang_jax" on TPU if installed
      "temperature": 0.6,
      "top_p": 1.0,
      "max_prompt_tokens": 1024,
      "max_response_tokens": 8192,
  })
  # Devices as (fsdp, tp); -1 takes all that tp leaves.
  c.mesh = (-1, 1)
  # Multi-host slices: every worker runs the same command with --distributed
  # (a TPU pod: JAX detects the rest) or with --coordinator_address,
  # --num_processes and --process_id (see real_jax.distributed).

  if variant == "toy":
    c.group_size = 4
    c.prompts_per_step = 4
    c.updates_per_step = 2
    c.micro_batch_prompts = None
    c.lr = 1e-2
    c.steps = 2
    c.eval_every = 1000
    c.model.family = "toy"
    c.model.path = ""
    c.model.remat = "none"
    # Found from the config's own folder, so the toy recipe runs from anywhere.
    c.data.train = os.path.normpath(os.path.join(
        os.path.dirname(os.path.abspath(__file__)), os.pardir, "data", "toy_math.jsonl"))
    c.data.chat_template = False
    c.data.instruction = ""
    c.rollout.temperature = 1.0
    c.rollout.max_prompt_tokens = 64
    c.rollout.max_response_tokens = 8
  elif variant != "paper":
    raise ValueError(f"config variant must be 'paper' or 'toy'; got {variant!r}.")
  return c
