#!/usr/bin/env bash
# Runs a single node on local storage (./omnigraph-data, 127.0.0.1:8080) on a fresh machine:
# installs what the build needs when missing, builds, and serves. Extra arguments go to
# `omnigraph-cloud serve` (e.g. --config node.toml).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
source "$root/scripts/env.sh"
exec cargo run --locked --manifest-path "$root/Cargo.toml" -p omnigraph-cloud -- serve "$@"
