#!/usr/bin/env bash
# endplate project tasks. Usage: ./build.sh [task]
#   wasm    build the wasm packages into www/pkg/{relaxed,simd} (release; relaxed SIMD and plain SIMD)
#   serve   build, then serve www/ on http://127.0.0.1:8080 and print the URL
#   dist    build, then write dist/: the installable offline page for any static host (README,
#           Install and host); DIST_DIR=... writes elsewhere, NO_WASM_BUILD=1 packs www/ as it is
#   test    run every test: Rust (unit, integration), the wasm build, the browser tests
#   lint    cargo fmt --check, clippy -D warnings, and the stage order of src/ (.ci/stages.py)
#   bench   inference benchmark: endplate (tract) vs onnxruntime on the same model and discs
#   bench-web    in headless Chromium: page ready, model load, 1 and 5 discs, disc detection, against ONNX
#                Runtime Web (wasm, 1 thread) on the same model and inputs
#   bench-stack  diagnosis: one slice's detection 250 times in a row in a worker, then through extra
#                JavaScript frames (does the page's speed hang on where V8 leaves the stack?)
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

# dist/: the page, both wasm builds and the bundled models, nothing else. Everything but the
# page, its service worker, manifest and icons goes under v/<build>/, <build> a hash of the
# files, so a page only ever loads its own build's scripts, wasm and models, and a new build
# never meets an old file in any cache. DIST_SALT adds to the hash (the tests make a second build).
build_dist() {
  local out=${DIST_DIR:-dist}
  local files=(app.js adapt.js engine.js worker.js store.js study.js scalebar.js style.css
    pkg/relaxed/endplate.js pkg/relaxed/endplate_bg.wasm pkg/simd/endplate.js pkg/simd/endplate_bg.wasm
    models/endplate-default.onnx models/endplate-detector.onnx)
  local top=(index.html sw.js manifest.webmanifest icon.svg icon-192.png icon-512.png)
  local f
  for f in "${files[@]}"; do
    [ -f "www/$f" ] || { echo "www/$f is missing: run ./build.sh wasm first (it also copies models/*.onnx)" >&2; exit 1; }
  done
  local version build
  version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
  build=$( { (cd www && sha256sum "${files[@]}" "${top[@]}"); echo "$version ${DIST_SALT:-}"; } | sha256sum | cut -c1-12)
  rm -rf "$out"
  mkdir -p "$out/v/$build"
  for f in "${files[@]}"; do
    mkdir -p "$out/v/$build/$(dirname "$f")"
    cp "www/$f" "$out/v/$build/$f"
  done
  cp www/manifest.webmanifest www/icon.svg www/icon-192.png www/icon-512.png "$out/"
  sed -e "s|<html lang=\"en\">|<html lang=\"en\" data-version=\"$version\" data-build=\"$build\">|" \
      -e "s|href=\"style.css\"|href=\"v/$build/style.css\"|" -e "s|src=\"app.js\"|src=\"v/$build/app.js\"|" \
      www/index.html > "$out/index.html"
  grep -q "data-build=\"$build\"" "$out/index.html" && grep -q "src=\"v/$build/app.js\"" "$out/index.html" \
    || { echo "www/index.html no longer has the lines build.sh dist rewrites" >&2; exit 1; }
  local v="v/$build"
  local core="['./', 'manifest.webmanifest', 'icon.svg', 'icon-192.png', 'icon-512.png', '$v/app.js', '$v/adapt.js', '$v/engine.js', '$v/worker.js', '$v/store.js', '$v/study.js', '$v/scalebar.js', '$v/style.css', '$v/models/endplate-default.onnx', '$v/models/endplate-detector.onnx']"
  local variants="{ relaxed: ['$v/pkg/relaxed/endplate.js', '$v/pkg/relaxed/endplate_bg.wasm'], simd: ['$v/pkg/simd/endplate.js', '$v/pkg/simd/endplate_bg.wasm'] }"
  sed -e "s|@BUILD@|$build|" -e "s|@CORE@|$core|" -e "s|@VARIANTS@|$variants|" www/sw.js > "$out/sw.js"
  echo "$out/: endplate $version, build $build ($(du -sh "$out" | cut -f1)); serve it from any static host (README, Install and host)"
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
  dist)
    [ -n "${NO_WASM_BUILD:-}" ] || build_wasm
    build_dist
    ;;
  test)
    # Everything the tests need, installed where missing (CI starts from a bare machine).
    ensure_wasm_tools
    command -v chromium >/dev/null || { apt-get update -qq && apt-get install -y -qq chromium; }
    (cd tests/browser && npm ci --no-audit --no-fund --silent)
    echo "== Rust: unit, integration and training tests"
    cargo test --all-targets --features train
    # cargo test compiles the examples but leaves them under hashed names; the browser tests run
    # examples/write_study by its plain name (same profile and features: no rebuild, a link).
    cargo build --examples --features train
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
    # onnx cuts the detector to its first network for ONNX Runtime Web (bench/web/run.mjs).
    python3 -c "import onnx" 2>/dev/null || pip install --quiet onnx
    command -v chromium >/dev/null || { apt-get update -qq && apt-get install -y -qq chromium; }
    (cd tests/browser && npm ci --no-audit --no-fund --silent)
    (cd bench/web && npm ci --no-audit --no-fund --silent)
    mkdir -p www/vendor/ort
    cp bench/web/node_modules/onnxruntime-web/dist/{ort.wasm.min.mjs,ort-wasm-simd-threaded.mjs,ort-wasm-simd-threaded.wasm} www/vendor/ort/
    node bench/web/run.mjs
    ;;
  bench-stack)
    build_wasm
    command -v chromium >/dev/null || { apt-get update -qq && apt-get install -y -qq chromium; }
    (cd tests/browser && npm ci --no-audit --no-fund --silent)
    node bench/web/stack/run.mjs
    ;;
  bench-train)
    python3 -c "import torch, torchvision" 2>/dev/null || pip install --quiet torch torchvision
    bash bench/train.sh
    ;;
  model)
    # Two stages (README, The bundled model): the phantom-only model, then a fine-tune on the
    # real SPIDER discs of data/spider/manifest.csv next to the phantoms. STAGE=2 starts from an
    # existing phantom model ($data/phantom-only.onnx, or the one of commit 48a9a87).
    cargo build --all-targets --features train
    # BIN=target/tch/debug/endplate trains on LibTorch (DEVELOPERS.md); REAL_EPOCHS sets the
    # second stage's length, which must match the cross-validation in CALIBRATION_FOLDS.
    bin=${BIN:-target/debug/endplate}
    real_epochs=${REAL_EPOCHS:-12}
    data=${DATA:-target/phantoms}
    [ -f "$data/train/manifest.csv" ] || $bin synth --out "$data/train" --subjects 240 --seed 1 --bits 16 --class-mix paper
    [ -f "$data/test/manifest.csv" ] || $bin synth --out "$data/test" --subjects 100 --seed 9001 --bits 16 --class-mix paper
    if [ "${STAGE:-1}" = 1 ]; then
      $bin train --manifest "$data/train/manifest.csv" --out "$data/phantom-only.onnx" \
        --epochs "${EPOCHS:-30}" --patience 5 --unfreeze all --split-by subject --seed 1 --synthetic \
        --describe "1200 discs of 240 synthetic phantom subjects (endplate synth --subjects 240 --seed 1 --bits 16 --class-mix paper); no patient data" \
        --checkpoints "$data/checkpoints" --report "$data/phantom-only.report" ${RESUME:+--resume}
    fi
    [ -f "$data/phantom-only.onnx" ] || git show 48a9a87:models/endplate-default.onnx > "$data/phantom-only.onnx"
    # Every real disc trains (--no-validation-of 1); the calibration is fitted on the out-of-fold
    # logits of this recipe's cross-validation (bench/real_experiments.sh real-phantoms-all-12),
    # which must exist; a fifth of the phantoms still validates each epoch.
    folds=${CALIBRATION_FOLDS:-target/real-experiments/real-phantoms-all-12}
    [ -f "$folds/fold-5/predictions.csv" ] || { echo "build.sh model: $folds/fold-5/predictions.csv is missing: run the recipe's cross-validation first (BIN=$bin bench/real_experiments.sh real-phantoms-all-12, about 70 minutes on LibTorch), or name another with CALIBRATION_FOLDS" >&2; exit 2; }
    $bin train --manifest data/spider/manifest.csv --manifest "$data/train/manifest.csv" --share 3 --share 1 \
      --init "$data/phantom-only.onnx" --unfreeze all --epochs "$real_epochs" --lr 3e-4 --lr-schedule cosine --corner-jitter 0.03 \
      --split-by subject --seed 1 --keep-last --mirror-average --no-validation-of 1 --calibrate-on-folds "$folds" \
      --out models/endplate-default.onnx --checkpoints "$data/checkpoints-all-real" --report docs/bundled-model-report \
      --describe "SPIDER (van der Graaf et al., Sci Data 2024, CC BY 4.0): 995 real discs of 171 patients labelled normal/lesion (3/4 of every epoch), plus 1200 phantom discs of 240 synthetic subjects, seed 1 (1/4); 4 corner-jittered ROIs per disc; every layer fine-tuned from the phantom-only model for $real_epochs epochs, cosine learning rate; each disc averaged with its mirror image; calibrated on the out-of-fold logits of the same recipe's 5-fold cross-validation" \
      ${RESUME:+--resume}
    # Every reader averages each disc over its ROI and four copies cut with the corners moved
    # (docs/real-mri-experiments.md, "Averaging over moved corners"): a fixed table in the
    # disc's own frame, sd 0.03 of its width as training's jitter, the second pair the first's opposite (numpy's
    # default_rng(1).standard_normal((2, 8)), rounded). Set before the storage check and the
    # fresh phantom figures, which are then measured as shipped.
    echo '{"fraction": 0.03, "moves": [[0.346, 0.822, 0.33, -1.303, 0.905, 0.446, -0.537, 0.581], [0.365, 0.294, 0.028, 0.547, -0.736, -0.163, -0.482, 0.599], [-0.346, -0.822, -0.33, 1.303, -0.905, -0.446, 0.537, -0.581], [-0.365, -0.294, -0.028, -0.547, 0.736, 0.163, 0.482, -0.599]]}' > "$data/moved-corners.json"
    target/debug/examples/amend_card models/endplate-default.onnx preprocessing.moved_corners "@$data/moved-corners.json"
    # Store the weights compactly only if no test disc changes class or moves 0.01 in probability:
    # int8 first (a quarter of the size), else float16 (a half), else float32.
    for storage in int8 f16; do
      if target/debug/examples/compact_model "$storage" models/endplate-default.onnx "$data/compact.onnx" "$data/test/manifest.csv"; then
        mv "$data/compact.onnx" models/endplate-default.onnx
        break
      fi
    done
    $bin evaluate --model models/endplate-default.onnx --manifest "$data/test/manifest.csv" --report docs/bundled-model-fresh-eval
    # The card carries the real cross-validation and the fresh phantom figures, which the page
    # shows, and a warning that fits a real model. The real figure: the fold models of
    # $folds run as this model runs (its moved copies, mirror image and calibration) on the
    # patients each never saw (bench/moved_corners_cv.py --like).
    rm -rf "$data/as-shipped"
    python3 bench/moved_corners_cv.py "$folds" "$data/as-shipped" --like models/endplate-default.onnx
    python3 bench/cv_so_far.py "$data/as-shipped" "$data/as-shipped.json"
    python3 -c "import json,sys; p=json.load(open(sys.argv[1])); p.update(data='SPIDER', folds=5, config='real (3/4) + phantoms (1/4), corner jitter 0.03, every layer fine-tuned from the phantom-only model for $real_epochs epochs, cosine learning rate, each disc averaged with its mirror image and 4 copies with moved corners; the fold models of $folds with this model\'s calibration'); json.dump(p, open(sys.argv[2], 'w'))" "$data/as-shipped.json" "$data/real-cv.json"
    target/debug/examples/amend_card models/endplate-default.onnx metrics.real_cross_validation "@$data/real-cv.json"
    python3 -c "import json,sys; m=json.load(open(sys.argv[1])); json.dump({'n': m['n'], 'accuracy': m['accuracy'], 'auc': m['auc'], 'set': 'endplate synth --subjects 100 --seed 9001 --bits 16 --class-mix paper'}, open(sys.argv[2], 'w'))" docs/bundled-model-fresh-eval/metrics.json "$data/phantom-test.json"
    target/debug/examples/amend_card models/endplate-default.onnx metrics.phantom_test "@$data/phantom-test.json"
    target/debug/examples/amend_card models/endplate-default.onnx warning "Learnt from real SPIDER MRI (noisy binary labels: normal or lesion) and from synthetic phantoms; the split among lesion types comes from phantoms only. A research tool, not a medical device: do not use it for diagnosis."
    ;;
  *) echo "unknown task $task; see the top of build.sh" >&2; exit 2 ;;
esac
