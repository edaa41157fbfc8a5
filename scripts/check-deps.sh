#!/usr/bin/env bash
# Dependency guards, run before the tests:
# - one copy each of arrow, lance, datafusion and object_store (two copies double the build
#   and make engine types incompatible with ours);
# - the layering of DESIGN.md (config <- cluster <- actors <- http <- runtime): `config`,
#   `cluster` and `actors` never depend directly on axum, tower-http or the http crate, and
#   `cluster` knows neither actors nor the engine;
# - the structure of every crate (scripts/check_structure.py): no file over 500 lines before
#   its tests, no import cycle between the modules of a crate.
set -euo pipefail
cd "$(dirname "$0")/.."

# A package listed twice in Cargo.lock is built in two versions.
duplicates=$(grep -E '^name = "(arrow|arrow-[a-z-]+|lance|lance-[a-z-]+|datafusion|datafusion-[a-z-]+|object_store)"$' Cargo.lock |
  sort | uniq -d)
if [ -n "$duplicates" ]; then
  echo "error: more than one version of a heavy dependency in Cargo.lock:"
  echo "$duplicates"
  exit 1
fi

for crate in omnigraph-cloud-config omnigraph-cloud-cluster omnigraph-cloud-actors; do
  if cargo tree -p "$crate" --locked -e normal --depth 1 --prefix none 2>/dev/null | grep -qE '^(axum|tower-http|omnigraph-cloud-http) v'; then
    echo "error: $crate depends on axum or the http layer (see docs/architecture.md)"
    exit 1
  fi
done
if cargo tree -p omnigraph-cloud-cluster --locked -e normal --depth 1 --prefix none 2>/dev/null | grep -qE '^(omnigraph-cloud-actors|omnigraph-engine|ractor) v'; then
  echo "error: cluster depends on actors, the engine or ractor (see docs/architecture.md)"
  exit 1
fi
echo "dependency guards: ok (one arrow/lance/datafusion/object_store; config and actors free of HTTP)"

python3 scripts/check_structure.py
