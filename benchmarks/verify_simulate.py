"""How close `progreid verify`'s estimate from N answered queries is to the true R1 of the same protocol.

    python benchmarks/verify_simulate.py DATA WEIGHTS [WEIGHTS ...] --out DIR [--queries 100] [--seeds 0 1 2]

For each seed: a verify session on DATA's query/gallery split (``--simulate``: ground truth answers, the
Market-1501 protocol), every model compared blind and paired, and ``progreid evaluate`` on all queries for
the true R1 and mAP. Prints one markdown row per (seed, model): the estimate with its 95% interval, the
true value, whether the interval holds it, and the paired difference B - A with its interval.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from progreid import api
from progreid.engine.evaluate import EvalOptions
from progreid.export.source import load_export_source


def true_metrics(data: str, weights: str, arch: str | None) -> dict[str, float]:
    from progreid.data.layouts import load_dataset
    from progreid.engine.evaluate import evaluate_split

    src = load_export_source(weights, None if Path(weights).is_dir() else arch)  # the model verify ranks with
    return evaluate_split(src.model, load_dataset(data), EvalOptions(size=src.size), progress=False).as_percent()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data")
    ap.add_argument("weights", nargs="+")
    ap.add_argument("--out", required=True)
    ap.add_argument("--arch", default="osnet_x0_25")
    ap.add_argument("--queries", type=int, default=100)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    args = ap.parse_args()
    truth = {w: true_metrics(args.data, w, args.arch) for w in args.weights}
    print("| seed | model | estimated R1 (95% CI) | true R1 | inside | estimated mAP@10 (95% CI) | true mAP | "
          "B - A R1 (95% CI) |")
    print("|---|---|---|---|---|---|---|---|")
    for seed in args.seeds:
        out = Path(args.out) / f"seed{seed}"
        api.verify(args.data, args.weights, out, args.queries, 10, args.arch, seed=seed, simulate=True,
                   progress=False, log=lambda s: None)
        est = api.verify_score(out)
        d = est["difference"]
        for i, m in enumerate(est["models"]):
            t = truth[m["weights"]]
            lo, hi = m["rank1_ci"]
            diff = f"{d['rank1']:+.1f} ({d['rank1_ci'][0]:.1f} to {d['rank1_ci'][1]:.1f})" if d and i == 1 else ""
            print(f"| {seed} | {Path(m['weights']).name} | {m['rank1']:.1f} ({lo:.1f}-{hi:.1f}) | {t['rank1']:.1f} | "
                  f"{'yes' if lo <= t['rank1'] <= hi else 'no'} | {m['mAP']:.1f} ({m['mAP_ci'][0]:.1f}-"
                  f"{m['mAP_ci'][1]:.1f}) | {t['mAP']:.1f} | {diff} |")
        print(f"<!-- {est['queries']} queries answered, seed {seed} -->")


if __name__ == "__main__":
    main()
