#!/usr/bin/env bash
# The main job: install what is missing, build the explorer with the bundled models for
# production (scripts/build-web.sh), and serve it on http://127.0.0.1:8080 (Ctrl-C stops it).
# ADVLENS_PORT picks another port. For development with rebuild-on-save: see web/README.md.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh
scripts/setup.sh web
scripts/build-web.sh dist
port="${ADVLENS_PORT:-8080}"
stage "serving the explorer"
echo "the explorer is at http://127.0.0.1:$port/ (Ctrl-C stops it)" >&2
exec python3 -m http.server --bind 127.0.0.1 --directory dist "$port"
