#!/usr/bin/env bash
# The real-MRI experiments of the README ("Real MRI"): patient-level 5-fold cross-validation on
# SPIDER's graded discs (data/spider/manifest.csv), each a documented command with checkpoints;
# `RESUME=1` continues a cut-off run (folds already done are kept). Two cores: run one at a time.
#
#   bench/real_experiments.sh phantom-only | real-ft | real-ft-jitter | real-phantoms-ft | real-phantoms-jitter | real-phantoms-jitter5 | real-phantoms-all | real-phantoms-all-long | real-phantoms-all-long-mirror | real-phantoms-all-long-seed2 | real-phantoms-all-12 | real-phantoms-all-12-aux | real-phantoms-all-12-thoracic | real-phantoms-tone | scratch | scratch-phantoms | scratch-jitter | scratch-cosine | real-ft-aux | scratch-aux | real-phantoms-jitter-aux | staged-head | staged-top2 | pretext | baselines
#
# OUT (default target/real-experiments) receives one folder per experiment with its fold
# reports and cross_validation.json. PHANTOM_MODEL is the phantom-only model that the fine-tunes
# start from: by default the bundled model of commit 48a9a87, the last one trained on phantoms
# only. Label noise: SPIDER graded the whole volume, the slice is its middle; say so next to any
# figure.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-target/real-experiments}
MANIFEST=${MANIFEST:-data/spider/manifest.csv}
BIN=${BIN:-target/debug/endplate}
mkdir -p "$OUT"
PHANTOM_MODEL=${PHANTOM_MODEL:-$OUT/phantom-only.onnx}
[ -f "$PHANTOM_MODEL" ] || git show 48a9a87:models/endplate-default.onnx > "$PHANTOM_MODEL"
# The bundled model's phantoms (build.sh model): 1,200 discs of 240 subjects, seed 1.
PHANTOMS=${PHANTOMS:-$OUT/phantoms-240}
[ -f "$PHANTOMS/manifest.csv" ] || "$BIN" synth --out "$PHANTOMS" --subjects 240 --seed 1 --bits 16 --class-mix paper
# SPIDER's other gradings of each disc, columns of the manifest (data/spider/build_manifest.py).
AUXILIARY=${AUXILIARY:-up_endplate,low_endplate,modic,narrowing,herniation,bulging,spondylolisthesis,pfirrmann_3plus,pfirrmann_4plus,pfirrmann_5}
# SEED (default 1) draws the folds as well as the training: a second seed's out-of-fold
# predictions are still out of fold, so two seeds' runs can be averaged disc by disc.
# CHECKPOINTS (default OUT/NAME.checkpoints) lets a run resume another run's finished folds.
run() { local name=$1; shift; "$BIN" train --out "$OUT/$name.onnx" --report "$OUT/$name" \
  --checkpoints "${CHECKPOINTS:-$OUT/$name.checkpoints}" --folds 5 --split-by subject --keep-last \
  ${RESUME:+--resume} --seed "${SEED:-1}" "$@" 2>&1 | tee "$OUT/$name.log"; }
# The bundled recipe (real-phantoms-all-long), shared by its variants below.
ALL_LONG=(--manifest "$MANIFEST" --manifest "$PHANTOMS/manifest.csv" --share 3 --share 1
  --init "$PHANTOM_MODEL" --unfreeze all --epochs 8 --lr 3e-4 --lr-schedule cosine --corner-jitter 0.03)
ALL_LONG_TEXT="SPIDER real discs (3/4 of every epoch) + 1200 phantom discs (1/4), 4 corner-jittered ROIs per disc, every layer fine-tuned from the phantom-only model for 8 epochs, cosine learning rate"

case ${1:-} in
  phantom-only)
    "$BIN" evaluate --model "$PHANTOM_MODEL" --manifest "$MANIFEST" --report "$OUT/phantom-only" --json \
      > "$OUT/phantom-only.json" ;;
  real-ft)
    run real-ft --manifest "$MANIFEST" --init "$PHANTOM_MODEL" --unfreeze top2 --epochs 5 --lr 3e-4 \
      --describe "SPIDER real discs, fine-tuned from the phantom-only model" ;;
  real-ft-jitter)
    run real-ft-jitter --manifest "$MANIFEST" --init "$PHANTOM_MODEL" --unfreeze top2 --epochs 5 --lr 3e-4 \
      --corner-jitter 0.03 \
      --describe "SPIDER real discs, fine-tuned from the phantom-only model, 4 corner-jittered ROIs per disc" ;;
  real-phantoms-ft)
    run real-phantoms-ft --manifest "$MANIFEST" --manifest "$PHANTOMS/manifest.csv" --init "$PHANTOM_MODEL" \
      --unfreeze top2 --epochs 5 --lr 3e-4 \
      --describe "SPIDER real discs + 1200 phantom discs, fine-tuned from the phantom-only model" ;;
  real-phantoms-jitter)
    run real-phantoms-jitter --manifest "$MANIFEST" --manifest "$PHANTOMS/manifest.csv" --share 3 --share 1 \
      --init "$PHANTOM_MODEL" --unfreeze top2 --epochs 5 --lr 3e-4 --corner-jitter 0.03 \
      --describe "SPIDER real discs (3/4 of every epoch) + 1200 phantom discs (1/4), 4 corner-jittered ROIs per disc, fine-tuned from the phantom-only model" ;;
  real-phantoms-jitter5)
    # The bundled recipe with corners moved about as far as the detector misplaces them (sd 0.05
    # of the width, about 2 mm; the detector's median corner error on held-out real slices is
    # 1.8 mm) and 8 moved copies per disc: the class should not hang on where the corners sit.
    run real-phantoms-jitter5 --manifest "$MANIFEST" --manifest "$PHANTOMS/manifest.csv" --share 3 --share 1 \
      --init "$PHANTOM_MODEL" --unfreeze top2 --epochs 5 --lr 3e-4 --corner-jitter 0.05 --jitter-copies 8 \
      --describe "SPIDER real discs (3/4 of every epoch) + 1200 phantom discs (1/4), 8 ROIs per disc with corners moved by sd 0.05 of its width, fine-tuned from the phantom-only model" ;;
  real-phantoms-all)
    # The bundled recipe with every layer learning, as in `scratch` (which learnt real discs
    # best), but from the phantom model and with the phantoms kept in every epoch.
    run real-phantoms-all --manifest "$MANIFEST" --manifest "$PHANTOMS/manifest.csv" --share 3 --share 1 \
      --init "$PHANTOM_MODEL" --unfreeze all --epochs 5 --lr 3e-4 --corner-jitter 0.03 \
      --describe "SPIDER real discs (3/4 of every epoch) + 1200 phantom discs (1/4), 4 corner-jittered ROIs per disc, every layer fine-tuned from the phantom-only model" ;;
  real-phantoms-all-long)
    # `real-phantoms-all` for 8 epochs with the learning rate falling along half a cosine, so
    # the longer run ends at a low rate instead of wherever the loss swung at 3e-4.
    run real-phantoms-all-long "${ALL_LONG[@]}" --describe "$ALL_LONG_TEXT" ;;
  real-phantoms-all-long-mirror)
    # The bundled recipe's five fold models, each disc averaged with its mirror image: no
    # training, each finished fold is resumed from real-phantoms-all-long's checkpoints with
    # --mirror-average, which recalibrates it on its held-out discs and writes it again.
    [ -f "$OUT/real-phantoms-all-long/cross_validation.json" ] || { echo "run real-phantoms-all-long first" >&2; exit 1; }
    mkdir -p "$OUT/real-phantoms-all-long-mirror"
    RESUME=1 CHECKPOINTS="$OUT/real-phantoms-all-long.checkpoints" run real-phantoms-all-long-mirror \
      "${ALL_LONG[@]}" --mirror-average --describe "$ALL_LONG_TEXT; each disc averaged with its mirror image" ;;
  real-phantoms-all-12)
    # The bundled recipe run half as long again (12 epochs, the cosine stretched over them),
    # each disc averaged with its mirror image as the bundled model is: at epoch 8 the
    # validation loss was still falling in every fold. Compare with real-phantoms-all-long-mirror.
    args=("${ALL_LONG[@]}")
    for i in "${!args[@]}"; do [ "${args[$i]}" = --epochs ] && args[i+1]=12; done
    run real-phantoms-all-12 "${args[@]}" --mirror-average --describe "${ALL_LONG_TEXT/8 epochs/12 epochs}; each disc averaged with its mirror image" ;;
  real-phantoms-all-12-aux)
    # The bundled recipe (real-phantoms-all-12) also learning SPIDER's other gradings of each
    # real disc, its upper and lower endplate apart among them (`--auxiliary`: one extra output
    # per column in training, dropped from the fold models; phantom discs carry none). On the
    # top-two fine-tune they had added +0.5 (real-ft-aux). Compare with real-phantoms-all-12.
    args=("${ALL_LONG[@]}")
    for i in "${!args[@]}"; do [ "${args[$i]}" = --epochs ] && args[i+1]=12; done
    run real-phantoms-all-12-aux "${args[@]}" --mirror-average --auxiliary "$AUXILIARY" \
      --describe "${ALL_LONG_TEXT/8 epochs/12 epochs}; each disc averaged with its mirror image; learning SPIDER's other gradings beside the label" ;;
  real-phantoms-all-12-thoracic)
    # The bundled recipe with 385 more real discs: the graded discs above L1L2 (T12L1 ...
    # T9T10) of the same slices, with the detector's corners (data/spider/thoracic.csv). Each
    # patient's thoracic discs follow their lumbar discs' fold, so the lumbar folds are
    # real-phantoms-all-12's and the two pair disc by disc. Shares 3 : 0.7 : 1 keep about as
    # many lumbar and phantom draws per epoch as the bundled recipe's 3 : 1 (the epoch grows by
    # the thoracic discs). Scored on the lumbar discs only (bench/moved_corners_cv.py --like).
    run real-phantoms-all-12-thoracic --manifest "$MANIFEST" --manifest data/spider/thoracic.csv \
      --manifest "$PHANTOMS/manifest.csv" --share 3 --share 0.7 --share 1 --init "$PHANTOM_MODEL" \
      --unfreeze all --epochs 12 --lr 3e-4 --lr-schedule cosine --corner-jitter 0.03 --mirror-average \
      --describe "${ALL_LONG_TEXT/8 epochs/12 epochs}; each disc averaged with its mirror image; plus 385 graded SPIDER discs above L1L2 of the same slices (detector corners; share 0.7, lumbar 3, phantoms 1)" ;;
  real-phantoms-all-long-seed2)
    # The bundled recipe again with another seed (other folds, other draws): is the average of
    # two such networks worth running both in the page?
    SEED=2 run real-phantoms-all-long-seed2 "${ALL_LONG[@]}" --describe "$ALL_LONG_TEXT; seed 2" ;;
  real-phantoms-tone)
    # The bundled recipe with the ROIs also zoomed (up to 10 %) and their gamma (up to 30 %) and
    # contrast (up to 20 %) changed as they are drawn: real scanners differ in contrast, and the
    # phantoms and the paper's augmentation never varied it.
    run real-phantoms-tone --manifest "$MANIFEST" --manifest "$PHANTOMS/manifest.csv" --share 3 --share 1 \
      --init "$PHANTOM_MODEL" --unfreeze top2 --epochs 5 --lr 3e-4 --corner-jitter 0.03 \
      --augment-scale 0.1 --augment-gamma 0.3 --augment-contrast 0.2 \
      --describe "SPIDER real discs (3/4 of every epoch) + 1200 phantom discs (1/4), 4 corner-jittered ROIs per disc, zoom/gamma/contrast augmentation, fine-tuned from the phantom-only model" ;;
  real-phantoms-jitter-aux)
    # The bundled recipe, also learning SPIDER's other gradings of each real disc.
    run real-phantoms-jitter-aux --manifest "$MANIFEST" --manifest "$PHANTOMS/manifest.csv" --share 3 --share 1 \
      --init "$PHANTOM_MODEL" --unfreeze top2 --epochs 5 --lr 3e-4 --corner-jitter 0.03 --auxiliary "$AUXILIARY" \
      --describe "SPIDER real discs (3/4 of every epoch) + 1200 phantom discs (1/4), 4 corner-jittered ROIs per disc, fine-tuned from the phantom-only model, learning SPIDER's other gradings beside the label" ;;
  scratch)
    run scratch --manifest "$MANIFEST" --unfreeze all --epochs 6 --lr 1e-3 \
      --describe "SPIDER real discs, from random weights" ;;
  scratch-phantoms)
    # `scratch` (every layer from random weights, which read real discs best) with the bundled
    # recipe's phantoms in every epoch, so that one network learns real discs and the phantoms'
    # lesion types together; an epoch draws real and phantom discs (about 1,750), so 5 epochs
    # already show each real disc more often than scratch's 6.
    run scratch-phantoms --manifest "$MANIFEST" --manifest "$PHANTOMS/manifest.csv" --share 3 --share 1 \
      --unfreeze all --epochs 5 --lr 1e-3 --corner-jitter 0.03 \
      --describe "SPIDER real discs (3/4 of every epoch) + 1200 phantom discs (1/4), 4 corner-jittered ROIs per disc, from random weights" ;;
  staged-head)
    # Stage 3 on top of `real-ft-jitter`'s fold models (run that first): the head alone learns the
    # phantoms' four classes beside the real discs, the backbone that learnt real discs stays.
    run staged-head --manifest "$MANIFEST" --manifest "$PHANTOMS/manifest.csv" --share 3 --share 1 \
      --init "$OUT/real-ft-jitter" --unfreeze top0 --epochs 3 --lr 1e-3 --corner-jitter 0.03 \
      --describe "SPIDER real discs (3/4 of every epoch) + 1200 phantom discs (1/4), head only, from each fold's real-ft-jitter model" ;;
  staged-top2)
    # As staged-head, with the last two stages learning too (the head alone keeps the real
    # backbone but reaches only 59 % on held-out phantoms in fold 1).
    run staged-top2 --manifest "$MANIFEST" --manifest "$PHANTOMS/manifest.csv" --share 3 --share 1 \
      --init "$OUT/real-ft-jitter" --unfreeze top2 --epochs 3 --lr 3e-4 --corner-jitter 0.03 \
      --describe "SPIDER real discs (3/4 of every epoch) + 1200 phantom discs (1/4), head + layer3-4, from each fold's real-ft-jitter model" ;;
  scratch-cosine)
    # `scratch` with the learning rate falling along half a cosine over the run, so the kept
    # last epoch is not one taken at full rate.
    run scratch-cosine --manifest "$MANIFEST" --unfreeze all --epochs 6 --lr 1e-3 --lr-schedule cosine \
      --describe "SPIDER real discs, from random weights, cosine learning rate" ;;
  real-ft-aux | scratch-aux)
    # `real-ft` and `scratch` also learning SPIDER's other gradings of each disc (one extra
    # output per column during training, dropped from the fold models; `train --auxiliary`).
    if [ "$1" = real-ft-aux ]; then
      recipe=(--init "$PHANTOM_MODEL" --unfreeze top2 --epochs 5 --lr 3e-4); from="fine-tuned from the phantom-only model"
    else
      recipe=(--unfreeze all --epochs 6 --lr 1e-3); from="from random weights"
    fi
    run "$1" --manifest "$MANIFEST" "${recipe[@]}" --auxiliary "$AUXILIARY" \
      --describe "SPIDER real discs, $from, learning SPIDER's other gradings beside the label" ;;
  scratch-jitter)
    run scratch-jitter --manifest "$MANIFEST" --unfreeze all --epochs 8 --lr 1e-3 --corner-jitter 0.03 \
      --describe "SPIDER real discs, from random weights, 4 corner-jittered ROIs per disc" ;;
  pretext)
    "$BIN" pretrain --manifest "$MANIFEST" --epochs 3 --out "$OUT/pretext-backbone.onnx" ${RESUME:+--resume} \
      2>&1 | tee "$OUT/pretext-backbone.log"
    run pretext --manifest "$MANIFEST" --init "$OUT/pretext-backbone.onnx" --unfreeze all --epochs 6 --lr 1e-3 \
      --describe "SPIDER real discs, from the rotation pretext on the same slices (labels unused)" ;;
  baselines)
    cargo build --all-targets --features train && target/debug/examples/real_features "$MANIFEST" "$OUT/real_features.csv"
    # The phantom model's frozen pooled features (its file predates the `features` output).
    cp "$PHANTOM_MODEL" "$OUT/phantom-only-features.onnx"
    target/debug/examples/expose_features "$OUT/phantom-only-features.onnx"
    target/debug/examples/real_features "$MANIFEST" "$OUT/phantom_features.csv" "$OUT/phantom-only-features.onnx"
    frozen=("$OUT/phantom_features.csv")
    # The rotation pretext's backbone, once `pretext` has made it (it saw every slice, no label).
    if [ -f "$OUT/pretext-backbone.onnx" ]; then
      target/debug/examples/real_features "$MANIFEST" "$OUT/pretext_features.csv" "$OUT/pretext-backbone.onnx"
      frozen+=("$OUT/pretext_features.csv")
    fi
    OUT_JSON="$OUT/baselines.json"
    OUT=$OUT_JSON python3 bench/real_baselines.py "$MANIFEST" "$OUT/real_features.csv" "${frozen[@]}" ;;
  *) sed -n 2,14p "$0"; exit 2 ;;
esac
