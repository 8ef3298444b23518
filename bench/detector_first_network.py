"""The detector file cut to the network a view runs (input -> maps), for the onnxruntime benches.

onnxruntime runs every network of a file even when asked for `maps` alone, and the bundled file
holds two: its own and the joined corner network (`endplate join-corner-network`). Timing the
whole file would bill onnxruntime for both while our engine runs one (`Detector::from_bytes`
plans them apart, as `split_corner_network` does). Used by `bench/detector_onnxruntime.py` and
`bench/web/run.mjs`. Needs `pip install onnx`.

    python3 bench/detector_first_network.py IN.onnx OUT.onnx
"""
import sys


def cut(path, out):
    """Write to `out` the part of the ONNX file at `path` that computes `maps` from `input`."""
    import onnx.utils
    onnx.utils.extract_model(path, out, ["input"], ["maps"])


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    cut(sys.argv[1], sys.argv[2])
