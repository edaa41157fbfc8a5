# Sourced by scripts/run.sh and scripts/test.sh: installs the build's prerequisites when
# missing (protoc for Lance's build, mold as a fast linker) and sets up one shared target
# directory outside the clone.

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

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/omnigraph-cloud/target}"
if command -v mold >/dev/null; then
  export RUSTFLAGS="${RUSTFLAGS:--C link-arg=-fuse-ld=mold}"
fi
