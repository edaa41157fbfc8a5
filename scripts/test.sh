#!/usr/bin/env bash
# Runs the whole test suite on a fresh machine: installs what the build and the tests need
# when it is missing (protoc and mold via scripts/env.sh, curl and jq for the README
# walkthrough, iproute2 for the partition test, moto and schemathesis in virtual
# environments, Chromium and playwright-core for the console test, the deployment linters in
# deploy/validate.sh's own environment), then runs
# the dependency guards and the tests.
set -euo pipefail
cd "$(dirname "$0")/.."

source scripts/env.sh

# The README walkthrough's tools: a test runs it as written. `ip` (iproute2) makes the
# network namespaces of the partition test (as root; skipped elsewhere unless CI=true).
install_missing curl:curl jq:jq ip:iproute2

# A real S3-compatible server for the S3 tests: moto in a virtual environment outside the
# clone. The tests start it themselves (serially serving, see scripts/moto_serial.py).
export OMNIGRAPH_MOTO_VENV="${OMNIGRAPH_MOTO_VENV:-$HOME/.cache/omnigraph-cloud/moto-venv}"
if ! "$OMNIGRAPH_MOTO_VENV/bin/python" -c "import moto" 2>/dev/null; then
  echo "installing moto into $OMNIGRAPH_MOTO_VENV"
  python3 -m venv "$OMNIGRAPH_MOTO_VENV"
  "$OMNIGRAPH_MOTO_VENV/bin/pip" install -q 'moto[s3]==5.2.5' flask flask-cors
fi
export OMNIGRAPH_TEST_S3=require

# API fuzzing (schemathesis) against a live node, in a virtual environment outside the clone.
SCHEMATHESIS_VENV="${OMNIGRAPH_SCHEMATHESIS_VENV:-$HOME/.cache/omnigraph-cloud/schemathesis-venv}"
if ! "$SCHEMATHESIS_VENV/bin/st" --version 2>/dev/null | grep -q '4.32.5'; then
  echo "installing schemathesis into $SCHEMATHESIS_VENV"
  python3 -m venv "$SCHEMATHESIS_VENV"
  "$SCHEMATHESIS_VENV/bin/pip" install -q 'schemathesis==4.32.5'
fi
export OMNIGRAPH_SCHEMATHESIS="$SCHEMATHESIS_VENV/bin/st"
export OMNIGRAPH_SCHEMATHESIS_CONFIG="$PWD/scripts/schemathesis.toml"
export OMNIGRAPH_TEST_FUZZ=require
# The operator console in a real browser: Debian's Chromium, driven by playwright-core from
# npm (installed outside the clone). The screenshot the test takes is kept in the artifacts.
install_missing chromium:chromium node:nodejs npm:npm
export OMNIGRAPH_PLAYWRIGHT="${OMNIGRAPH_PLAYWRIGHT:-$HOME/.cache/omnigraph-cloud/playwright}"
if [ ! -d "$OMNIGRAPH_PLAYWRIGHT/node_modules/playwright-core" ]; then
  echo "installing playwright-core into $OMNIGRAPH_PLAYWRIGHT"
  mkdir -p "$OMNIGRAPH_PLAYWRIGHT"
  (cd "$OMNIGRAPH_PLAYWRIGHT" && { [ -f package.json ] || echo '{"private": true}' > package.json; } \
    && npm install --silent --no-audit --no-fund playwright-core@1.64.1)
fi
export OMNIGRAPH_TEST_BROWSER=require
export OMNIGRAPH_ARTIFACTS="${OMNIGRAPH_ARTIFACTS:-$CARGO_TARGET_DIR/test-artifacts}"

# Paths the tests read at run time (not baked in at compile time: the target directory is
# shared between clones).
export OMNIGRAPH_MOTO_SCRIPT="$PWD/scripts/moto_serial.py"

# Parallel tests each run engines; Lance's default 100 MB DataFusion pool is too small.
export LANCE_MEM_POOL_SIZE="${LANCE_MEM_POOL_SIZE:-1073741824}"
export RUST_LOG="${RUST_LOG:-warn}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

./scripts/check-deps.sh

# A chaos build of the node (docs/chaos.md): the engine's failpoints compiled in, for the
# test that aborts a writer between commit phases. It rebuilds the engine and our crates, not
# Lance; the normal build below puts the normal binary back in place.
cargo build --locked -p omnigraph-cloud --features chaos
export OMNIGRAPH_CHAOS_NODE_BIN="$CARGO_TARGET_DIR/debug/omnigraph-cloud-chaos-build"
cp "$CARGO_TARGET_DIR/debug/omnigraph-cloud" "$OMNIGRAPH_CHAOS_NODE_BIN"
export OMNIGRAPH_TEST_CHAOS_BUILD=require

if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --locked --no-fail-fast "$@"
else
  cargo test --workspace --locked --all-targets "$@"
fi

# The deployment packaging (docs/deploy.md): the Dockerfile, chart and Terraform validated
# offline, then the chart's rendered configuration run as a 3-node cluster plus a worker
# against moto, with the binary the tests built.
export OMNIGRAPH_NODE_BIN="$CARGO_TARGET_DIR/debug/omnigraph-cloud"
deploy/validate.sh
"${OMNIGRAPH_DEPLOY_VENV:-$HOME/.cache/omnigraph-cloud/deploy-venv}/bin/python" deploy/smoke.py

# The README's other command builds the node: it must reuse this build (docs/benchmarks.md,
# "Build profiles").
./scripts/check-one-build.sh
