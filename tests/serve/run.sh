#!/usr/bin/env bash
# Runs one Node.js test script of bwla serve (ctest calls this; see CMakeLists.txt).
#   tests/serve/run.sh setup WORK            copy the scripts to WORK, npm ci the official
#                                            openai client there (from package-lock.json)
#   tests/serve/run.sh SCRIPT WORK [K=V...]  node WORK/SCRIPT with the K=V environment
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
what=$1 work=$2
shift 2
if [ "$what" = setup ]; then
  command -v node >/dev/null || { echo "node (Node.js) is not installed: scripts/bootstrap.sh installs it" >&2; exit 1; }
  command -v npm >/dev/null || { echo "npm is not installed: scripts/bootstrap.sh installs it" >&2; exit 1; }
  mkdir -p "$work"
  cp "$here"/package.json "$here"/package-lock.json "$here"/*.mjs "$work"/
  # npm ci only when the installed client is not the locked one.
  if ! cmp -s "$here/package-lock.json" "$work/node_modules/.package-lock.json.bwla" 2>/dev/null; then
    (cd "$work" && npm ci --no-audit --no-fund --loglevel=error)
    cp "$here/package-lock.json" "$work/node_modules/.package-lock.json.bwla"
  fi
  exit 0
fi
[ -d "$work/node_modules/openai" ] || { echo "$work: run 'tests/serve/run.sh setup $work' first" >&2; exit 1; }
cp "$here"/*.mjs "$work"/  # the scripts as in the source tree
exec env "$@" node "$work/$what"
