"""Sensitivity sweeps (the TCUL paper's Fig. 4): one adapt run per value, then a plot and a table.

    python benchmarks/sweep.py --method tcul --key select.frame_window --values 25 50 100 200 \
        --target ../shared/data/market1501-mini --weights ../shared/data/weights/osnet_x0_25_msmt17.pth \
        --out runs/sweep_fr --set loop.max_rounds=2
Writes OUT/sweep.png and OUT/sweep.md (final R1/mAP and reliable precision per value) and prints the table.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--method", default="tcul")
    p.add_argument("--preset", default="quick")
    p.add_argument("--key", required=True, help="config key to sweep, e.g. select.frame_window or cluster.k")
    p.add_argument("--values", nargs="+", required=True)
    p.add_argument("--target", required=True)
    p.add_argument("--weights", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--set", dest="overrides", action="append", default=[])
    args = p.parse_args()

    from progreid.config import load_config
    from progreid.engine.adapt import adapt

    out = Path(args.out)
    results = []
    for v in args.values:
        run = out / f"{args.key.replace('.', '_')}_{v}"
        cfg = load_config(args.method, args.preset, overrides=[f"data.target={args.target}",
                                                                f"model.weights={args.weights}", *args.overrides,
                                                                f"{args.key}={v}"])
        rows = adapt(cfg, run, resume=(run / "state.json").exists(), progress=False)
        last = rows[-1]
        results.append({"value": v, "rank1": last["rank1"], "mAP": last["mAP"], "direct_mAP": rows[0]["mAP"],
                        "reliable_fraction": last["reliable_fraction"],
                        "reliable_pair_precision": last.get("reliable_pair_precision")})
    (out / "sweep.json").write_text(json.dumps(results, indent=2))

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    xs = list(range(len(results)))
    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    ax.plot(xs, [r["mAP"] for r in results], "o-", label="mAP")
    ax.plot(xs, [r["rank1"] for r in results], "s-", label="rank-1")
    ax.axhline(results[0]["direct_mAP"], color="grey", ls=":", label="direct transfer mAP")
    ax.set_xticks(xs, [str(r["value"]) for r in results])
    ax.set(xlabel=args.key, ylabel="%", title=f"{args.method.upper()} on {Path(args.target).name}")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "sweep.png", dpi=90)
    table = [f"| {args.key} | R1 | mAP | reliable % | reliable precision % |", "|---|---|---|---|---|"]
    for r in results:
        prec = "" if r["reliable_pair_precision"] is None else f"{100 * r['reliable_pair_precision']:.0f}"
        table.append(f"| {r['value']} | {r['rank1']:.1f} | {r['mAP']:.1f} | {100 * r['reliable_fraction']:.0f} | {prec} |")
    (out / "sweep.md").write_text("\n".join(table) + "\n")
    print("\n".join(table))


if __name__ == "__main__":
    main()
