#!/usr/bin/env bash
# Installs the npm dependencies of the runner of the original in-process node.js plugins
# (include/meccano/scripts/node: mysql2 and @aws-sdk/client-sns, exact versions from package-lock.json),
# once per change of the lock file. `make test` runs it after the venv; the image runs `npm ci` itself
# (docker/Dockerfile). Without npm it says so and stops: plain node.js scripts run without these.
set -euo pipefail
cd "$(dirname "$0")/../include/meccano/scripts/node"
stamp=node_modules/.package-lock.sha
want=$(sha256sum package-lock.json | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  echo "node runner: npm dependencies up to date"
  exit 0
fi
if ! command -v npm >/dev/null; then
  echo "node runner: npm is not installed; the original in-process node.js plugins cannot run until" \
       "scripts/install-node-deps.sh runs with npm (apt-get install npm)" >&2
  exit 0
fi
npm ci --omit=dev --no-audit --no-fund --loglevel=error
echo "$want" > "$stamp"
echo "node runner: npm dependencies installed ($(ls node_modules | wc -l) top-level packages)"
