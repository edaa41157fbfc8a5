#!/usr/bin/env python3
"""Checks of our own over the chart's rendered manifests, the values files and the Terraform.

  checks.py manifests FILE...   every rendered manifest file (one per values shape)
  checks.py values FILE...      values files: no literal secret
  checks.py iam TFDIR           the IAM policy keeps every S3 object action under the prefix
  checks.py config FILE...      every node.toml passes `omnigraph-cloud config check`
                                (OMNIGRAPH_NODE_BIN or the debug build; skipped if absent)
Prints one line per finding and exits 1 if there is any.
"""

import os
import re
import subprocess
import sys
import tempfile

import yaml

problems = []


def fail(where, msg):
    problems.append(f"{where}: {msg}")


def load(path):
    with open(path, encoding="utf-8") as f:
        return [d for d in yaml.safe_load_all(f) if d]


def drain_and_grace(docs):
    for d in docs:
        if d["kind"] == "ConfigMap" and "node.toml" in d.get("data", {}):
            toml = d["data"]["node.toml"]
            drain = int(re.search(r'drain_delay = "(\d+)s"', toml).group(1))
            grace = int(re.search(r'shutdown_grace = "(\d+)s"', toml).group(1))
            yield d["metadata"]["name"], drain, grace


def check_manifests(path):
    docs = load(path)
    workloads = {(d["kind"], d["metadata"]["name"]): d for d in docs if d["kind"] in ("Deployment", "StatefulSet")}
    configs = {n: (dr, gr) for n, dr, gr in drain_and_grace(docs)}
    if not workloads:
        fail(path, "no workload rendered")
    for (kind, name), w in workloads.items():
        where = f"{path}: {kind}/{name}"
        tpl = w["spec"]["template"]
        spec = tpl["spec"]
        for c in spec["containers"]:
            for probe in ("livenessProbe", "readinessProbe"):
                if probe not in c:
                    fail(where, f"container {c['name']} has no {probe}")
            if c.get("readinessProbe", {}).get("httpGet", {}).get("path") != "/readyz":
                fail(where, "readiness must probe /readyz")
            if c.get("livenessProbe", {}).get("httpGet", {}).get("path") != "/healthz":
                fail(where, "liveness must probe /healthz")
            sc = c.get("securityContext", {})
            if not sc.get("readOnlyRootFilesystem") or sc.get("capabilities", {}).get("drop") != ["ALL"]:
                fail(where, "container must have a read-only root and drop ALL capabilities")
        if not spec.get("securityContext", {}).get("runAsNonRoot"):
            fail(where, "pod must run as non-root")
        if "checksum/config" not in tpl["metadata"].get("annotations", {}):
            fail(where, "no checksum/config annotation: config changes would not roll the pods")
        drain, grace = configs.get(name, (None, None))
        if drain is None:
            fail(where, "no ConfigMap of the same name with a node.toml")
        elif spec["terminationGracePeriodSeconds"] <= drain + grace:
            fail(where, f"terminationGracePeriodSeconds {spec['terminationGracePeriodSeconds']} "
                        f"must exceed drain_delay + shutdown_grace ({drain + grace})")
        sel = w["spec"]["selector"]["matchLabels"]
        if any(tpl["metadata"]["labels"].get(k) != v for k, v in sel.items()):
            fail(where, "selector does not match the pod template's labels")
    for d in docs:
        where = f"{path}: {d['kind']}/{d['metadata']['name']}"
        if d["kind"] == "PodDisruptionBudget":
            sel = d["spec"]["selector"]["matchLabels"]
            hits = [w for w in workloads.values() if w["spec"]["selector"]["matchLabels"] == sel]
            if len(hits) != 1:
                fail(where, f"selector matches {len(hits)} workloads, not exactly one")
        if d["kind"] == "HorizontalPodAutoscaler":
            ref = d["spec"]["scaleTargetRef"]
            target = workloads.get((ref["kind"], ref["name"]))
            if target is None:
                fail(where, f"scaleTargetRef {ref['kind']}/{ref['name']} is not rendered")
            elif "replicas" in target["spec"]:
                fail(where, "the target sets replicas too: every upgrade would reset the autoscaler")
            if d["spec"].get("behavior", {}).get("scaleDown", {}).get("stabilizationWindowSeconds", 0) < 300:
                fail(where, "scale-down must be slow (stabilization of at least 300 s)")
        if d["kind"] == "Service" and d["spec"].get("clusterIP") == "None" and d["metadata"]["name"].endswith("-gossip"):
            if not d["spec"].get("publishNotReadyAddresses"):
                fail(where, "the gossip Service must publish not-ready addresses")
    print(f"checks: {path}: {len(workloads)} workloads, {len(docs)} objects checked")


SECRET_KEY = re.compile(r"(password|passwd|secret|token|credential|private|apikey|api_key|access_?key)", re.I)
# Values that name where a secret is, never the secret itself.
REFERENCE_KEY = re.compile(r"(existingSecret|Key|File|Claim|Name|Url)$")


def check_values(path):
    def walk(node, trail):
        if isinstance(node, dict):
            for k, v in node.items():
                walk(v, trail + [str(k)])
        elif isinstance(node, list):
            for i, v in enumerate(node):
                walk(v, trail + [str(i)])
        else:
            key = next((t for t in reversed(trail) if not t.isdigit()), "")
            if SECRET_KEY.search(key) and not REFERENCE_KEY.search(key) and node not in (None, "", False, True):
                if not isinstance(node, (dict, list)):
                    fail(path, f"{'.'.join(trail)} holds a literal value; reference a Secret instead")
    before = len(problems)
    with open(path, encoding="utf-8") as f:
        walk(yaml.safe_load(f) or {}, [])
    if len(problems) == before:
        print(f"checks: {path}: no literal secret")


def flat(value):
    """Strings of an attribute, whichever HCL2 parser made it (python-hcl2 and checkov's fork
    differ: one wraps attribute values in a list, one keeps the quotes)."""
    if isinstance(value, list):
        return [s for v in value for s in flat(v)]
    return [str(value).strip('"')]


def check_iam(tfdir):
    """Every S3 object action of the pods' policy is on BUCKET/PREFIX/*, ListBucket has a
    prefix condition, and nothing grants s3:* or a whole bucket's objects."""
    import hcl2  # python-hcl2, in the deploy venv
    docs = []
    for name in sorted(os.listdir(tfdir)):
        if name.endswith(".tf"):
            with open(os.path.join(tfdir, name), encoding="utf-8") as f:
                docs.append(hcl2.load(f))
    pods = None
    for doc in docs:
        for block in doc.get("data", []):
            for name, body in block.get("aws_iam_policy_document", {}).items():
                if name.strip('"') == "pods":
                    pods = body
    if pods is None:
        fail(tfdir, 'no data "aws_iam_policy_document" "pods"')
        return
    prefix_arn = "arn:aws:s3:::${var.bucket_name}/${local.prefix}/*"
    seen_objects = seen_list = False
    for st in pods.get("statement", []):
        actions = flat(st.get("actions", []))
        resources = flat(st.get("resources", []))
        sid = (flat(st.get("sid", "?")) or ["?"])[0]
        if any(a in ("*", "s3:*") for a in actions):
            fail(tfdir, f"statement {sid} grants a wildcard action")
        # Actions on objects (keys), as opposed to the bucket itself.
        object_actions = [a for a in actions if "Object" in a or "Multipart" in a]
        if object_actions:
            seen_objects = True
            bad = [r for r in resources if r != prefix_arn]
            if bad:
                fail(tfdir, f"statement {sid}: object actions {object_actions} on {bad}, not only {prefix_arn}")
        if "s3:ListBucket" in actions:
            seen_list = True
            conds = st.get("condition", [])
            ok = any(flat(c.get("variable", "")) == ["s3:prefix"] and
                     all(v.startswith("${local.prefix}/") or v == "${local.prefix}" for v in flat(c.get("values", [])))
                     for c in conds)
            if not ok:
                fail(tfdir, f"statement {sid}: s3:ListBucket without an s3:prefix condition on the prefix")
    if not seen_objects or not seen_list:
        fail(tfdir, "the pods policy must grant object actions and ListBucket")
    print(f"checks: {tfdir}: every S3 object action is under {prefix_arn}; ListBucket is prefix-bound")


def check_config(paths):
    binary = os.environ.get("OMNIGRAPH_NODE_BIN",
                            os.path.expanduser("~/.cache/omnigraph-cloud/target/debug/omnigraph-cloud"))
    if not os.access(binary, os.X_OK):
        if os.environ.get("CI") == "true":
            fail(binary, "no node binary to check the rendered configuration with")
        print(f"checks: SKIP config check: no node binary at {binary}")
        return
    env = dict(os.environ, OMNIGRAPH_CLOUD_CLUSTER__ADVERTISE="10.0.0.5:8080",
               OMNIGRAPH_CLOUD_CLUSTER__GOSSIP_ADVERTISE="10.0.0.5:7946", OMNIGRAPH_CLOUD_NODE__ID="pod-0")
    count = 0
    for path in paths:
        for d in load(path):
            if d["kind"] == "ConfigMap" and "node.toml" in d.get("data", {}):
                with tempfile.NamedTemporaryFile("w", suffix=".toml", delete=False) as f:
                    f.write(d["data"]["node.toml"])
                r = subprocess.run([binary, "config", "check", f.name], capture_output=True, text=True, env=env)
                os.unlink(f.name)
                count += 1
                if r.returncode != 0:
                    fail(f"{path}: {d['metadata']['name']}", f"config check: {r.stderr.strip()[-500:]}")
    print(f"checks: {count} rendered node.toml files passed `omnigraph-cloud config check`")


def main():
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "manifests":
        for p in args:
            check_manifests(p)
    elif cmd == "values":
        for p in args:
            check_values(p)
    elif cmd == "iam":
        check_iam(args[0])
    elif cmd == "config":
        check_config(args)
    for p in problems:
        print(f"checks: FAIL {p}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
