"""One table of what a GPU changes, in under 8 minutes on one GPU (a CPU fallback where there is none):

1. the tests that take a device (``tests/test_device.py``) on it;
2. OSNet x0.25 and ResNet-50 training (``fit``: augmentation from the uint8 cache included) and
   extraction throughput, each against the model-only limit (the same steps on ready batches);
3. one ``cc`` round on market1501-mini (``--preset quick``), seconds per stage;
4. torchrun ``--nproc_per_node 1`` with nccl (gloo on CPU): the collectives progreid uses.

    bash benchmarks/gpu_check.sh            # prints the table; --write also puts it in BENCHMARKS.md
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"


def sync(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize()


def throughput(arch: str, batch: int, n_batches: int, device) -> dict:
    """Training (fit vs model-only) and extraction (extract_features vs model-only) images per second."""
    import torch

    from progreid.config import TrainConfig
    from progreid.data.transforms import AugmentConfig, augment, preprocess
    from progreid.engine.device import autocast
    from progreid.engine.extract import extract_features
    from progreid.engine.fit import fit, make_classifier
    from progreid.losses import cross_entropy_smooth
    from progreid.models import build_model

    images = np.random.default_rng(0).integers(0, 255, (batch * n_batches, 256, 128, 3), dtype=np.uint8)
    labels = np.arange(len(images)) % 50
    cfg = TrainConfig(epochs=1, batch_size=batch, lr=1e-3)
    model = build_model(arch)
    fit(model, images[:batch * 2], np.arange(batch * 2), labels[:batch * 2], cfg, device, 0, progress=False)
    stats = fit(model, images, np.arange(len(images)), labels, cfg, device, 0, progress=False)
    model = build_model(arch).train().to(device, memory_format=torch.channels_last)
    clf = make_classifier(model.feature_dim, 50, 0.5).to(device)
    opt = torch.optim.SGD(list(model.parameters()) + list(clf.parameters()), lr=1e-3, momentum=0.9)
    gen = torch.Generator().manual_seed(0)
    xs = [augment(images[i * batch:(i + 1) * batch], AugmentConfig(), gen, device) for i in range(n_batches)]
    ys = [torch.as_tensor(labels[i * batch:(i + 1) * batch], device=device) for i in range(n_batches)]

    def train_steps() -> None:
        for x, y in zip(xs, ys):
            with autocast(device):
                loss = cross_entropy_smooth(clf(model(x)).float(), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
        sync(device)

    def timed(fn) -> float:
        fn()  # warm-up
        t = time.perf_counter()
        fn()
        return time.perf_counter() - t

    train_limit = len(images) / timed(train_steps)
    model.eval()
    ext_batch = 256 if device.type == "cuda" else 32
    ready = [preprocess(images[s:s + ext_batch], device) for s in range(0, len(images), ext_batch)]

    def forward_only() -> None:
        with torch.inference_mode(), autocast(device):
            for x in ready:
                model(x)
        sync(device)

    extract_limit = len(images) / timed(forward_only)
    ext = timed(lambda: (extract_features(model, images, device=device, progress=False), sync(device)))
    return {"arch": arch, "batch": batch, "fit": stats.images_per_second, "fit_limit": train_limit,
            "extract": len(images) / ext, "extract_limit": extract_limit}


def device_tests(device: str) -> str:
    res = subprocess.run([sys.executable, "-m", "pytest", "-q", "tests/test_device.py", "--device", device],
                         cwd=ROOT, capture_output=True, text=True)
    return (res.stdout.strip().splitlines() or ["no output"])[-1]


def cc_round(device: str) -> dict:
    data = SHARED / "market1501-mini"
    if not data.is_dir():
        return {"skipped": f"{data} is absent"}
    out = Path(tempfile.mkdtemp(prefix="gpu_check_cc_"))
    cmd = [sys.executable, "-m", "progreid", "-q", "adapt", "--method", "cc", "--preset", "quick", "--target", str(data),
           "--weights", str(SHARED / "weights" / "osnet_x0_25_msmt17.pth"), "--out", str(out / "run"), "--device", device,
           "--set", "loop.max_rounds=1"]
    t = time.perf_counter()
    res = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    if res.returncode:
        return {"failed": res.stderr.strip().splitlines()[-1:]}
    rows = [json.loads(line) for line in (out / "run" / "metrics.jsonl").read_text().splitlines()]
    return {"wall_s": round(time.perf_counter() - t, 1), "round0": rows[0]["seconds"], "round1": rows[1]["seconds"],
            "mAP": rows[1].get("mAP")}


NCCL_CHECK = r"""
import torch, torch.distributed as dist
from progreid import distributed
dev = distributed.setup("{device}")
if not dist.is_initialized():
    dist.init_process_group("nccl" if dev.startswith("cuda") else "gloo")
t = torch.ones(4, device=dev)
dist.all_reduce(t); dist.broadcast(t, 0)
parts = [torch.empty_like(t)]; dist.all_gather(parts, t)
box = [{{"ok": 1}}]; dist.broadcast_object_list(box, src=0)
print("collectives ok on", dist.get_backend(), "world", dist.get_world_size())
dist.destroy_process_group()
"""


def torchrun_check(device: str) -> str:
    with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as fh:
        fh.write(NCCL_CHECK.format(device=device))
    res = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "1",
                          fh.name], cwd=ROOT, capture_output=True, text=True, timeout=300)
    lines = [line for line in res.stdout.splitlines() if "collectives ok" in line]
    return lines[-1] if lines and res.returncode == 0 else f"FAILED: {res.stderr.strip().splitlines()[-1:]}"


def render(device: str, name: str, tests: str, speeds: list[dict], cc: dict, nccl: str) -> str:
    rows = [f"| device tests (`pytest tests/test_device.py --device {device}`) | {tests} |"]
    for s in speeds:
        rows.append(f"| {s['arch']} training, batch {s['batch']} (img/s: fit / model-only, share) | "
                    f"{s['fit']:.0f} / {s['fit_limit']:.0f} ({100 * s['fit'] / s['fit_limit']:.0f}%) |")
        rows.append(f"| {s['arch']} extraction (img/s: extract_features / model-only, share) | "
                    f"{s['extract']:.0f} / {s['extract_limit']:.0f} ({100 * s['extract'] / s['extract_limit']:.0f}%) |")
    if "wall_s" in cc:
        stages = ", ".join(f"{k} {v:.0f} s" for k, v in cc["round1"].items())
        rows.append(f"| one cc round, market1501-mini quick (seconds per stage) | {stages}; round 0 test "
                    f"{cc['round0'].get('evaluate', 0):.0f} s; mAP after it {cc['mAP']}; {cc['wall_s']} s wall |")
    else:
        rows.append(f"| one cc round, market1501-mini quick | {cc} |")
    rows.append(f"| torchrun --nproc_per_node 1 | {nccl} |")
    return (f"## 11. GPU check (`bash benchmarks/gpu_check.sh`)\nMachine: {name}.\n\n| check | result |\n|---|---|\n"
            + "\n".join(rows) + "\n")


def main() -> None:
    import torch

    sys.path.insert(0, str(ROOT))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help="also write the table into BENCHMARKS.md")
    args = parser.parse_args()
    cuda = torch.cuda.is_available()
    device = "cuda" if cuda else "cpu"
    dev = torch.device(device)
    name = torch.cuda.get_device_name(0) if cuda else f"no GPU: the CPU fallback ({os.cpu_count()} cores)"
    print(f"gpu_check on {name}", flush=True)
    tests = device_tests(device)
    print("device tests:", tests, flush=True)
    sizes = (("osnet_x0_25", 256, 12), ("resnet50", 64, 12)) if cuda else (("osnet_x0_25", 32, 4), ("resnet50", 16, 2))
    speeds = []
    for arch, batch, n in sizes:
        speeds.append(throughput(arch, batch, n, dev))
        print(json.dumps(speeds[-1]), flush=True)
    cc = cc_round(device)
    print("cc round:", cc, flush=True)
    nccl = torchrun_check(device)
    table = render(device, name, tests, speeds, cc, nccl)
    print(table)
    if args.write:
        from benchmarks.bench import write_section

        write_section("gpu", table)


if __name__ == "__main__":
    main()
