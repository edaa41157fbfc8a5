#!/usr/bin/env bash
# Checks that the node's build reuses the tests' build: after `scripts/test.sh` has built the
# tests, building the `omnigraph-cloud` binary must compile no Lance, DataFusion or Arrow crate
# (a feature enabled only for tests, such as a dev-dependency's, would make it build them all
# again). Run by scripts/test.sh after the tests.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh

rebuilt=$(cargo build --locked -p omnigraph-cloud --message-format=json 2>/dev/null | python3 -c '
import json, sys
heavy = ("lance", "arrow", "datafusion")
for line in sys.stdin:
    try:
        message = json.loads(line)
    except ValueError:
        continue
    if message.get("reason") == "compiler-artifact" and not message["fresh"]:
        name = message["target"]["name"]
        if name.startswith(heavy):
            print(name)
')
if [ -n "$rebuilt" ]; then
  echo "error: building the node after the tests compiled heavy crates again (features differ):"
  echo "$rebuilt" | sort -u | head -20
  exit 1
fi
echo "one build: ok (the node's build reuses the tests' Lance, DataFusion and Arrow)"
