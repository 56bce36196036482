#!/usr/bin/env python3
"""Refuses module cycles: in each crate, the top-level modules (the `mod`
items of lib.rs or main.rs) must depend on each other one way only.

A module depends on another when its code (not its comments or unit tests)
names `crate::other` (in a `use` or a path), or names an item the crate root
re-exports from it (`pub use other::Item;` in lib.rs, then `crate::Item`). Usage: module_cycles.py
CRATE_DIR...; prints each cycle found and exits 1 when there is one.
"""

import re
import sys
from pathlib import Path

MOD_DECL = re.compile(r"^\s*(?:pub(?:\([^)]*\))?\s+)?mod\s+([a-z_][a-z0-9_]*)\s*[;{]", re.M)
CRATE_PATH = re.compile(r"\bcrate::((?:[A-Za-z_][A-Za-z0-9_]*::)*[A-Za-z_][A-Za-z0-9_]*|\{)")
CRATE_GROUP = re.compile(r"\bcrate::\{([^}]*)\}", re.S)
REEXPORT = re.compile(r"^\s*pub\s+use\s+([a-z_][a-z0-9_]*)::(\{[^}]*\}|[A-Za-z_][A-Za-z0-9_]*)\s*;", re.M | re.S)
COMMENT = re.compile(r"//[^\n]*")


def strip_comments(text):
    """The code without comments and without its unit tests (`#[cfg(test)]`
    and everything after it: the tests close the file by convention; a
    module's `tests.rs` is left out too)."""
    text = COMMENT.sub("", text)
    return text.split("#[cfg(test)]", 1)[0]


def module_files(src, name):
    """The files of top-level module `name`: name.rs and everything under name/."""
    files = []
    single = src / f"{name}.rs"
    if single.is_file():
        files.append(single)
    folder = src / name
    if folder.is_dir():
        files.extend(sorted(folder.rglob("*.rs")))
    return [path for path in files if path.stem != "tests"]


def first_segments(text):
    """Every first segment after `crate::`, groups `crate::{a, b::c}` included."""
    found = set()
    for match in CRATE_GROUP.finditer(text):
        for part in match.group(1).split(","):
            part = part.strip()
            if part:
                found.add(re.split(r"::|\s", part, maxsplit=1)[0])
    for match in CRATE_PATH.finditer(text):
        if match.group(1) != "{":
            found.add(match.group(1).split("::", 1)[0])
    return found


def crate_graph(crate_dir):
    src = crate_dir / "src"
    root = src / "lib.rs"
    if not root.is_file():
        root = src / "main.rs"
    if not root.is_file():
        return {}
    root_text = strip_comments(root.read_text(encoding="utf-8"))
    modules = set(MOD_DECL.findall(root_text))
    owner = {}
    for match in REEXPORT.finditer(root_text):
        module, items = match.group(1), match.group(2)
        if module not in modules:
            continue
        for item in items.strip("{}").split(","):
            item = item.strip().split(" as ")[-1].strip()
            if item and item != "self":
                owner[item] = module
    graph = {}
    for module in sorted(modules):
        deps = set()
        for path in module_files(src, module):
            for first in first_segments(strip_comments(path.read_text(encoding="utf-8"))):
                target = first if first in modules else owner.get(first)
                if target and target != module:
                    deps.add(target)
        graph[module] = deps
    return graph


def cycles(graph):
    """The strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []
    counter = [0]

    def visit(node):
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def main(argv):
    failed = False
    for crate in argv[1:]:
        graph = crate_graph(Path(crate))
        for component in cycles(graph):
            failed = True
            edges = [f"{a} -> {b}" for a in component for b in sorted(graph[a]) if b in component]
            print(f"{crate}: module cycle among {', '.join(component)} ({'; '.join(edges)})", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
