#!/usr/bin/env bash
# Inference benchmark: endplate (tract) and onnxruntime on the same ResNet18 and the same discs,
# in one run. Needs Python with onnxruntime and numpy (pip install onnxruntime numpy).
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-target/bench}
discs=${DISCS:-64}
cargo run --quiet --release --example bench_inference -- "$out" "$discs"
python3 bench/onnxruntime_bench.py "$out"
python3 - "$out" <<'PY'
import json, sys, os
out = sys.argv[1]
t = json.load(open(os.path.join(out, "tract.json")))
o = json.load(open(os.path.join(out, "onnxruntime.json")))
key = lambda r: (r["threads"], r["batch"])
om = {key(r): r["ms_per_disc"] for r in o}
print("\nthreads batch  tract ms/disc  onnxruntime ms/disc  tract/ort")
for r in t:
    k = key(r)
    if k in om:
        print(f"{k[0]:>7} {k[1]:>5}  {r['ms_per_disc']:13.2f}  {om[k]:19.2f}  {r['ms_per_disc'] / om[k]:9.2f}")
PY
