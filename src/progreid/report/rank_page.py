"""Ranked lists for plain folders of crops, as one self-contained page (torchreid's ``visrank``, in HTML).

No labels are needed: the page shows what the model ranks first for each query, which is how one
looks at an adapted model on footage nobody labeled.
"""

from __future__ import annotations

import html
from pathlib import Path

import numpy as np

from progreid.evaluation.distance import pairwise_distance
from progreid.models.checkpoint import atomic_write
from progreid.report.html import CSS, _img


def write_rank_page(out: str | Path, query: list[str], gallery: list[str], qf: np.ndarray, gf: np.ndarray,
                    top: int = 10, title: str = "") -> Path:
    """``out``: an HTML page with, per query, the ``top`` nearest gallery crops (cosine distance)."""
    dist = pairwise_distance(qf, gf).numpy()
    rows = []
    for q, row in zip(query, dist):
        order = np.argsort(row, kind="stable")[:top]
        cells = [_img(q, "q", "query"), '<div class="sep"></div>']
        cells += [_img(gallery[j], "ranked", f"{i + 1}: {row[j]:.2f}") for i, j in enumerate(order)]
        rows.append(f'<div class="row ranked"><div class="label">{html.escape(Path(q).name)}</div>{"".join(cells)}</div>')
    head = html.escape(title or "progreid ranked lists")
    page = (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{head}</title><style>{CSS}</style>'
            f'</head><body><h1>{head}</h1><p>{len(query)} queries, {len(gallery)} gallery crops; each row: the query, '
            f'then its {top} nearest gallery crops with their cosine distance.</p>{"".join(rows)}</body></html>')
    out = Path(out)
    atomic_write(out, lambda t: Path(t).write_text(page, encoding="utf-8"))
    return out
