#!/usr/bin/env python3
"""Check that the library's stages depend one way (src/lib.rs gives the order) and that no two
files import each other in a loop. Reads the `crate::` and `super::` paths of every file under
src/ (the CLI in src/bin/ sits on top and is not checked); unit tests at the end of a file are
left out, since `super::` means the file itself there. Prints what each stage uses; exits 1 on a
stage used out of order or an import loop. Run by `./build.sh lint`."""

import pathlib
import re
import sys

SRC = pathlib.Path(__file__).resolve().parent.parent / "src"
# The stage order of src/lib.rs's doc; a stage may use only stages of a lower rank.
RANK = {"class": 0, "error": 0, "files": 0, "lib": 0, "image": 1, "study": 2, "disc": 3,
        "manifest": 4, "phantom": 4, "model": 5, "eval": 6, "adapt": 7, "train": 8, "web": 9}
# The root re-exports of lib.rs, by the module that defines them.
REEXPORT = {"Class": "class", "Level": "class", "Error": "error", "Result": "error",
            "Point": "disc/geometry", "Roi": "disc/roi", "RoiParams": "disc/roi",
            "Slice": "image/slice", "Classifier": "model/inference",
            "Prediction": "model/inference", "VERSION": "lib"}


def module_of(path):
    """`disc/roi`, `disc` (for disc/mod.rs), `class`, `lib`."""
    rel = path.relative_to(SRC).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "mod":
        parts.pop()
    return "/".join(parts)


def stage(module):
    return module.split("/")[0]


def code(path):
    text = path.read_text()
    cut = re.search(r"#\[cfg\(test\)\]\s*mod tests", text)
    text = text[: cut.start()] if cut else text
    return re.sub(r"//[^\n]*", "", text)


def target(module_names, base, segments):
    """The longest known module that `base/segments...` names (a file, else its folder)."""
    for n in range(len(segments), -1, -1):
        name = "/".join([p for p in [base] if p] + segments[:n])
        if name in module_names:
            return name
    return None


files = [p for p in SRC.rglob("*.rs") if "bin" not in p.relative_to(SRC).parts]
modules = {module_of(p): p for p in files}
edges = {m: set() for m in modules}
path_re = re.compile(r"\b(crate|super)((?:::[A-Za-z_][A-Za-z0-9_]*)+)")
group_re = re.compile(r"\bcrate::\{([^}]*)\}")

for m, p in modules.items():
    text = code(p)
    is_folder = p.name == "mod.rs"
    parent = m if is_folder else "/".join(m.split("/")[:-1])
    refs = []
    for kind, rest in path_re.findall(text):
        segs = rest.split("::")[1:]
        if kind == "crate":
            if segs[0] in REEXPORT:
                refs.append(REEXPORT[segs[0]])
            else:
                refs.append(target(modules, "", segs))
        else:
            base = "/".join(parent.split("/")[:-1]) if is_folder else parent
            refs.append(target(modules, base, segs) or base or "lib")
    for group in group_re.findall(text):
        for name in re.findall(r"[A-Za-z_][A-Za-z0-9_]*", group):
            refs.append(REEXPORT.get(name) or target(modules, "", [name]))
    # A folder's mod.rs uses its children through paths that start with the child's name.
    if is_folder:
        for child in modules:
            if child.startswith(m + "/") and child.count("/") == m.count("/") + 1:
                leaf = child.split("/")[-1]
                if re.search(rf"(?<![:\w]){leaf}::", text):
                    refs.append(child)
    for r in refs:
        if r and r != m:
            edges[m].add(r)

bad = []
uses = {}
for m, targets in edges.items():
    for t in targets:
        a, b = stage(m), stage(t)
        if a == b:
            continue
        uses.setdefault(a, set()).add(b)
        # The shared vocabulary (rank 0) may use itself; the loop check below keeps it acyclic.
        if RANK[b] > RANK[a] or (RANK[b] == RANK[a] and RANK[a] > 0):
            bad.append(f"{m} uses {t}: stage {a} ({RANK[a]}) may not use {b} ({RANK[b]})")

for a in sorted(uses, key=lambda s: (RANK[s], s)):
    print(f"{a:<9} ({RANK[a]}) uses {', '.join(sorted(uses[a], key=lambda s: (RANK[s], s)))}")

# Import loops between files, stage or not (depth-first search for a back edge).
state, stack = {}, []


def visit(m):
    state[m] = "open"
    stack.append(m)
    for t in sorted(edges[m]):
        if state.get(t) == "open":
            bad.append("import loop: " + " -> ".join(stack[stack.index(t):] + [t]))
        elif t not in state:
            visit(t)
    stack.pop()
    state[m] = "done"


for m in sorted(edges):
    if m not in state:
        visit(m)

print(f"{len(modules)} files, {sum(map(len, edges.values()))} imports between them")
if bad:
    print("\n".join(bad), file=sys.stderr)
    sys.exit(1)
print("stages depend one way; no import loop")
