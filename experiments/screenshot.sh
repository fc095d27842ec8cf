#!/usr/bin/env bash
# Screenshot a local HTML file with headless Chromium (Debian package `chromium`).
#
# Why: jal writes a static HTML contact sheet (index.html with <img> thumbnails);
# this opens it in a real browser and saves what a person would see as a PNG.
#
# Usage: experiments/screenshot.sh PAGE.html OUT.png [WIDTHxHEIGHT]
# Needs: apt-get install -y chromium   (tested: 156.0.8078.108-1~deb12u1, bookworm)
set -euo pipefail

if [ $# -lt 2 ]; then
    echo "usage: $0 PAGE.html OUT.png [WIDTHxHEIGHT]" >&2
    exit 2
fi
page=$(realpath "$1")
out=$(realpath -m "$2")
size=${3:-1200x900}
[ -f "$page" ] || { echo "no such file: $page" >&2; exit 2; }
browser=$(command -v chromium || command -v chromium-browser || true)
[ -n "$browser" ] || { echo "chromium not found (apt-get install -y chromium)" >&2; exit 3; }

# A throwaway profile keeps runs independent; as root Chromium needs --no-sandbox.
profile=$(mktemp -d)
trap 'rm -rf "$profile"' EXIT
rm -f "$out"
"$browser" --headless --disable-gpu --no-sandbox --hide-scrollbars \
    --user-data-dir="$profile" --allow-file-access-from-files \
    --virtual-time-budget=5000 \
    --screenshot="$out" --window-size="${size/x/,}" "file://$page" \
    >/dev/null 2>"$profile/stderr" || { cat "$profile/stderr" >&2; exit 1; }
[ -s "$out" ] || { cat "$profile/stderr" >&2; echo "no screenshot written" >&2; exit 1; }
echo "$out"
