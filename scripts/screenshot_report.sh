#!/usr/bin/env bash
# Render an HTML report in headless Chromium (Debian's `chromium` package) and save a PNG.
#   scripts/screenshot_report.sh demo-out/report.html demo-out/report.png
set -euo pipefail
page=$(realpath "$1"); out=${2:-${1%.html}.png}
profile=$(mktemp -d)
chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
  --disable-background-networking --disable-component-update --disable-sync \
  --user-data-dir="$profile" --hide-scrollbars --window-size=1200,3800 \
  --screenshot="$(realpath -m "$out")" "file://$page" 2>/dev/null
rm -rf "$profile"
echo "$out"
