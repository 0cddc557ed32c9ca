#!/usr/bin/env bash
# The paper's 1.5B recipe (REAL on DeepSeek-R1-Distill-Qwen-1.5B, DeepScaleR
# problems) on a single-host Cloud TPU VM slice, through Tunix.
#
#   ZONE=<zone with v6e capacity> bash experiments/launch_tpu_r1_1p5b.sh
#   DRY_RUN=1 ZONE=x bash experiments/launch_tpu_r1_1p5b.sh   # print, run nothing
#
# Settings (environment): ZONE (required), TPU_NAME (real-1p5b), ACCELERATOR
# (v6e-8), RUNTIME (v2-alpha-tpuv6e), LOSS (real; grad, bce, real_product or
# grpo), RUN (runs/$LOSS_1p5b under the VM's home). Run from the repository
# root: the committed tree (git archive of HEAD) is copied to the VM. The VM
# downloads the weights and the data itself; nothing is downloaded here.
set -euo pipefail

: "${ZONE:?set ZONE to a zone that offers ${ACCELERATOR:-v6e-8} capacity}"
TPU_NAME="${TPU_NAME:-real-1p5b}"
ACCELERATOR="${ACCELERATOR:-v6e-8}"
RUNTIME="${RUNTIME:-v2-alpha-tpuv6e}"
LOSS="${LOSS:-real}"
RUN="${RUN:-runs/${LOSS}_1p5b}"

run() {
  if [[ -n "${DRY_RUN:-}" ]]; then printf '%q ' "$@"; echo; else "$@"; fi
}

REMOTE=$(cat <<EOF
set -euo pipefail
mkdir -p ~/real_jax && tar -xzf ~/real_jax.tar.gz -C ~/real_jax && cd ~/real_jax
test -x .venv/bin/python || python3 -m venv .venv
.venv/bin/pip install -q -e '.[tunix]' 'jax[tpu]'
mkdir -p ~/models ~/data
test -d ~/models/r1-1p5b || .venv/bin/hf download deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B --local-dir ~/models/r1-1p5b
test -f ~/data/deepscaler.jsonl || .venv/bin/python -c 'import datasets, os; datasets.load_dataset("agentica-org/DeepScaleR-Preview-Dataset", split="train").to_json(os.path.expanduser("~/data/deepscaler.jsonl"))'
.venv/bin/python -m real_jax.integrations.tunix_train \\
    --config=experiments/configs/r1_distill_1p5b_tunix.py \\
    --config.loss=${LOSS} \\
    --config.model.path=\$HOME/models/r1-1p5b \\
    --config.data.train=\$HOME/data/deepscaler.jsonl \\
    --workdir=\$HOME/${RUN}
EOF
)

if [[ -n "${DRY_RUN:-}" ]] || ! gcloud compute tpus tpu-vm describe "$TPU_NAME" --zone="$ZONE" >/dev/null 2>&1; then
  run gcloud compute tpus tpu-vm create "$TPU_NAME" --zone="$ZONE" \
      --accelerator-type="$ACCELERATOR" --version="$RUNTIME"
fi
ARCHIVE="$(mktemp -d)/real_jax.tar.gz"
run git archive --format=tar.gz -o "$ARCHIVE" HEAD
run gcloud compute tpus tpu-vm scp --zone="$ZONE" "$ARCHIVE" "$TPU_NAME":~/real_jax.tar.gz
run gcloud compute tpus tpu-vm ssh "$TPU_NAME" --zone="$ZONE" --command="$REMOTE"
