"""Unlabeled adaptation against its ceiling: one table row per group of run folders (seeds of one method
on one target), with the mean and range of their final mAP, that mean as a share of the oracle's on the
same target, the cluster count per round against the number of people (the run's ``people`` diagnostic),
the cameras per reliable cluster per round (the true number shows in the oracle's row), GeM's learnt exponent
per round where a run pools with it, and when a run first gained 15 mAP over direct transfer (minutes of its own stages, the round-0 test
included).

    python benchmarks/ceiling.py LABEL=runs/a_s0,runs/a_s1 oracle=runs/oracle_s0 ... [--oracle oracle]
        [--known market1501-mini=55.7:29.6]

Groups are ``label=run,run,...`` (split at the last ``=``); ``--oracle`` names the group every other group
on the same target is divided by (default: the group whose label is ``oracle``). The number of people comes
from the rows' ground-truth diagnostics: for the table, never something a method sees. ``--known
TARGET=ORACLE:DIRECT`` gives a target's oracle and direct-transfer mAP where no oracle folder is at hand.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import yaml

from progreid.models.checkpoint import read_state_dict
from progreid.models.pooling import is_gem_key

GAIN = 15.0  # mAP points over direct transfer: the "accuracy per minute" mark of issue 28


def rows(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]


def target_of(run: Path) -> str:
    return yaml.safe_load((run / "config.yaml").read_text())["data"]["target"]


def gem_exponents(run: Path, rounds: list[int]) -> str:
    """GeM's exponent in each round's checkpoint, or ``-`` for a run that pools by average."""
    values = []
    for r in rounds:
        state = read_state_dict(run / "checkpoints" / f"round_{r:02d}.safetensors")
        values += [f"{v.item():.2f}" for k, v in state.items() if is_gem_key(k)]
    return ", ".join(values) or "-"


def first_gain(run_rows: list[dict], base: float) -> str:
    """``round r, m min``: the first round at +GAIN mAP over ``base``, minutes of stages up to its test."""
    minutes = 0.0
    for r in run_rows:
        minutes += sum(r["seconds"].values()) / 60
        if "mAP" in r and r["mAP"] >= base + GAIN:
            return f"round {r['round']}, {minutes:.1f} min"
    return "not reached"


def summarize(label: str, runs: list[Path]) -> dict:
    per_run = [rows(r) for r in runs]
    final = [next(r["mAP"] for r in reversed(rs) if "mAP" in r) for rs in per_run]
    ks = [[r["k"] for r in rs if "k" in r] for rs in per_run]
    people = next((r["people"] for r in per_run[0] if "people" in r), "?")
    return {"label": label, "target": Path(target_of(runs[0])).name, "people": people,
            "n": len(runs), "mean": float(np.mean(final)), "lo": min(final), "hi": max(final),
            "curve": [r["mAP"] for r in per_run[0] if "mAP" in r], "k": ks[0],
            "minutes": float(np.mean([sum(sum(r["seconds"].values()) for r in rs) / 60 for rs in per_run])),
            "rows": per_run[0],
            "cameras": [r["reliable_cameras_per_cluster"] for r in per_run[0] if "reliable_cameras_per_cluster" in r],
            "gem": gem_exponents(runs[0], [r["round"] for r in per_run[0] if r["round"] > 0])}


def table(groups: list[dict], oracle_label: str, known: dict[str, tuple[float, float]] | None = None) -> str:
    known = known or {}
    oracle = {t: o for t, (o, _) in known.items()}
    oracle.update({g["target"]: g["mean"] for g in groups if g["label"] == oracle_label})
    # direct transfer: the oracle's round 0 (the source model as it is; GeM changes a run's own round 0)
    direct = {t: d for t, (_, d) in known.items()}
    direct.update({g["target"]: g["rows"][0]["mAP"] for g in groups if g["label"] == oracle_label})
    out = ["| target | method | seeds | final mAP (range) | % of oracle | mAP per round (first seed) | "
           "K per round / people | cameras per cluster | GeM exponent | minutes | first +15 mAP over direct transfer |",
           "|---|---|---|---|---|---|---|---|---|---|---|"]
    for g in groups:
        spread = f" ({g['lo']:.1f}-{g['hi']:.1f})" if g["n"] > 1 else ""
        share = f"{100 * g['mean'] / oracle[g['target']]:.1f}" if g["target"] in oracle else "-"
        k = ", ".join(str(v) for v in g["k"]) or "-"
        out.append(f"| {g['target']} | {g['label']} | {g['n']} | {g['mean']:.1f}{spread} | {share} | "
                   f"{' → '.join(f'{m:.1f}' for m in g['curve'])} | {k} / {g['people']} | "
                   f"{', '.join(f'{c:.2f}' for c in g['cameras']) or '-'} | {g['gem']} | {g['minutes']:.0f} | "
                   f"{first_gain(g['rows'], direct.get(g['target'], g['rows'][0]['mAP']))} |")
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("groups", nargs="+", help="label=run,run,...")
    ap.add_argument("--oracle", default="oracle")
    ap.add_argument("--known", action="append", default=[], help="TARGET=ORACLE_MAP:DIRECT_MAP")
    args = ap.parse_args()
    known = {}
    for spec in args.known:
        name, _, values = spec.partition("=")
        o, _, d = values.partition(":")
        known[name] = (float(o), float(d))
    groups = []
    for spec in args.groups:
        label, _, paths = spec.rpartition("=")
        groups.append(summarize(label, [Path(p) for p in paths.split(",")]))
    print(table(groups, args.oracle, known))


if __name__ == "__main__":
    main()
