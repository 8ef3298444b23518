#!/usr/bin/env bash
# endplate project tasks. Usage: ./build.sh [task]
#   wasm    build the wasm packages into www/pkg/{relaxed,simd} (release; relaxed SIMD and plain SIMD)
#   serve   build, then serve www/ on http://127.0.0.1:8080 and print the URL
#   test    run every test: Rust (unit, integration), the wasm build, the browser tests
#   lint    cargo fmt --check, clippy -D warnings, and the stage order of src/ (.ci/stages.py)
#   bench   inference benchmark: endplate (tract) vs onnxruntime on the same model and discs
#   bench-web    in headless Chromium: page ready, model load, 1 and 5 discs, disc detection, against ONNX
#                Runtime Web (wasm, 1 thread) on the same model and inputs
#   bench-train  training images/s: burn-flex vs PyTorch CPU, same network, batch and threads
#   model   remake the bundled model: phantom sets, training, fresh-set evaluation (hours on 2 cores;
#           EPOCHS=30 by default; rerun with RESUME=1 to continue a run that was cut off)
set -euo pipefail
cd "$(dirname "$0")"

WASM_TARGET_DIR=${WASM_TARGET_DIR:-target/wasm}

wasm_bindgen_version() {
  # The exact wasm-bindgen the lockfile pins: the CLI must match it byte for byte.
  cargo metadata --format-version 1 --locked 2>/dev/null \
    | python3 -c 'import json,sys; print(next(p["version"] for p in json.load(sys.stdin)["packages"] if p["name"]=="wasm-bindgen"))'
}

ensure_wasm_tools() {
  rustup target list --installed 2>/dev/null | grep -q wasm32-unknown-unknown \
    || rustup target add wasm32-unknown-unknown
  local want; want=$(wasm_bindgen_version)
  if ! command -v wasm-bindgen >/dev/null || [ "$(wasm-bindgen --version | awk '{print $2}')" != "$want" ]; then
    echo "installing wasm-bindgen-cli $want (one time, a few minutes)" >&2
    cargo install wasm-bindgen-cli --version "$want"
  fi
}

build_wasm() {
  ensure_wasm_tools
  # Two builds: relaxed SIMD (about 25 % faster in Chromium) and plain SIMD for browsers without
  # relaxed SIMD; the worker picks one by feature test. Each has its own target folder so the
  # flags never rebuild the native tree or each other.
  local variant flags
  for variant in relaxed simd; do
    flags="-C target-feature=+simd128"
    [ "$variant" = relaxed ] && flags="$flags,+relaxed-simd"
    RUSTFLAGS="$flags" CARGO_TARGET_DIR="$WASM_TARGET_DIR/$variant" \
      cargo build --lib --release --target wasm32-unknown-unknown
    wasm-bindgen --target web --no-typescript --remove-name-section --out-dir "www/pkg/$variant" \
      "$WASM_TARGET_DIR/$variant/wasm32-unknown-unknown/release/endplate.wasm"
  done
  # The page loads the bundled model from its own origin.
  mkdir -p www/models
  cp models/*.onnx www/models/ 2>/dev/null || echo "note: models/ has no .onnx yet; the page will ask for one" >&2
  echo "wasm packages: www/pkg/relaxed ($(du -h www/pkg/relaxed/endplate_bg.wasm | cut -f1)), www/pkg/simd ($(du -h www/pkg/simd/endplate_bg.wasm | cut -f1))"
}

task=${1:-wasm}
case "$task" in
  wasm) build_wasm ;;
  serve)
    build_wasm
    port=${PORT:-8080}
    echo "endplate is at http://127.0.0.1:$port/  (Ctrl-C stops the server)"
    exec python3 -m http.server "$port" --bind 127.0.0.1 --directory www
    ;;
  test)
    # Everything the tests need, installed where missing (CI starts from a bare machine).
    ensure_wasm_tools
    command -v chromium >/dev/null || { apt-get update -qq && apt-get install -y -qq chromium; }
    (cd tests/browser && npm ci --no-audit --no-fund --silent)
    echo "== Rust: unit, integration and training tests"
    cargo test --all-targets --features train
    echo "== wasm build of the library (release, SIMD) for the page"
    build_wasm
    echo "== browser end-to-end tests (headless Chromium)"
    node --test tests/browser/
    ;;
  lint)
    cargo fmt --all -- --check
    cargo clippy --all-targets --features train -- -D warnings
    python3 .ci/stages.py
    ;;
  bench)
    python3 -c "import onnxruntime, numpy" 2>/dev/null || pip install --quiet onnxruntime numpy
    bash bench/inference.sh
    ;;
  bench-web)
    build_wasm
    command -v chromium >/dev/null || { apt-get update -qq && apt-get install -y -qq chromium; }
    (cd tests/browser && npm ci --no-audit --no-fund --silent)
    (cd bench/web && npm ci --no-audit --no-fund --silent)
    mkdir -p www/vendor/ort
    cp bench/web/node_modules/onnxruntime-web/dist/{ort.wasm.min.mjs,ort-wasm-simd-threaded.mjs,ort-wasm-simd-threaded.wasm} www/vendor/ort/
    node bench/web/run.mjs
    ;;
  bench-train)
    python3 -c "import torch, torchvision" 2>/dev/null || pip install --quiet torch torchvision
    bash bench/train.sh
    ;;
  model)
    cargo build --release --features train
    bin=target/release/endplate
    data=${DATA:-target/phantoms}
    [ -f "$data/train/manifest.csv" ] || $bin synth --out "$data/train" --subjects 240 --seed 1 --bits 16 --class-mix paper
    [ -f "$data/test/manifest.csv" ] || $bin synth --out "$data/test" --subjects 100 --seed 9001 --bits 16 --class-mix paper
    $bin train --manifest "$data/train/manifest.csv" --out models/endplate-default.onnx \
      --epochs "${EPOCHS:-30}" --patience 5 --unfreeze all --split-by subject --seed 1 --synthetic \
      --describe "1200 discs of 240 synthetic phantom subjects (endplate synth --subjects 240 --seed 1 --bits 16 --class-mix paper); no patient data" \
      --checkpoints "$data/checkpoints" --report docs/bundled-model-report ${RESUME:+--resume}
    # Store the weights compactly only if no test disc changes class or moves 0.01 in probability:
    # int8 first (a quarter of the size), else float16 (a half), else float32.
    for storage in int8 f16; do
      if cargo run --release --example compact_model -- "$storage" models/endplate-default.onnx "$data/compact.onnx" "$data/test/manifest.csv"; then
        mv "$data/compact.onnx" models/endplate-default.onnx
        break
      fi
    done
    $bin evaluate --model models/endplate-default.onnx --manifest "$data/test/manifest.csv" --report docs/bundled-model-fresh-eval
    ;;
  *) echo "unknown task $task; see the top of build.sh" >&2; exit 2 ;;
esac
