#!/usr/bin/env bash
# The GPU figures of issues #13 and #20, each step with its own time limit:
#   infer    the hf backend's tokens/s against the release's loop (bench/infer_gpu.py), ~2 min
#   mainjob  python -m crossmath.run against its own backend, same requests (bench/mainjob_gpu.py), ~4 min
#   train    SFT: Ray Train against the plain loop, tokens/s and MFU (bench/train_gpu.py), ~3 min
#   grpo     GRPO on the Qwen2.5-VL-3B shape (bench/grpo_gpu.py), ~7 min: rollouts batched against
#            the release's loop at equal batches, the update at the study's 6000-token
#            completions (tokens/s and MFU, beside train's SFT figures), a whole GRPO step
#   vllm     vLLM's engine against the hf backend and the loop, where vLLM is installed
#            (bench/vllm_gpu.py; the lent machines have none: docs/performance.md), ~5 min
# With no argument every step runs (more than one 10-minute device call: name the steps, e.g.
# `bash bench/device_checks.sh train grpo`). Each step writes its JSON to $OUT; a failed step
# does not stop the others. Needs .whl/device-site.tar.xz (bench/device_site.sh) carried:
#   run(command="bash bench/device_checks.sh train grpo", carry=[".whl"], timeout_s=600)
set -uo pipefail
cd "$(dirname "$0")/.."
export OUT=${OUT:-$(mktemp -d)} PYTHONUNBUFFERED=1 RAY_AUTH_MODE=disabled

site=/tmp/device-site
mkdir -p "$site"
tar -C "$site" -xJf .whl/device-site.tar.xz || { echo "no .whl/device-site.tar.xz: carry .whl"; exit 2; }
export PYTHONPATH=$site
# crossmath itself, installed editable as here: its configs (conf/) are the package crossmath.conf,
# which the path alone does not give; the benches import crossmath as installed.
python3 -m pip install -q --no-deps --no-index --no-build-isolation -e . || exit 2
python3 - <<'PY' || exit 2
import importlib, sys
missing = []
for name in ("ray.data", "ray.train.torch", "hydra", "omegaconf", "mlflow", "sqlalchemy",
             "alembic", "crossmath.conf", "crossmath.pipeline.dataflow", "crossmath.tracking.mlflow_store"):
    try:
        importlib.import_module(name)
    except Exception as error:  # noqa: BLE001 - listed, then the script stops
        missing.append(f"{name}: {type(error).__name__}: {error}")
print("preflight:", "ok" if not missing else "\n  ".join(["missing"] + missing), flush=True)
sys.exit(1 if missing else 0)
PY
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader

wanted=("$@")
step() {  # step NAME SECONDS COMMAND...: run with a hard limit, keep going on failure
    local name=$1 limit=$2; shift 2
    if [ ${#wanted[@]} -gt 0 ] && [[ ! " ${wanted[*]} " =~ " $name " ]]; then return; fi
    echo "=== $name (limit ${limit} s): $*"
    timeout --kill-after=10 "$limit" "$@" 2>&1 | tee "$OUT/$name.log" | grep -v -e '^(.*pid=' -e 'DEBUG'
    echo "=== $name: exit ${PIPESTATUS[0]}"
}

step infer 120 python3 bench/infer_gpu.py --time-budget-s 110 \
    --variants probe:64,batched:64 --max-new-tokens 512 --median-new-tokens 384
step mainjob 240 python3 bench/mainjob_gpu.py --time-budget-s 230
step train 180 python3 bench/train_gpu.py --time-budget-s 170 --steps 16 --log-every 4
step grpo 430 python3 bench/grpo_gpu.py --time-budget-s 420 --max-completion-tokens 6000 \
    --prompts 4 --loop-prompts 4 --ratio-tokens 256 --step-prompts 2 --steps 1
# vLLM against the hf backend and the release's loop (issue #23): only where vLLM is installed
if python3 -c 'import vllm' 2>/dev/null; then
    step vllm 300 python3 bench/vllm_gpu.py --time-budget-s 290 --puzzles 8 --median-new-tokens 512
else
    echo "=== vllm: skipped, no vLLM on this machine (pip install -c constraints-vllm.txt '.[vllm]')"
fi
ls -l "$OUT"
