#!/usr/bin/env bash
# Dependency guards, run before the tests:
# - one copy each of arrow, lance, datafusion and object_store (two copies double the build
#   and make engine types incompatible with ours);
# - the layering of DESIGN.md: `config` and `actors` never depend directly on axum, tower-http
#   or the http crate.
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

for crate in omnigraph-cloud-config omnigraph-cloud-actors; do
  if cargo tree -p "$crate" --locked -e normal --depth 1 --prefix none 2>/dev/null | grep -qE '^(axum|tower-http|omnigraph-cloud-http) v'; then
    echo "error: $crate depends on axum or the http layer (see DESIGN.md, Layout)"
    exit 1
  fi
done
echo "dependency guards: ok (one arrow/lance/datafusion/object_store; config and actors free of HTTP)"
