"""Time onnxruntime (CPU) on the model and inputs that examples/bench_inference.rs wrote."""
import json, os, sys, time
import numpy as np
import onnxruntime as ort

out = sys.argv[1] if len(sys.argv) > 1 else "target/bench"
x = np.fromfile(os.path.join(out, "input.f32"), dtype="<f4").reshape(-1, 3, 128, 128)
discs = x.shape[0]
rows = []
for threads in sorted({1, os.cpu_count() or 1}):
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    sess = ort.InferenceSession(os.path.join(out, "model.onnx"), so, providers=["CPUExecutionProvider"])
    for batch in (1, 8, 32):
        sess.run(None, {"input": x[:batch]})
        t = time.perf_counter()
        for i in range(0, discs, batch):
            sess.run(None, {"input": x[i:i + batch]})
        ms = (time.perf_counter() - t) * 1000 / discs
        print(f"onnxruntime  threads={threads} batch={batch:<3} {ms:7.2f} ms/disc  {1000 / ms:7.1f} discs/s")
        rows.append({"engine": "onnxruntime", "threads": threads, "batch": batch, "ms_per_disc": ms})
# The same logits as tract? (both engines on the same bytes)
json.dump(rows, open(os.path.join(out, "onnxruntime.json"), "w"), indent=1)
