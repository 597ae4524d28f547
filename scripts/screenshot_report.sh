#!/usr/bin/env bash
# Render a report.html (or any page) in headless Chromium to a PNG, offline, to check how it looks.
# usage: scripts/screenshot_report.sh RUN_DIR/report.html [OUT.png] [HEIGHT]
set -euo pipefail
html=$(realpath "$1"); out=${2:-${1%.html}.png}; height=${3:-2400}
browser=$(command -v chromium || command -v chromium-browser || command -v google-chrome || true)
[ -n "$browser" ] || { echo "chromium is not installed (Debian: apt-get install chromium)" >&2; exit 1; }
profile=$(mktemp -d); trap 'rm -rf "$profile"' EXIT
"$browser" --headless --no-sandbox --disable-gpu --disable-quic --no-first-run --disable-background-networking \
  --disable-component-update --disable-sync --user-data-dir="$profile" --screenshot="$(realpath -m "$out")" \
  --window-size=1200,"$height" "file://$html" 2>/dev/null
echo "wrote $out"
