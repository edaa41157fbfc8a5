#!/usr/bin/env python3
"""Structure guards for every crate of the workspace, run by scripts/check-deps.sh.

1. No file under `<crate>/src/` is longer than 500 lines before its `#[cfg(test)]` module.
2. No import cycle between the modules of a crate. Modules are compared with their siblings:
   an import from `a/b/c.rs` of `crate::a::d::X` is an edge `b -> d` among the children of `a`.
   Imports of an ancestor or a descendant are containment, not layering, and are not edges.
3. The crates that serve requests (`cluster`, `actors`, `http`) never name the control
   plane's API (`/control/`): the control plane is never on the request path. They cannot
   call its code either, which lives in `runtime`, above them.

Usage: scripts/check_structure.py [crate-dir ...]   (default: every crate of the workspace)
"""

import re
import sys
from collections import defaultdict
from pathlib import Path

MAX_LINES = 500
ROOT = Path(__file__).resolve().parent.parent
CRATES = ["config", "cluster", "actors", "http", "runtime", "chaos-tests"]
DATA_PLANE = ["cluster", "actors", "http"]


def module_path(src: Path, file: Path) -> tuple:
    """`src/a/b.rs` and `src/a/b/mod.rs` are module `(a, b)`; `lib.rs`/`main.rs` are `()`."""
    parts = list(file.relative_to(src).with_suffix("").parts)
    if parts[-1] == "mod" or (len(parts) == 1 and parts[0] in ("lib", "main")):
        parts = parts[:-1]
    return tuple(parts)


def strip_comments(text: str) -> str:
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    text = re.sub(r"//[^\n]*", "", text)
    # String literals can hold `crate::`-looking text (docs, messages).
    return re.sub(r'"(?:\\.|[^"\\])*"', '""', text)


def code_before_tests(text: str) -> str:
    marker = re.search(r"^\s*#\[cfg\(test\)\]\s*\n\s*mod ", text, flags=re.M)
    return text[: marker.start()] if marker else text


def expand_use(tree: str) -> list:
    """Flattens `a::{b, c::{d, e}}` into `a::b`, `a::c::d`, `a::c::e`."""
    tree = re.sub(r"\s+as\s+\w+", "", tree)
    tree = re.sub(r"\s+", "", tree)
    brace = tree.find("{")
    if brace < 0:
        return [tree]
    prefix, inner = tree[:brace], tree[brace + 1 : tree.rfind("}")]
    items, depth, current = [], 0, ""
    for ch in inner:
        if ch == "," and depth == 0:
            items.append(current)
            current = ""
            continue
        depth += ch == "{"
        depth -= ch == "}"
        current += ch
    items.append(current)
    out = []
    for item in filter(None, items):
        out.extend(prefix + path for path in expand_use(item))
    return out


def referenced_paths(code: str) -> list:
    paths = []
    for match in re.finditer(r"\buse\s+([^;]+);", code):
        paths.extend(expand_use(match.group(1)))
    # Paths written inline (`crate::metrics::inc()`, `super::lease::Lease`).
    paths.extend(re.findall(r"(?<![\w:])((?:crate|super|self)(?:::\w+)+)", code))
    return paths


def resolve(path: str, here: tuple, modules: set):
    """The module a `crate::`/`super::` path points into, or None for other crates."""
    segments = [s for s in path.split("::") if s and s not in ("*",)]
    if not segments:
        return None
    # `super` is relative to the module that contains this file's module.
    base = list(here)
    if segments[0] == "crate":
        base, segments = [], segments[1:]
    elif segments[0] in ("super", "self"):
        while segments and segments[0] in ("super", "self"):
            if segments[0] == "super":
                if not base:
                    return None
                base.pop()
            segments = segments[1:]
    else:
        return None
    target = tuple(base)
    for segment in segments:
        if target + (segment,) in modules:
            target = target + (segment,)
        else:
            break
    return target


def sibling_edge(source: tuple, target: tuple):
    """The edge between the children of the two modules' lowest common ancestor."""
    common = 0
    while common < min(len(source), len(target)) and source[common] == target[common]:
        common += 1
    if common == len(source) or common == len(target):
        return None  # ancestor or descendant: containment
    return source[: common + 1], target[: common + 1]


def tangles(edges: dict) -> list:
    """The strongly connected components of more than one module (Tarjan)."""
    index, low, on_stack, stack, found = {}, {}, set(), [], []

    def visit(node):
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in edges.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def check_crate(crate: Path) -> list:
    src = crate / "src"
    files = sorted(p for p in src.rglob("*.rs") if "bin" not in p.relative_to(src).parts)
    modules = {module_path(src, f): f for f in files}
    problems = []
    edges = defaultdict(set)
    for module, file in modules.items():
        text = file.read_text()
        body = code_before_tests(text)
        lines = body.count("\n")
        if lines > MAX_LINES:
            problems.append(
                f"{file.relative_to(ROOT)}: {lines} lines before its tests (at most {MAX_LINES})"
            )
        for path in referenced_paths(strip_comments(body)):
            target = resolve(path, module, set(modules))
            if target is None:
                continue
            edge = sibling_edge(module, target)
            if edge:
                edges[edge[0]].add(edge[1])
    if crate.name in DATA_PLANE:
        for module, file in modules.items():
            code = [
                line
                for line in code_before_tests(file.read_text()).splitlines()
                if not line.lstrip().startswith("//")
            ]
            if any("/control/" in line for line in code):
                problems.append(
                    f"{file.relative_to(ROOT)}: names the control plane's API; the data plane "
                    "must never call it (docs/control-plane.md)"
                )
    for component in tangles(edges):
        names = ", ".join("/".join(m) for m in component)
        problems.append(f"{crate.name}: modules that import each other in a cycle: {names}")
    return problems


def main() -> int:
    crates = [Path(arg) for arg in sys.argv[1:]] or [
        ROOT / c for c in CRATES if (ROOT / c / "src").is_dir()
    ]
    problems = []
    for crate in crates:
        problems.extend(check_crate(crate.resolve()))
    for problem in problems:
        print(f"error: {problem}")
    if not problems:
        print(
            f"structure guards: ok (files under {MAX_LINES} lines before tests, no module "
            "cycles, no call of the control plane from the data plane)"
        )
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
