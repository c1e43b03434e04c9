#!/usr/bin/env bash
# The scratch environment for LeRobot's own tools (issue 30): LeRobot needs Python >= 3.12 and
# torch < 2.12, so it cannot live in the project's venv (Python 3.11, torch 2.13.0). Used for:
# writing the authentic test fixtures with LeRobot's writer, reading our export back with its
# loader, training a small ACT and serving it through `python -m aura_ros.backbones.server
# --backend lerobot`. Not used by `make test` or `make demo`.
#
#   bench/lerobot/setup_env.sh [DIR]      # default DIR: .lerobot-venv at the repo root
#
# Cost on a fresh machine: PyPI's torch for Linux is a CUDA build; the download is several GB
# (about 10 minutes here). Re-running is cheap: pip skips what is installed.
set -euo pipefail
here="$(cd "$(dirname "$0")/../.." && pwd)"
dir="${1:-$here/.lerobot-venv}"
py="${LEROBOT_PYTHON:-}"
if [ -z "$py" ]; then
  # pyenv's shims answer to python3.12 even when it is not selected: try its folders first.
  for cand in "${PYENV_ROOT:-$HOME/.pyenv}"/versions/3.12*/bin/python3.12 python3.12; do
    if "$cand" -c 'import sys; assert sys.version_info[:2] == (3, 12)' 2>/dev/null; then
      py="$cand"; break
    fi
  done
fi
if [ -z "$py" ]; then
  echo "setup_env.sh: no Python 3.12 found; set LEROBOT_PYTHON=/path/to/python3.12" >&2
  exit 1
fi
[ -x "$dir/bin/python" ] || "$py" -m venv "$dir"
# The machine's pip constraint file (if any) caps torch for the 3.11 venv; LeRobot's own pin
# (torch < 2.12) is what matters here, so that cap is not applied.
PIP_CONSTRAINT= "$dir/bin/pip" install --quiet --upgrade pip
PIP_CONSTRAINT= "$dir/bin/pip" install "lerobot[dataset,training]==0.6.1" "torch<2.12" "grpcio==1.85.1" \
  "grpcio-health-checking==1.85.1" "protobuf==7.36.2" "safetensors" "pyyaml"
"$dir/bin/python" -c "import lerobot, torch; print('lerobot', lerobot.__version__, 'torch', torch.__version__)"
