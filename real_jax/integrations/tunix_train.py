r"""RLVR on math with Tunix's GRPOLearner and real_jax's objectives.

The paper's 1.5B recipe (DeepSeek-R1-Distill-Qwen-1.5B on DeepScaleR-style
problems) is `experiments/configs/r1_distill_1p5b_tunix.py`; its `:toy`
variant runs the same code on CPU with a tiny random Qwen2 and a character
tokenizer, which is how the tests exercise this driver.

Command (see "From the toy to the 1.5B run" in docs/guide/tunix.md for a TPU VM):
  python -m real_jax.integrations.tunix_train \
      --config=experiments/configs/r1_distill_1p5b_tunix.py \
      --config.model.path=/data/DeepSeek-R1-Distill-Qwen-1.5B \
      --config.data.train=/data/deepscaler.json --workdir=/data/runs/real_1p5b \
      [--coordinator_address=HOST:PORT --num_processes=N --process_id=I | --distributed]

On several hosts every process runs the same command: `--distributed` on a
TPU pod (JAX detects the coordinator), or the three explicit flags on a GPU
cluster without a scheduler (`real_jax.distributed`).

Nothing is downloaded unless `model.path` is a hub id rather than a folder,
and then only when the command runs.

Data: a `.json` (list of records), `.jsonl` or `.parquet` file whose records
have a problem and an answer column (`data.prompt_key`, `data.answer_key`;
DeepScaleR's are `problem` and `answer`). Each problem gets
`data.instruction` appended and, with `data.chat_template`, the tokenizer's
chat template. Prompts longer than `rollout.max_prompt_tokens` are dropped
(counted in the log), as verl's `filter_overlong_prompts` does.

Outputs under `--workdir`: `checkpoints/` (Tunix's orbax checkpoints: model
parameters and the data position; a rerun resumes from the latest) and
`tensorboard/` (Tunix's metrics plus real_jax's `real_jax/...` diagnostics).
"""

from __future__ import annotations

from collections.abc import Iterator
from collections.abc import Sequence
import dataclasses
import json
import os
import string
from typing import Any

from absl import logging
import jax
from jax.sharding import Mesh
import ml_collections
import numpy as np
import optax

# Tunix's modules are imported through the adapter, which fails with the
# install hint when the extra is missing.
from tunix.rl import rl_cluster as rl_cluster_lib  # pylint: disable=g-bad-import-order
from tunix.rl.grpo import grpo_learner
from tunix.rl.rollout import base_rollout
from tunix.sft import metrics_logger

from real_jax import distributed
from real_jax import tasks
import real_jax.integrations.tunix as rj_tunix  # its configs register the losses with Tunix
from real_jax.tasks import math as math_task

__all__ = [
    "LOSSES",
    "load_records",
    "make_prompt",
    "prepare",
    "PromptBatches",
    "make_mesh",
    "load_tokenizer",
    "load_model",
    "algo_config",
    "check_config",
    "build_learner",
    "run",
]

TOY_ALPHABET = string.digits + string.ascii_letters + string.punctuation + " \n"


# ------------------------------------------------------------------- data ----


def load_records(path: str) -> list[dict[str, Any]]:
  """Rows of a `.json`, `.jsonl` or `.parquet` file, as dicts."""
  if not os.path.exists(path):
    raise ValueError(f"`data` file {path!r} does not exist.")
  if path.endswith(".jsonl"):
    with open(path, encoding="utf-8") as f:
      return [json.loads(line) for line in f if line.strip()]
  if path.endswith(".json"):
    with open(path, encoding="utf-8") as f:
      records = json.load(f)
    if not isinstance(records, list):
      raise ValueError(f"{path!r} must hold a JSON list of records.")
    return records
  if path.endswith(".parquet"):
    import datasets  # noqa: PLC0415  # a Tunix dependency
    return list(datasets.Dataset.from_parquet(path))
  raise ValueError(f"`data` file {path!r} must end in .json, .jsonl or .parquet.")


def make_prompt(problem: str, data_cfg: ml_collections.ConfigDict,
                tokenizer: Any) -> str:
  text = f"{problem} {data_cfg.instruction}".strip()
  if not data_cfg.chat_template:
    return text
  return tokenizer.apply_chat_template(
      [{"role": "user", "content": text}], tokenize=False,
      add_generation_prompt=True)


def prepare(records: Sequence[dict[str, Any]], data_cfg: ml_collections.ConfigDict,
            tokenizer: Any, max_prompt_tokens: int) -> tuple[list[str], list[str]]:
  """Prompts and gold answers; prompts over `max_prompt_tokens` are dropped."""
  prompts, answers, dropped = [], [], 0
  for i, row in enumerate(records):
    try:
      problem, answer = row[data_cfg.prompt_key], row[data_cfg.answer_key]
    except KeyError as e:
      raise ValueError(
          f"record {i} has no {e.args[0]!r} column; set data.prompt_key and "
          f"data.answer_key (columns: {sorted(row)}).") from None
    prompt = make_prompt(str(problem), data_cfg, tokenizer)
    if len(tokenizer.encode(prompt)) > max_prompt_tokens:
      dropped += 1
      continue
    prompts.append(prompt)
    answers.append(str(answer))
  if dropped:
    logging.info("Dropped %d of %d prompts longer than %d tokens.", dropped,
                 len(records), max_prompt_tokens)
  if not prompts:
    raise ValueError("No prompt left after filtering; raise "
                     "rollout.max_prompt_tokens or check the data.")
  return prompts, answers


@dataclasses.dataclass
class PromptBatches:
  """Batches of `{"prompts", "answer"}` arrays, reshuffled every epoch.

  Deterministic in `seed`, so Tunix's fast-forward on resume lands on the
  same batches. Re-iterable: every `iter()` starts again from the beginning.
  """
  prompts: Sequence[str]
  answers: Sequence[str]
  batch_size: int
  seed: int = 0
  epochs: int | None = 1

  def __post_init__(self):
    if len(self.prompts) < self.batch_size:
      raise ValueError(
          f"`batch_size` {self.batch_size} is larger than the "
          f"{len(self.prompts)} prompts available.")

  def __iter__(self) -> Iterator[dict[str, np.ndarray]]:
    prompts, answers = np.asarray(self.prompts), np.asarray(self.answers)
    epoch = 0
    while self.epochs is None or epoch < self.epochs:
      order = np.random.default_rng([self.seed, epoch]).permutation(len(prompts))
      for start in range(0, len(order) - self.batch_size + 1, self.batch_size):
        idx = order[start:start + self.batch_size]
        # Tunix repeats every column G times with np.repeat, so columns must
        # be arrays (a list of strings would be repeated string by string).
        yield {"prompts": prompts[idx], "answer": answers[idx]}
      epoch += 1


# ------------------------------------------------------- model, tokenizer ----


def make_mesh(shape: Sequence[int]) -> Mesh:
  """An `("fsdp", "tp")` mesh over all devices; -1 takes what is left."""
  devices = np.array(jax.devices())
  fsdp, tp = shape
  if fsdp == -1:
    fsdp = devices.size // tp
  if fsdp * tp != devices.size:
    raise ValueError(f"`mesh` {tuple(shape)} does not cover the "
                     f"{devices.size} devices.")
  return Mesh(devices.reshape(fsdp, tp), ("fsdp", "tp"))


def _dtype(name: str) -> Any:
  return {"float32": jax.numpy.float32, "bfloat16": jax.numpy.bfloat16}[name]


def load_tokenizer(model_cfg: ml_collections.ConfigDict) -> Any:
  if model_cfg.family == "toy":
    return rj_tunix.CharTokenizerAdapter(tasks.CharTokenizer(TOY_ALPHABET))
  import transformers  # noqa: PLC0415  # a Tunix dependency
  return transformers.AutoTokenizer.from_pretrained(_local_dir(model_cfg.path))


def _local_dir(path: str) -> str:
  if os.path.isdir(path):
    return path
  # A hub id: fetched now, at the user's request, never at import or test time.
  import huggingface_hub  # noqa: PLC0415
  return huggingface_hub.snapshot_download(repo_id=path)


def load_model(model_cfg: ml_collections.ConfigDict, mesh: Mesh,
               vocab_size: int) -> Any:
  from tunix.models.qwen2 import model as qwen2  # noqa: PLC0415
  from tunix.models.qwen2 import params as qwen2_params  # noqa: PLC0415
  remat = {"none": qwen2.RematConfig.NONE, "block": qwen2.RematConfig.BLOCK,
           "decoder": qwen2.RematConfig.DECODER}[model_cfg.remat]
  if model_cfg.family == "toy":
    from flax import nnx  # noqa: PLC0415
    config = qwen2.ModelConfig(
        num_layers=1, vocab_size=vocab_size, embed_dim=32, hidden_dim=64,
        num_heads=2, head_dim=16, num_kv_heads=1, rope_theta=10_000,
        norm_eps=1e-6, remat_config=remat)
    return qwen2.Qwen2(config, rngs=nnx.Rngs(model_cfg.seed))
  if model_cfg.family != "qwen2":
    raise ValueError(f"`model.family` must be 'qwen2' or 'toy'; got {model_cfg.family!r}.")
  config = getattr(qwen2.ModelConfig, model_cfg.config)()
  config = dataclasses.replace(
      config, remat_config=remat, dtype=_dtype(model_cfg.dtype),
      param_dtype=_dtype(model_cfg.param_dtype),
      use_flash_attention=model_cfg.flash_attention)
  return qwen2_params.create_model_from_safe_tensors(
      _local_dir(model_cfg.path), config, mesh=mesh,
      dtype=_dtype(model_cfg.param_dtype))


# ------------------------------------------------------------------ train ----


# The label-based objectives by name, Tunix's own GRPO as "grpo", and every
# real_jax objective under its prefixed name (real_jax_grpo, real_jax_dapo, ...,
# and real_jax_<name> for one registered with real_jax.losses.register).
LOSSES = rj_tunix.OBJECTIVES + ("grpo",) + tuple(rj_tunix.REGISTERED)


def algo_config(cfg: ml_collections.ConfigDict) -> grpo_learner.GRPOConfig:
  """REAL & co. through `LabelGRPOConfig`, real_jax's advantage-weighted objectives
  through `RealJaxGRPOConfig`; 'grpo' is Tunix's own, for baselines."""
  common = dict(num_generations=cfg.group_size, num_iterations=cfg.num_iterations,
                beta=cfg.beta)
  if cfg.loss == "grpo":
    return grpo_learner.GRPOConfig(policy_loss_fn="grpo", epsilon=cfg.epsilon,
                                   loss_agg_mode=cfg.loss_agg_mode, **common)
  name = rj_tunix.tunix_name(cfg.loss)
  if rj_tunix.takes_tau(name):
    return rj_tunix.LabelGRPOConfig(policy_loss_fn=cfg.loss, tau=cfg.tau, **common)
  return rj_tunix.RealJaxGRPOConfig(policy_loss_fn=cfg.loss,
                                    loss_kwargs=dict(cfg.get("loss_kwargs", None) or {}),
                                    **common)


def check_config(cfg: ml_collections.ConfigDict) -> None:
  if cfg.loss != "grpo":
    try:
      rj_tunix.tunix_name(cfg.loss)
    except ValueError:
      raise ValueError(f"`loss` must be one of {LOSSES}, or real_jax_<name> of a loss you "
                       f"registered; got {cfg.loss!r}.") from None
  if cfg.prompts_per_step % cfg.updates_per_step:
    raise ValueError(
        f"`prompts_per_step` ({cfg.prompts_per_step}) must split into "
        f"`updates_per_step` ({cfg.updates_per_step}) equal mini-batches.")
  mini = cfg.prompts_per_step // cfg.updates_per_step
  micro = cfg.micro_batch_prompts or mini
  if mini % micro:
    raise ValueError(f"`micro_batch_prompts` ({micro}) must divide the "
                     f"mini-batch of {mini} prompts.")


def build_learner(cfg: ml_collections.ConfigDict, workdir: str,
                  tokenizer: Any) -> grpo_learner.GRPOLearner:
  """The RLCluster and GRPOLearner that `cfg` describes."""
  check_config(cfg)
  mesh = make_mesh(cfg.mesh)
  # Only the toy model is sized from its tokenizer; checkpoints carry their own.
  model = load_model(cfg.model, mesh, getattr(tokenizer, "vocab_size", None))
  mini = cfg.prompts_per_step // cfg.updates_per_step
  optimizer = optax.chain(
      optax.clip_by_global_norm(cfg.grad_clip),
      optax.adamw(cfg.lr, b1=0.9, b2=0.999, weight_decay=cfg.weight_decay))
  training = rl_cluster_lib.RLTrainingConfig(
      actor_optimizer=optimizer,
      eval_every_n_steps=cfg.eval_every,
      max_steps=cfg.steps * cfg.updates_per_step,
      mini_batch_size=mini,
      train_micro_batch_size=cfg.micro_batch_prompts or mini,
      checkpoint_root_directory=os.path.join(workdir, "checkpoints"),
      metrics_logging_options=metrics_logger.MetricsLoggerOptions(
          log_dir=os.path.join(workdir, "tensorboard"), flush_every_n_steps=1),
  )
  rollout = base_rollout.RolloutConfig(
      max_tokens_to_generate=cfg.rollout.max_response_tokens,
      max_prompt_length=cfg.rollout.max_prompt_tokens,
      kv_cache_size=(cfg.rollout.max_prompt_tokens
                     + cfg.rollout.max_response_tokens + 8),
      temperature=cfg.rollout.temperature,
      top_p=cfg.rollout.top_p,
  )
  cluster = rl_cluster_lib.RLCluster(
      actor=model, reference=None, tokenizer=tokenizer,
      cluster_config=rl_cluster_lib.ClusterConfig(
          role_to_mesh={role: mesh for role in (rl_cluster_lib.Role.ACTOR,
                                                rl_cluster_lib.Role.REFERENCE,
                                                rl_cluster_lib.Role.ROLLOUT)},
          rollout_engine=cfg.rollout.engine,
          offload_to_cpu=False,
          training_config=training,
          rollout_config=rollout))
  learner = grpo_learner.GRPOLearner(
      rl_cluster=cluster, algo_config=algo_config(cfg),
      reward_fns=[math_task.reward_fn], data_shuffle_seed=None)
  rj_tunix.log_diagnostics(learner)
  return learner


def run(cfg: ml_collections.ConfigDict, workdir: str) -> grpo_learner.GRPOLearner:
  """Trains as `cfg` says; returns the learner (its cluster holds the model)."""
  if cfg.beta:
    raise ValueError("`beta` > 0 needs a reference model, which this driver "
                     "does not load; the paper trains REAL without KL.")
  if not cfg.data.train:
    raise ValueError("`data.train` is empty: pass --config.data.train=FILE "
                     "(.json, .jsonl or .parquet with problem and answer columns).")
  if "://" not in workdir:
    workdir = os.path.abspath(workdir)  # orbax refuses relative paths
  if distributed.is_lead():  # Tunix's checkpoints and metrics take every process
    os.makedirs(workdir, exist_ok=True)
    with open(os.path.join(workdir, "config.json"), "w", encoding="utf-8") as f:
      f.write(cfg.to_json_best_effort(indent=2))
  tokenizer = load_tokenizer(cfg.model)
  prompts, answers = prepare(load_records(cfg.data.train), cfg.data, tokenizer,
                             cfg.rollout.max_prompt_tokens)
  train = PromptBatches(prompts, answers, cfg.prompts_per_step, seed=cfg.seed,
                        epochs=None)
  evaluation = None
  if cfg.data.eval:
    eval_prompts, eval_answers = prepare(load_records(cfg.data.eval), cfg.data,
                                         tokenizer, cfg.rollout.max_prompt_tokens)
    evaluation = PromptBatches(eval_prompts, eval_answers,
                               min(cfg.prompts_per_step, len(eval_prompts)),
                               seed=cfg.seed)
  logging.info("%d training prompts; %s, tau=%s, G=%d, %d prompts/step, "
               "%d updates/step, %d steps.", len(prompts), cfg.loss, cfg.tau,
               cfg.group_size, cfg.prompts_per_step, cfg.updates_per_step,
               cfg.steps)
  learner = build_learner(cfg, workdir, tokenizer)
  learner.train(train, evaluation)
  trainer = learner.rl_cluster.actor_trainer
  history = trainer.metrics_logger.get_metric_history
  last = {}
  for name in ("loss", rj_tunix.DIAGNOSTICS[0]):
    if trainer.metrics_logger.metric_exists("actor", name, "train"):
      last[name] = float(np.asarray(history("actor", name, "train"))[-1])
  logging.info("Finished at update %d; last %s; checkpoints and TensorBoard "
               "under %s.", trainer.train_steps, last, workdir)
  return learner


def main(argv: Sequence[str]) -> None:
  del argv
  # Before anything touches a device: the three flags, --distributed
  # (auto-detection on a TPU pod, SLURM or Open MPI), or one process.
  distributed.initialize_from_flags(_MULTI)
  run(_CONFIG.value, _WORKDIR.value)


if __name__ == "__main__":
  from absl import app  # pylint: disable=g-import-not-at-top
  from absl import flags  # pylint: disable=g-import-not-at-top
  from ml_collections import config_flags  # pylint: disable=g-import-not-at-top

  _CONFIG = config_flags.DEFINE_config_file("config", None, "Run config.")
  _WORKDIR = flags.DEFINE_string("workdir", None, "Output folder.")
  _MULTI = distributed.define_flags()
  flags.mark_flags_as_required(["config", "workdir"])
  app.run(main)
