#!/usr/bin/env python3
"""`helm template` and `helm lint` for this chart, through helm-python-sdk.

helm-python-sdk binds Helm v4's Go SDK (libhelm_c) with ctypes: the same template engine,
values coalescing and values.schema.json validation as the helm binary, which these machines
do not have. Used by validate.sh and smoke.py.

  helmtool.py template CHART [-f VALUES]... [--set K=V]... [--name N] [--namespace NS]
  helmtool.py lint CHART [-f VALUES]... [--set K=V]... [--kube-version v1.31.0]
"""

import argparse
import sys

import helm_python as helm


def deep_merge(base, top):
    """Later values files win, key by key, as with `helm -f a -f b`."""
    for key, value in top.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            deep_merge(base[key], value)
        else:
            base[key] = value
    return base


def load_values(files, sets):
    values = {}
    for path in files:
        with open(path, encoding="utf-8") as f:
            deep_merge(values, helm.values_from_yaml(f.read()) or {})
    for item in sets:
        deep_merge(values, helm.parse_set_string(item))
    return values


def template(chart_dir, values, name, namespace):
    chart = helm.Chart.load(chart_dir)
    # render() coalesces values but, like `helm template`, must also check the schema.
    chart.validate_schema(chart.merge_values(values))
    rendered = chart.render(values, name=name, namespace=namespace, is_install=True)
    docs = []
    for path in sorted(rendered):
        body = rendered[path].strip()
        if path.endswith("NOTES.txt") or not body:
            continue
        docs.append(f"---\n# Source: {path}\n{body}\n")
    return "".join(docs)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("command", choices=["template", "lint"])
    ap.add_argument("chart")
    ap.add_argument("-f", "--values", action="append", default=[])
    ap.add_argument("--set", action="append", default=[])
    ap.add_argument("--name", default="omnigraph-cloud")
    ap.add_argument("--namespace", default="omnigraph")
    ap.add_argument("--kube-version", default="v1.31.0")
    args = ap.parse_args()
    values = load_values(args.values, args.set)
    try:
        if args.command == "template":
            sys.stdout.write(template(args.chart, values, args.name, args.namespace))
            return 0
        report = helm.lint(args.chart, values, strict=True, namespace=args.namespace,
                           kube_version=args.kube_version)
    except helm.HelmError as err:
        print(f"helm {args.command}: {err}", file=sys.stderr)
        return 1
    failed = False
    for msg in report.get("messages") or []:
        level = {1: "INFO", 2: "WARNING", 3: "ERROR"}.get(msg.get("severity"), "UNKNOWN")
        print(f"[{level}] {msg.get('path')}: {msg.get('error')}")
        failed |= msg.get("severity", 0) >= 2
    for err in report.get("errors") or []:
        print(f"[ERROR] {err}")
        failed = True
    print(f"helm lint: {report.get('total_charts_linted', 0)} chart(s) linted, "
          f"{'failed' if failed else 'ok'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
