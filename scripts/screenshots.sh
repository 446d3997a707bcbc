#!/usr/bin/env bash
# Regenerates the explorer's screenshot gallery (docs/screenshots/, shown in docs/explorer.md)
# from a fresh production build, at desktop and phone sizes.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh
scripts/setup.sh all
scripts/build-web.sh dist
node tests/e2e/screenshots.mjs dist docs/screenshots
