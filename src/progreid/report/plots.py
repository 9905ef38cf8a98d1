"""Per-round curves as PNG: mAP/R1 and the reliable fraction (the PUL paper's Fig. 5d-f)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from progreid.models.checkpoint import atomic_write


def plot_rounds(rows: list[dict[str, Any]], path: str | Path, title: str = "") -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    ev = [r for r in rows if "mAP" in r]
    axes[0].plot([r["round"] for r in ev], [r["mAP"] for r in ev], "o-", label="mAP")
    axes[0].plot([r["round"] for r in ev], [r["rank1"] for r in ev], "s--", label="rank-1")
    axes[0].set(xlabel="round", ylabel="%", title="target accuracy")
    axes[0].legend()
    ad = [r for r in rows if r["round"] > 0]
    axes[1].plot([r["round"] for r in ad], [100 * r["reliable_fraction"] for r in ad], "o-", label="reliable")
    if ad and "reliable_pair_precision" in ad[0]:
        axes[1].plot([r["round"] for r in ad], [100 * r["reliable_pair_precision"] for r in ad], "s--",
                     label="pair precision (diagnostic)")
    axes[1].set(xlabel="round", ylabel="%", title="reliable samples")
    axes[1].legend()
    stages = sorted({s for r in rows for s in r.get("seconds", {})})
    bottom = [0.0] * len(rows)
    for stage in stages:
        vals = [r.get("seconds", {}).get(stage, 0.0) for r in rows]
        axes[2].bar([r["round"] for r in rows], vals, bottom=bottom, label=stage)
        bottom = [b + v for b, v in zip(bottom, vals)]
    axes[2].set(xlabel="round", ylabel="seconds", title="time per stage")
    if stages:
        axes[2].legend(fontsize=8)
    for ax in axes:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=90))
    plt.close(fig)
