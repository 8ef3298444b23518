#!/usr/bin/env python3
"""A cross-validation's fold models rescored as shipped with card fields they were not trained
with: each fold's model.onnx copied, its card amended (`examples/amend_card`, e.g.
`preprocessing.moved_corners` from a JSON file; with `--like MODEL`, MODEL's own `calibration`
and `preprocessing`; no field: the model as it is), and its held-out real discs classified by
`endplate classify --manifest` (the CLI, so exactly what a user gets).
OUT gets one fold-K folder each with model.onnx and predictions.csv in `train --folds`'s format,
so `bench/paired_auc.py --cv CV OUT` pairs the two on the same discs and
`bench/detected_vs_hand.py MANIFEST --cv OUT` measures the amended models against detected
corners. Label noise: SPIDER graded the whole volume, the slice is its middle.

    python3 bench/moved_corners_cv.py target/real-experiments/real-phantoms-all-12 OUT [PATH @FILE ... | --like MODEL]

`--like models/endplate-default.onnx` on the cross-validation its calibration was fitted on
(`train --calibrate-on-folds`) gives the figure its card carries: the fold models run as the
bundled model runs (its moved copies, mirror image and calibration) on patients they never saw
(`build.sh model`).
"""
import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path

from detected_vs_hand import classify_list
from real_baselines import held_out

ROOT = Path(__file__).resolve().parent.parent
MANIFEST = ROOT / "data/spider/manifest.csv"


def main():
    cv, out = Path(sys.argv[1]), Path(sys.argv[2])
    field = sys.argv[3:]
    if field and field[0] == "--like":
        import onnx  # the card is the ONNX file's `endplate.card` metadata
        meta = onnx.load(field[1], load_external_data=False).metadata_props
        card = json.loads(next(p.value for p in meta if p.key == "endplate.card"))
        out.mkdir(parents=True, exist_ok=True)
        field = []
        for key in ("calibration", "preprocessing"):
            (out / f"{key}.json").write_text(json.dumps(card[key]))
            field += [key, f"@{out / key}.json"]
    rows = [r for r in csv.DictReader(open(MANIFEST)) if r["label"] in ("normal", "lesion")]
    for fold in sorted(cv.glob("fold-*")):
        held = held_out(fold)
        mine = [r for r in rows if r["subject"] in held]
        dest = out / fold.name
        dest.mkdir(parents=True, exist_ok=True)
        model = dest / "model.onnx"
        shutil.copy(fold / "model.onnx", model)
        for path, value in zip(field[::2], field[1::2]):
            run = subprocess.run([str(ROOT / "target/debug/examples/amend_card"), str(model), path, value],
                                 capture_output=True, text=True)
            if run.returncode:
                sys.exit(f"{model}: amend_card {path} failed (cargo build --examples first?): "
                         f"{run.stderr.strip()}")
        results = classify_list(mine, True, str(MANIFEST.parent), str(ROOT / "target/debug/endplate"),
                                ["--model", str(model)])
        with open(dest / "predictions.csv", "w", newline="") as f:
            w = csv.writer(f)
            # train's columns, then the raw logits (averaged over the views): what
            # docs/real-mri-experiments.md's "The calibration of P(lesion)" refitted its calibration on
            w.writerow(["subject", "label", "normal", "wavy", "notched", "schmorl",
                        "logit_normal", "logit_wavy", "logit_notched", "logit_schmorl"])
            for r, d in zip(mine, results):
                p = d["probabilities"]
                w.writerow([f"data/spider/manifest.csv:{r['subject']}", r["label"],
                            p["normal"], p["wavy"], p["notched"], p["schmorl"], *d["logits"]])
        print(f"{fold.name}: {len(mine)} held-out discs classified", flush=True)


if __name__ == "__main__":
    main()
