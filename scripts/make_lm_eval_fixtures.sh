#!/usr/bin/env bash
# Regenerate tests/fixtures/lm_eval/<version>/ with real lm-eval CLI runs.
#
# Two lm-eval versions: the one in .venv (current) and 0.4.5 in its own venv
# ($LMEVAL045_VENV, default /tmp/lmeval045), created when missing:
#   python -m venv /tmp/lmeval045
#   /tmp/lmeval045/bin/pip install torch==2.13.0          # CPU wheel, first
#   /tmp/lmeval045/bin/pip install lm-eval==0.4.5 "transformers<4.50" "datasets<4"
#
# The model is an untrained tiny GPT-2 (scripts/make_lm_eval_fixture_model.py)
# saved under a fixed path, so model_args in the committed files are stable.
# Outputs go to <version>/mlflow-run-<id>/... (the run-id path convention) and
# <version>/plain/... (tagged through --metadata); the model path ends in
# checkpoint-N for linking tests.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
FIX="$ROOT/tests/fixtures/lm_eval"
VENV045="${LMEVAL045_VENV:-/tmp/lmeval045}"
WORK="${FIXTURE_WORK:-/tmp/fw-lm-eval-fixtures}"
MODEL="$WORK/runs/fixture-ft/checkpoint-20"
RUN_ID="0f1e2d3c4b5a69788796a5b4c3d2e1f0"   # in the output path: mlflow-run-<id>
TAG_RUN_ID="aaaabbbbccccddddeeeeffff00001111"  # as --metadata '{"mlflow_run_id": ...}'
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false

if [ -z "${FIXTURE_PYTHONS:-}" ] && [ ! -x "$VENV045/bin/lm_eval" ]; then
  python3 -m venv "$VENV045"
  "$VENV045/bin/pip" install -q torch==2.13.0
  "$VENV045/bin/pip" install -q lm-eval==0.4.5 "transformers<4.50" "datasets<4"
fi

rm -rf "$WORK" && mkdir -p "$WORK/tasks"
for f in "$FIX"/tasks/*; do
  sed "s#__DATA_DIR__#$FIX/data#g" "$f" > "$WORK/tasks/$(basename "$f")"
done
"$ROOT/.venv/bin/python" "$ROOT/scripts/make_lm_eval_fixture_model.py" "$MODEL" "$FIX/data"

run() {  # run PYTHON OUT_DIR ARGS...
  local py="$1" out="$2"; shift 2
  (cd "$WORK" && "$py" -m lm_eval --model hf \
    --model_args "pretrained=$MODEL,dtype=float32" --device cpu --batch_size 4 \
    --include_path "$WORK/tasks" --output_path "$out" --log_samples --seed 1234 "$@")
}

for py in ${FIXTURE_PYTHONS:-"$ROOT/.venv/bin/python" "$VENV045/bin/python"}; do
  version="$("$py" -c 'import importlib.metadata as m; print(m.version("lm_eval"))')"
  dest="$FIX/$version"
  rm -rf "$dest" && mkdir -p "$dest"
  # Loglikelihood tasks: a group with two subtasks, and a continuous per-sample metric.
  run "$py" "$dest/mlflow-run-$RUN_ID" --tasks fx_mmlu,fx_mc2 --limit 10 --num_fewshot 1
  # Generation tasks: two filters, list-valued per-sample metrics, chat template, and
  # the run-id tag where this lm-eval has --metadata (0.4.5 does not).
  tag=()
  pkg="$("$py" -c 'import lm_eval, os; print(os.path.dirname(lm_eval.__file__))')"
  if grep -rqs -- '"--metadata"' "$pkg"; then
    tag=(--metadata "{\"mlflow_run_id\": \"$TAG_RUN_ID\"}")
  fi
  run "$py" "$dest/plain" --tasks fx_gen,fx_ifeval --limit 6 --apply_chat_template "${tag[@]}"
  echo "lm-eval $version fixtures in $dest"
done
du -sh "$FIX"
