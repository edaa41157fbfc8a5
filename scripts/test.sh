#!/usr/bin/env bash
# Runs the whole test suite on a fresh machine: installs what the build and the tests need
# when it is missing (protoc for Lance's build, mold as a fast linker), then runs the tests.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
command -v protoc >/dev/null || missing+=(protobuf-compiler)
command -v mold >/dev/null || missing+=(mold)
if ((${#missing[@]})); then
  sudo=""
  [ "$(id -u)" = 0 ] || sudo=sudo
  echo "installing: ${missing[*]}"
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# A real S3-compatible server for the S3 tests: moto in a virtual environment outside the
# clone. The tests start it themselves (serially serving, see scripts/moto_serial.py).
export OMNIGRAPH_MOTO_VENV="${OMNIGRAPH_MOTO_VENV:-$HOME/.cache/omnigraph-cloud/moto-venv}"
if ! "$OMNIGRAPH_MOTO_VENV/bin/python" -c "import moto" 2>/dev/null; then
  echo "installing moto into $OMNIGRAPH_MOTO_VENV"
  python3 -m venv "$OMNIGRAPH_MOTO_VENV"
  "$OMNIGRAPH_MOTO_VENV/bin/pip" install -q 'moto[s3]==5.2.5' flask flask-cors
fi
export OMNIGRAPH_TEST_S3=require

# One target directory outside the clone, reused between runs.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/omnigraph-cloud/target}"
if command -v mold >/dev/null; then
  export RUSTFLAGS="${RUSTFLAGS:--C link-arg=-fuse-ld=mold}"
fi
# Parallel tests each run engines; Lance's default 100 MB DataFusion pool is too small.
export LANCE_MEM_POOL_SIZE="${LANCE_MEM_POOL_SIZE:-1073741824}"
export RUST_LOG="${RUST_LOG:-warn}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

./scripts/check-deps.sh

if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --locked --no-fail-fast "$@"
else
  cargo test --workspace --locked --all-targets "$@"
fi
