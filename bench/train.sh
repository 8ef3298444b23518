#!/usr/bin/env bash
# Training-throughput benchmark: burn-flex (examples/bench_train.rs) and PyTorch CPU
# (bench/torch_train_bench.py) on the same ResNet18, batch 32, 128x128, same threads, in one run.
# Needs PyPI torch and torchvision (pip install torch torchvision).
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-target/bench}
threads=${THREADS:-2}
steps=${STEPS:-5}
mkdir -p "$out"
cargo build --quiet --release --features train --example bench_train
RAYON_NUM_THREADS=$threads target/release/examples/bench_train "$steps" "$out/burn_train.json"
python3 bench/torch_train_bench.py "$threads" "$steps" "$out/torch_train.json"
python3 - "$out" <<'PY'
import json, os, sys
out = sys.argv[1]
b = json.load(open(os.path.join(out, "burn_train.json")))
t = json.load(open(os.path.join(out, "torch_train.json")))
key = lambda r: (r["trainable"], r["optimizer"])
tm = {key(r): r for r in t}
print(f"\nimages/s, batch 32, 128x128, {t[0]['threads']} threads")
print("trainable  optimizer  burn-flex  pytorch  burn/pytorch   burn ms fwd/bwd/opt   pytorch ms fwd/bwd/opt")
for r in b:
    p = tm[key(r)]
    ms = lambda x: "/".join(f"{x['ms'][k]:.0f}" for k in ("forward", "backward", "optimizer"))
    print(f"{r['trainable']:<10} {r['optimizer']:<9}  {r['images_per_second']:9.1f}  {p['images_per_second']:7.1f}"
          f"  {r['images_per_second'] / p['images_per_second']:12.2f}   {ms(r):>19}   {ms(p):>20}")
PY
