"""PyTorch CPU reference for examples/bench_train.rs: the same torchvision ResNet18 (4 classes),
batch 32, 128x128x3, the same thread count, SGD and Adam, full network and layer4 + fc only.
Each step is split into forward, backward and optimizer time like the Rust side.

    python3 bench/torch_train_bench.py THREADS STEPS OUT.json
"""
import json
import sys
import time

import torch
import torchvision


def median(v):
    v = sorted(v)
    return v[len(v) // 2]


def main():
    threads, steps, out = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    torch.set_num_threads(threads)
    torch.manual_seed(1)
    batch = 32
    x = torch.rand(batch, 3, 128, 128) * 4 - 2
    y = torch.arange(batch) % 4
    rows = []
    for what in ["full", "layer4+fc"]:
        for opt in ["sgd", "adam"]:
            model = torchvision.models.resnet18(num_classes=4)
            model.train()
            if what != "full":
                for name, p in model.named_parameters():
                    p.requires_grad = name.startswith("layer4") or name.startswith("fc")
            params = [p for p in model.parameters() if p.requires_grad]
            optim = torch.optim.SGD(params, lr=1e-3) if opt == "sgd" else torch.optim.Adam(params, lr=1e-3)
            loss_fn = torch.nn.CrossEntropyLoss()
            fwd, bwd, upd, total = [], [], [], []
            for step in range(steps + 1):
                t0 = time.perf_counter()
                optim.zero_grad(set_to_none=True)
                loss = loss_fn(model(x), y)
                t1 = time.perf_counter()
                loss.backward()
                t2 = time.perf_counter()
                optim.step()
                t3 = time.perf_counter()
                if step > 0:
                    fwd.append(t1 - t0)
                    bwd.append(t2 - t1)
                    upd.append(t3 - t2)
                    total.append(t3 - t0)
            t = median(total)
            row = {
                "engine": f"pytorch-{torch.__version__.split('+')[0]}",
                "trainable": what,
                "optimizer": opt,
                "batch": batch,
                "threads": threads,
                "images_per_second": batch / t,
                "ms": {"step": 1e3 * t, "forward": 1e3 * median(fwd), "backward": 1e3 * median(bwd),
                       "optimizer": 1e3 * median(upd)},
            }
            print(f"pytorch   {what:<9} {opt:<4}: {row['images_per_second']:6.1f} img/s  "
                  f"(step {row['ms']['step']:.0f} ms = forward {row['ms']['forward']:.0f} + backward "
                  f"{row['ms']['backward']:.0f} + optimizer {row['ms']['optimizer']:.0f})", file=sys.stderr)
            rows.append(row)
    json.dump(rows, open(out, "w"), indent=2)


if __name__ == "__main__":
    main()
