"""onnxruntime on the detector file: milliseconds per view (network only, [1, 1, 256, 256]),
median of 30 runs after 5 warm-up runs, at 1 and 2 threads: wall clock, and at one thread also the
process's CPU time, which compares with `examples/profile_detector.rs` on a loaded machine (where
the wall clock mostly measures waiting for a core). The detector runs two views per
slice, so a slice costs twice this plus preprocessing. Only `maps` is asked for, on the file cut to the
network a view runs (`bench/detector_first_network.py`). Usage: python3 bench/detector_onnxruntime.py models/endplate-detector.onnx"""
import os, sys, tempfile, time
import numpy as np
import onnxruntime as ort

path = sys.argv[1] if len(sys.argv) > 1 else "models/endplate-detector.onnx"
# Only the network a view runs (bench/detector_first_network.py says why).
workdir = tempfile.TemporaryDirectory()
try:
    from detector_first_network import cut
    cut(path, os.path.join(workdir.name, "maps.onnx"))
    print(f"{path}: cut to its first network (input -> maps) for onnxruntime")
    path = os.path.join(workdir.name, "maps.onnx")
except ImportError:
    print("onnx is not installed (pip install onnx): onnxruntime runs every network of the file")
x = np.random.default_rng(1).standard_normal((1, 1, 256, 256)).astype(np.float32)
for threads in (1, 2):
    o = ort.SessionOptions()
    o.intra_op_num_threads = threads
    s = ort.InferenceSession(path, o, providers=["CPUExecutionProvider"])
    for _ in range(5):
        s.run(["maps"], {"input": x})
    t, c = [], []
    for _ in range(30):
        a, b = time.perf_counter(), time.process_time()
        s.run(["maps"], {"input": x})
        t.append((time.perf_counter() - a) * 1e3)
        c.append((time.process_time() - b) * 1e3)
    cpu = f", {sorted(c)[15]:.2f} ms cpu" if threads == 1 else ""
    print(f"onnxruntime {ort.__version__}, {threads} thread(s): {sorted(t)[15]:.2f} ms per view{cpu}")
