"""Does ``label_free_score`` pick the round a labeled test would? Per run folder (and over all runs on
one target): Spearman correlation of the score with the true mAP over the rounds that have both, and
whether the best round by the score is within 1 mAP of the best true round.

    python benchmarks/label_free_check.py runs/A runs/B ... [--signal label_free_cycle]

``--signal`` (default ``label_free_cross_camera``, what ``label_free_score`` is) reads any signal of the
rows, so runs made before the score changed are read alike.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from scipy.stats import spearmanr


def rounds(run: Path, signal: str) -> list[dict]:
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]
    return [r for r in rows if "mAP" in r and r.get(signal) is not None]


def check(name: str, rows: list[dict], signal: str) -> str:
    score = [r[signal] for r in rows]
    mAP = [r["mAP"] for r in rows]
    rho = spearmanr(score, mAP).statistic if len(rows) > 2 else float("nan")
    by_score = max(rows, key=lambda r: (r[signal], r["round"]))
    best = max(mAP)
    return (f"| {name} | {len(rows)} | {', '.join(f'{s:.3f}' for s in score)} | {', '.join(f'{m:.1f}' for m in mAP)} | "
            f"{rho:.2f} | round {by_score['round']} ({by_score['mAP']:.1f}) | {best:.1f} | "
            f"{'yes' if best - by_score['mAP'] <= 1 else 'no'} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+", type=Path)
    ap.add_argument("--signal", default="label_free_cross_camera")
    args = ap.parse_args()
    print("| run | rounds with mAP | signal | true mAP | Spearman | best by score (its mAP) | best mAP | within 1 |")
    print("|---|---|---|---|---|---|---|---|")
    for run in args.runs:
        print(check(run.name, rounds(run, args.signal), args.signal))


if __name__ == "__main__":
    main()
