# Sourced by scripts/run.sh and scripts/test.sh: installs the build's prerequisites when
# missing (protoc for Lance's build, mold as a fast linker) and sets up one shared target
# directory outside the clone.

# install_missing COMMAND:PACKAGE...: installs with apt the packages whose command is missing.
install_missing() {
  local missing=() pair sudo=""
  for pair in "$@"; do
    command -v "${pair%%:*}" >/dev/null || missing+=("${pair#*:}")
  done
  ((${#missing[@]})) || return 0
  [ "$(id -u)" = 0 ] || sudo=sudo
  echo "installing: ${missing[*]}"
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
}

install_missing protoc:protobuf-compiler mold:mold

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/omnigraph-cloud/target}"
if command -v mold >/dev/null; then
  export RUSTFLAGS="${RUSTFLAGS:--C link-arg=-fuse-ld=mold}"
fi
