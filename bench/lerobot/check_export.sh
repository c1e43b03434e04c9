#!/usr/bin/env bash
# Export recordings with aura_ros, read the dataset back with LeRobot's own loader, compare value
# by value with the recordings (issue 30). Needs the project's venv (make setup) and the LeRobot
# env (bench/lerobot/setup_env.sh).
#
#   bench/lerobot/check_export.sh OUT PARAMS BAG_OR_DIR...
#   e.g. bench/lerobot/check_export.sh /tmp/so101_export config/sim_mujoco.yaml \
#            bench/results/tfr_work/mujoco/bags/chunk_00
set -euo pipefail
here="$(cd "$(dirname "$0")/../.." && pwd)"
out="$1"; params="$2"; shift 2
venv="${VENV:-$here/.venv}"
lerobot="${LEROBOT_VENV:-$here/.lerobot-venv}"
export AMENT_PREFIX_PATH="${AMENT_PREFIX_PATH:-$venv}" PYTHONPATH="$here${PYTHONPATH:+:$PYTHONPATH}"
"$venv/bin/python" -m aura_ros.train export-lerobot "$@" --params "$params" --out "$out/dataset"
"$venv/bin/python" "$here/bench/lerobot/export_expect.py" "$@" --params "$params" \
  --expect "$out/expect.safetensors"
HF_HUB_OFFLINE=1 "$lerobot/bin/python" "$here/bench/lerobot/check_export.py" "$out/dataset" \
  "$out/expect.safetensors" 2> "$out/lerobot.log"
