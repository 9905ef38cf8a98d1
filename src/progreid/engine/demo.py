"""``progreid demo``: the whole job on embedded synthetic data, for a machine with nothing else.

Generates a source and a target camera network, trains a small source model from scratch, then
runs direct transfer, PUL, TCUL, cc (cluster contrast) and tcc (temporal cluster contrast, the
strongest adapter measured on market1501-mini; BENCHMARKS.md) on the (unlabeled) target and prints
one comparison table.
"""

from __future__ import annotations

import time
from importlib import resources
from pathlib import Path
from typing import Any, Callable

import yaml

from progreid.config import load_config
from progreid.data.synth import generate_domain
from progreid.engine.adapt import adapt
from progreid.engine.source import train_source
from progreid.errors import ProgReIDError


DEMO_METHODS = ("pul", "tcul", "cc", "tcc")


def demo_settings(quick: bool) -> dict[str, Any]:
    spec = yaml.safe_load(resources.files("progreid").joinpath("configs", "demo.yaml").read_text())
    return spec["quick" if quick else "default"]


def run_demo(out: str | Path = "progreid-demo", quick: bool = False, seed: int = 0, progress: bool = True,
             log: Callable[[str], None] = print) -> list[dict[str, Any]]:
    """Run the demo into ``out``; returns the table rows (method, R1, mAP, reliable fraction, seconds)."""
    out = Path(out)
    if (out / "summary.txt").exists() or (out / "source_model").exists():
        raise ProgReIDError(f"{out}: already holds a demo. Fix: remove it or pass --out elsewhere.")
    s = demo_settings(quick)
    syn = s["synth"]
    size = (syn["height"], syn["width"])
    start = time.perf_counter()
    log(f"generating synthetic source ({syn['source_ids']} ids) and target ({syn['target_ids']} ids) networks ...")
    source = generate_domain(out / "data" / "source", "source", syn["source_ids"], syn["cameras"], seed=seed,
                             size=size, test_fraction=0.2)
    target = generate_domain(out / "data" / "target", "target", syn["target_ids"], syn["cameras"], seed=seed,
                             size=size, test_fraction=0.5)
    common = [*s["common"], f"seed={seed}"]
    t0 = time.perf_counter()
    log("training the source model (OSNet x0.25, from scratch, labeled source) ...")
    train_cfg = load_config("train", "quick", overrides=[*common, *s["train"], f"data.source={source}"])
    train_source(train_cfg, out / "source_model", progress=progress, log=log)
    train_seconds = time.perf_counter() - t0
    weights = out / "source_model" / "model.safetensors"
    rows: list[dict[str, Any]] = []
    for method in DEMO_METHODS:
        t0 = time.perf_counter()
        log(f"adapting with {method.upper()} on the unlabeled target ...")
        cfg = load_config(method, "quick", overrides=[*common, *s[method], f"data.target={target}",
                                                      f"model.weights={weights}"])
        result = adapt(cfg, out / method, progress=progress, log=log)
        if not rows:
            rows.append({"method": "direct transfer", "rank1": result[0]["rank1"], "mAP": result[0]["mAP"],
                         "reliable_fraction": None, "seconds": round(train_seconds, 1)})
        rows.append({"method": method.upper(), "rank1": result[-1]["rank1"], "mAP": result[-1]["mAP"],
                     "reliable_fraction": result[-1]["reliable_fraction"],
                     "seconds": round(time.perf_counter() - t0, 1), "report": str(out / method / "report.html")})
    table = format_table(rows)
    (out / "summary.txt").write_text(table + f"\ntotal {time.perf_counter() - start:.0f} s\n")
    log(table)
    reports = ", ".join(str(out / m / "report.html") for m in DEMO_METHODS)
    log(f"total {time.perf_counter() - start:.0f} s; reports: {reports}")
    return rows


def format_table(rows: list[dict[str, Any]]) -> str:
    lines = [f"{'method':<16} {'R1':>6} {'mAP':>6} {'reliable':>9} {'time (s)':>9}"]
    for r in rows:
        rel = "-" if r["reliable_fraction"] is None else f"{100 * r['reliable_fraction']:.0f}%"
        lines.append(f"{r['method']:<16} {r['rank1']:>6.1f} {r['mAP']:>6.1f} {rel:>9} {r['seconds']:>9.0f}")
    lines.append("(direct transfer time = source training)")
    return "\n".join(lines)
