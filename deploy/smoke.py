#!/usr/bin/env python3
"""Runs the Helm chart's rendered workloads as real processes on loopback, against moto.

The chart is rendered with values-managed.yaml plus deploy/smoke/values-smoke.yaml. Each
replica of each workload runs the real binary with exactly the rendered node.toml, args and
env, except for these substitutions:
  - a pod's IP (and the wildcard address its listeners bind, which in a pod is that IP)
    becomes 127.0.0.N, one per pod from 127.0.0.2;
  - the seed is the chart's cluster.seedsOverride value (set in values-smoke.yaml);
  - each volume's mount path becomes a temporary directory;
  - each referenced Secret becomes test content (a fresh cluster secret, moto's test keys).
Then it sends the upstream CLI's request shapes over HTTP, writes to different nodes, checks
the answers, SIGTERMs every process it started (by PID) and checks that each exits cleanly.

  python3 deploy/smoke.py           (uses the deploy venv for helm-python-sdk and PyYAML)
Environment: OMNIGRAPH_NODE_BIN (default the debug build), OMNIGRAPH_MOTO_VENV.
"""

import hashlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

import yaml  # in the deploy venv (a dependency of yamllint and checkov)

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
CHART = os.path.join(HERE, "helm", "omnigraph-cloud")
CACHE = os.path.expanduser("~/.cache/omnigraph-cloud")
BIN = os.environ.get("OMNIGRAPH_NODE_BIN", os.path.join(CACHE, "target/debug/omnigraph-cloud"))
MOTO_VENV = os.environ.get("OMNIGRAPH_MOTO_VENV", os.path.join(CACHE, "moto-venv"))
BUCKET = "omnigraph-smoke"
TOKEN = "smoke-" + os.urandom(16).hex()
procs = []  # (name, Popen, log path, grace seconds)


def log(msg):
    print(f"smoke: {msg}", flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http(method, url, body=None, token=TOKEN, raw=False, timeout=60):
    data = None
    headers = {}
    if body is not None:
        data = json.dumps(body).encode()
        headers["content-type"] = "application/json"
    if token:
        headers["authorization"] = f"Bearer {token}"
    req = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            text = resp.read().decode()
            return resp.status, resp.headers, text if raw else json.loads(text or "null")
    except urllib.error.HTTPError as err:
        text = err.read().decode()
        return err.code, err.headers, text


def expect(cond, what):
    if not cond:
        raise AssertionError(what)
    log(f"ok: {what}")


def render(endpoint, public_key):
    out = subprocess.run(
        [sys.executable, os.path.join(HERE, "helmtool.py"), "template", CHART,
         "-f", os.path.join(CHART, "values-managed.yaml"),
         "-f", os.path.join(HERE, "smoke", "values-smoke.yaml"),
         "--set", f"storage.endpoint={endpoint}", "--set", f"auth.bundle.publicKey={public_key}"],
        check=True, capture_output=True, text=True).stdout
    return [d for d in yaml.safe_load_all(out) if d]


def test_secret(name, key, cluster_secret):
    """Test content for a key of a Secret the chart references."""
    if key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        return "testing"  # moto accepts any keys
    if key == "cluster-secret":
        return cluster_secret
    raise SystemExit(f"smoke: no test content for Secret {name} key {key}")


class Pod:
    def __init__(self, workload, index, ip, configmaps, root, cluster_secret):
        self.name = f"{workload['metadata']['name']}-{index}"
        self.ip = ip
        self.group = workload["metadata"]["labels"]["app.kubernetes.io/component"]
        spec = workload["spec"]["template"]["spec"]
        self.grace = spec["terminationGracePeriodSeconds"]
        (self.container,) = spec["containers"]
        self.dir = os.path.join(root, self.name)
        volumes = {v["name"]: v for v in spec["volumes"]}
        self.paths = {}  # mount path -> temporary path
        contents = {}
        for mount in self.container["volumeMounts"]:
            vol = volumes[mount["name"]]
            local = os.path.join(self.dir, "volumes", mount["name"])
            os.makedirs(local, exist_ok=True)
            self.paths[mount["mountPath"]] = (
                os.path.join(local, mount["subPath"]) if "subPath" in mount else local)
            if "configMap" in vol:
                contents[local] = configmaps[vol["configMap"]["name"]]["data"]
            elif "secret" in vol:
                # The chart mounts each Secret under a directory named for its role; the
                # only one the smoke values reference is the cluster secret.
                contents[local] = {"cluster-secret": test_secret(vol["secret"]["secretName"], "cluster-secret", cluster_secret)}
        # Written once every mount path is known: a config file names the other mounts.
        for local, files in contents.items():
            for key, content in files.items():
                with open(os.path.join(local, key), "w", encoding="utf-8") as f:
                    f.write(self.subst(content))
        self.env = self.resolve_env(cluster_secret)

    def subst(self, text):
        # One pass, longest mount first, whole path segments only: a temporary path itself
        # lies under /tmp, which is also a mount path.
        mounts = sorted(self.paths, key=len, reverse=True)
        pattern = "(?<![\\w/.-])(" + "|".join(map(re.escape, mounts)) + ")(?![\\w.-])"
        text = re.sub(pattern, lambda m: self.paths[m.group(1)], text)
        return text.replace("0.0.0.0:", f"{self.ip}:")

    def resolve_env(self, cluster_secret):
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": self.dir}
        for item in self.container.get("env", []):
            if "value" in item:
                # $(VAR) refers to an earlier variable, as the kubelet expands it.
                value = re.sub(r"\$\((\w+)\)", lambda m: env.get(m.group(1), m.group(0)), item["value"])
            else:
                ref = item["valueFrom"]
                if "fieldRef" in ref:
                    value = {"status.podIP": self.ip, "metadata.name": self.name}[ref["fieldRef"]["fieldPath"]]
                else:
                    sk = ref["secretKeyRef"]
                    value = test_secret(sk["name"], sk["key"], cluster_secret)
            env[item["name"]] = self.subst(value)
        return env

    def port(self, name):
        return next(p["containerPort"] for p in self.container["ports"] if p["name"] == name)

    def url(self, path=""):
        return f"http://{self.ip}:{self.port('http')}{path}"

    def start(self):
        args = [self.subst(a) for a in self.container["args"]]
        logf = os.path.join(self.dir, "node.log")
        out = open(logf, "w", encoding="utf-8")
        p = subprocess.Popen([BIN] + args, cwd=self.dir, env=self.env, stdout=out, stderr=subprocess.STDOUT)
        procs.append((self.name, p, logf, self.grace))
        log(f"started {self.name} (pid {p.pid}) at {self.ip}, roles group {self.group}")

    def probe(self, kind):
        get = self.container[kind]["httpGet"]
        status, _, _ = http("GET", f"http://{self.ip}:{self.port(get['port'])}{get['path']}", token=None, raw=True)
        return status


def start_moto(work):
    port = free_port()
    logf = open(os.path.join(work, "moto.log"), "w", encoding="utf-8")
    p = subprocess.Popen([os.path.join(MOTO_VENV, "bin", "python"), os.path.join(REPO, "scripts", "moto_serial.py"),
                          "127.0.0.1", str(port)], stdout=logf, stderr=subprocess.STDOUT)
    procs.append(("moto", p, logf.name, 5))
    endpoint = f"http://127.0.0.1:{port}"
    for _ in range(100):
        try:
            urllib.request.urlopen(urllib.request.Request(f"{endpoint}/{BUCKET}", method="PUT"), timeout=2)
            return endpoint
        except OSError:
            time.sleep(0.2)
    raise SystemExit("smoke: moto did not answer")


def wait_ready(pods, seconds=120):
    deadline = time.time() + seconds
    for pod in pods:
        while True:
            for name, p, logf, _ in procs:
                if p.poll() is not None:
                    raise SystemExit(f"smoke: {name} exited ({p.returncode}); log: {open(logf).read()[-3000:]}")
            try:
                if all(pod.probe(k) == 200 for k in ("startupProbe", "livenessProbe", "readinessProbe")):
                    break
            except OSError:
                pass
            if time.time() > deadline:
                raise SystemExit(f"smoke: {pod.name} not ready after {seconds}s")
            time.sleep(0.5)
        log(f"ok: {pod.name} answers its startup, liveness and readiness probes")


def exercise(serve, worker):
    a, b, c = (p.url() for p in serve)
    read = lambda f: open(os.path.join(REPO, "examples", f), encoding="utf-8").read()
    st, _, body = http("POST", f"{a}/graphs", {"graph_id": "team", "schema_source": read("team.pg")})
    expect(st == 201, f"create graph on {serve[0].name}: {st} {body}")
    st, hdr, body = http("POST", f"{b}/graphs/team/load", {"data": read("team.jsonl"), "mode": "overwrite"})
    expect(st == 200, f"load on {serve[1].name}: {st}")
    forwarded = [hdr.get("x-omnigraph-forwarded-to")]
    q = {"query": read("team.gq"), "name": "get_person", "params": {"name": "Ada"}}
    st, _, body = http("POST", f"{c}/graphs/team/query", q)
    expect(st == 200 and body["row_count"] == 1 and "Ada" in json.dumps(body["rows"]), f"query Ada on {serve[2].name}")
    st, _, body = http("GET", f"{a}/graphs/team/snapshot?branch=main")
    expect(st == 200 and sum(t["row_count"] for t in body["tables"]) > 0, "snapshot lists tables with rows")
    st, _, body = http("POST", f"{b}/graphs/team/branches", {"name": "feature"})
    expect(st == 200, f"branch create on {serve[1].name}: {st} {body}")
    mutation = {"query": "query add($name: String, $age: I32) { insert Person { name: $name, age: $age } }",
                "params": {"name": "Mina", "age": 28}, "branch": "feature"}
    st, hdr, body = http("POST", f"{c}/graphs/team/mutate", mutation)
    expect(st == 200 and body["affected_nodes"] == 1, f"mutate on branch via {serve[2].name}: {st} {body}")
    forwarded.append(hdr.get("x-omnigraph-forwarded-to"))
    st, hdr, body = http("POST", f"{a}/graphs/team/branches/merge", {"source": "feature"})
    forwarded.append(hdr.get("x-omnigraph-forwarded-to"))
    expect(st == 200 and body["outcome"] in ("fast_forward", "merged"), f"merge: {st} {body}")
    expect(any(forwarded), f"writes sent to three nodes were forwarded to the lease holder: {forwarded}")
    q["params"] = {"name": "Mina"}
    st, _, body = http("POST", f"{b}/graphs/team/query", q)
    expect(st == 200 and body["row_count"] == 1, f"the merged write is read on {serve[1].name}")
    st, _, body = http("GET", f"{c}/graphs/team/commits?branch=main")
    expect(st == 200 and len(body["commits"]) >= 2, f"commits on main: {len(body['commits'])}")
    st, _, text = http("POST", f"{a}/graphs/team/export", {}, raw=True)
    lines = [json.loads(line) for line in text.splitlines() if line.strip()]
    expect(st == 200 and any(r.get("data", {}).get("name") == "Mina" for r in lines),
           f"export: {len(lines)} records, Mina among them")
    st, _, _ = http("GET", f"{a}/graphs/team/snapshot", token="wrong-token", raw=True)
    expect(st == 401, "a wrong token is refused with 401")
    st, _, _ = http("GET", worker.url("/graphs"), raw=True)
    expect(st == 404, "the worker serves no data API (404)")
    deadline = time.time() + 30
    while True:
        st, _, body = http("GET", f"{a}/admin/cluster")
        members = body.get("members", []) if isinstance(body, dict) else []
        if len(members) >= len(serve) + 1 or time.time() > deadline:
            break
        time.sleep(1)
    expect(len(members) >= len(serve) + 1, f"gossip: {serve[0].name} sees {len(members)} members")


def stop_all():
    ok = True
    # The nodes first (they flush usage records to the store at shutdown), moto last.
    order = [x for x in procs if x[0] != "moto"] + [x for x in procs if x[0] == "moto"]
    for name, p, logf, grace in order:
        if name != "moto" and p.poll() is None:
            p.send_signal(signal.SIGTERM)
    for name, p, logf, grace in order:
        if name == "moto" and p.poll() is None:
            p.send_signal(signal.SIGTERM)
        try:
            rc = p.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            p.kill()
            rc = p.wait()
            log(f"FAIL: {name} did not exit within its {grace}s grace and was killed")
            ok = False
            continue
        if name != "moto" and rc != 0:
            log(f"FAIL: {name} exited {rc}; log: {open(logf).read()[-2000:]}")
            ok = False
        elif name != "moto":
            log(f"ok: {name} exited 0 after SIGTERM")
    return ok


def main():
    if not os.access(BIN, os.X_OK):
        raise SystemExit(f"smoke: no node binary at {BIN} (set OMNIGRAPH_NODE_BIN)")
    work = tempfile.mkdtemp(prefix="omnigraph-smoke-")
    passed = False
    try:
        endpoint = start_moto(work)
        key = os.path.join(work, "bundle-key.pem")
        pub = subprocess.run([BIN, "bundle", "keygen", "--out", key], check=True,
                             capture_output=True, text=True).stdout.strip().split()[-1]
        docs = render(endpoint, pub)
        configmaps = {d["metadata"]["name"]: d for d in docs if d["kind"] == "ConfigMap"}
        workloads = [d for d in docs if d["kind"] in ("Deployment", "StatefulSet")]
        cluster_secret = os.urandom(32).hex()
        pods, n = [], 2
        for w in sorted(workloads, key=lambda w: w["metadata"]["name"] != "omnigraph-cloud-serve"):
            for i in range(w["spec"]["replicas"]):
                pods.append(Pod(w, i, f"127.0.0.{n}", configmaps, work, cluster_secret))
                n += 1
        serve = [p for p in pods if p.group == "serve"]
        worker = next(p for p in pods if p.group == "worker")
        expect(len(serve) == 3 and serve[0].ip == "127.0.0.2", "3 serve pods from 127.0.0.2 (the seed) and a worker")
        # What a control plane would publish: one tenant with the test token, a policy for all.
        payload = {"version": 1, "serial": 1,
                   "policies": {"_default": {"cedar": "permit (principal, action, resource);"}},
                   "tenants": {"smoke": {"state": "active", "tokens": [
                       {"sha256": hashlib.sha256(TOKEN.encode()).hexdigest(), "actor": "smoke-bot", "groups": []}]}}}
        with open(os.path.join(work, "payload.json"), "w", encoding="utf-8") as f:
            json.dump(payload, f)
        pub_run = subprocess.run([BIN, "bundle", "publish", "--key", key, "--config",
                                  serve[0].paths["/etc/omnigraph/node.toml"], os.path.join(work, "payload.json")],
                                 env=serve[0].env, cwd=work, capture_output=True, text=True)
        if pub_run.returncode != 0:
            raise SystemExit(f"smoke: bundle publish failed: {pub_run.stderr}")
        log("ok: bundle with the test tenant published to the storage root")
        for pod in pods:
            pod.start()
        wait_ready(pods)
        exercise(serve, worker)
        passed = True
    finally:
        stopped = stop_all()
        if passed and stopped:
            shutil.rmtree(work, ignore_errors=True)
        else:
            log(f"logs kept in {work}")
    log("1 passed, 0 failed" if passed and stopped else "0 passed, 1 failed")
    return 0 if passed and stopped else 1


if __name__ == "__main__":
    sys.exit(main())
