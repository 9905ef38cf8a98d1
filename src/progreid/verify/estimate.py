"""R1 and mAP@k per model from a person's answers, with 95% bootstrap intervals, and the paired
difference between models on the same queries.

Relevance is pooled (as TREC pools judgements): a candidate is a match when the person confirmed it,
whichever model's list it came from, so every model is scored against the same judgements. R1: the
model's first candidate is a match. AP@k: average precision over the model's top k, divided by the
number of confirmed matches for the query (all models' lists together); "none of these" scores 0 for
every model (a match beyond every model's top k, or no match at all, cannot be told apart). Intervals:
percentile bootstrap over queries (2000 resamples, seeded), the same resamples for every model, so a
difference's interval is paired.
"""

from __future__ import annotations

import numpy as np

BOOTSTRAP = 2000


def per_query(ranked: list[int], matches: set[int]) -> tuple[float, float]:
    """(R1, AP@k) of one ranked list against the confirmed matches."""
    if not matches:
        return 0.0, 0.0
    hits, precision_sum = 0, 0.0
    for i, cand in enumerate(ranked):
        if cand in matches:
            hits += 1
            precision_sum += hits / (i + 1)
    return float(bool(ranked) and ranked[0] in matches), precision_sum / len(matches)


def interval(values: np.ndarray, resamples: np.ndarray) -> list[float]:
    means = values[resamples].mean(1)
    return [round(float(np.percentile(means, 2.5)) * 100, 1), round(float(np.percentile(means, 97.5)) * 100, 1)]


def estimate(models: list[str], ranked: dict[int, list[list[int]]], judged: dict[int, set[int]],
             seed: int = 0) -> dict[str, object]:
    """The table ``verify --score --json`` prints: {"queries", "models": [...], "difference", "differences"}.
    ``ranked``: query -> per model its top-k list; ``judged``: query -> confirmed matches."""
    qs = sorted(judged)
    out: dict[str, object] = {"queries": len(qs), "models": [], "differences": []}
    if not qs:
        out["models"] = [{"weights": m, "rank1": None, "rank1_ci": None, "mAP": None, "mAP_ci": None} for m in models]
        out["difference"] = None
        return out
    scores = np.array([[per_query(ranked[q][m], judged[q]) for q in qs] for m in range(len(models))])  # (M, Q, 2)
    resamples = np.random.default_rng(seed).integers(0, len(qs), (BOOTSTRAP, len(qs)))
    for m, name in enumerate(models):
        r1, ap = scores[m, :, 0], scores[m, :, 1]
        out["models"].append({"weights": name, "rank1": round(float(r1.mean()) * 100, 1), "rank1_ci": interval(r1, resamples),
                              "mAP": round(float(ap.mean()) * 100, 1), "mAP_ci": interval(ap, resamples)})
    for m in range(1, len(models)):
        d = scores[m] - scores[0]
        out["differences"].append({"a": models[0], "b": models[m],
                                   "rank1": round(float(d[:, 0].mean()) * 100, 1), "rank1_ci": interval(d[:, 0], resamples),
                                   "mAP": round(float(d[:, 1].mean()) * 100, 1), "mAP_ci": interval(d[:, 1], resamples)})
    out["difference"] = out["differences"][0] if out["differences"] else None
    return out


def format_estimate(est: dict[str, object]) -> str:
    """The table as text: one line per model, then each paired difference in words."""
    lines = [f"{est['queries']} queries answered"]
    for i, m in enumerate(est["models"]):
        label = chr(ord("A") + i)
        if m["rank1"] is None:
            lines.append(f"  {label} {m['weights']}: no answers yet")
            continue
        lines.append(f"  {label} {m['weights']}: R1 {m['rank1']:.1f} (95% CI {m['rank1_ci'][0]:.1f}-{m['rank1_ci'][1]:.1f})"
                     f"  mAP@k {m['mAP']:.1f} (95% CI {m['mAP_ci'][0]:.1f}-{m['mAP_ci'][1]:.1f})")
    for i, d in enumerate(est["differences"], 1):
        lines.append("  " + describe_difference(d, chr(ord("A") + i), est["queries"]))
    return "\n".join(lines)


def describe_difference(d: dict[str, object], label: str, n: int) -> str:
    lo, hi = d["rank1_ci"]
    if lo > 0 or hi < 0:
        word = "better" if d["rank1"] > 0 else "worse"
        return (f"{label} is {word} than A by {abs(d['rank1']):.1f} R1 points (95% CI {lo:.1f} to {hi:.1f}) "
                f"after {n} queries")
    return f"{label} - A: {d['rank1']:+.1f} R1 points (95% CI {lo:.1f} to {hi:.1f}): not yet told apart after {n} queries"
