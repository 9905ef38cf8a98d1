"""One self-contained HTML page per run: config, per-round table, curves, ranked lists, clusters.

Images are embedded as small base64 JPEG thumbnails and the page has no script and no external
asset, so it opens from disk, in any browser, without a server.
"""

from __future__ import annotations

import base64
import html
import io
import json
from pathlib import Path
from typing import Any

from PIL import Image

from progreid.engine.rundir import RunDir
from progreid.errors import ProgReIDError
from progreid.models.checkpoint import atomic_write
from progreid.report.artifacts import CLUSTERS_FILE, RANKED_FILE
from progreid.report.plots import plot_rounds

CSS = """
body{font-family:system-ui,sans-serif;margin:24px;color:#222;max-width:1200px}
h1{font-size:22px}h2{font-size:18px;margin-top:28px;border-bottom:1px solid #ddd}
table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ccc;padding:3px 7px;text-align:right}
th{background:#f3f3f3}pre{background:#f7f7f7;padding:10px;font-size:12px;max-height:320px;overflow:auto}
.row{display:flex;align-items:flex-start;gap:4px;margin:6px 0}.row .label{width:150px;font-size:12px}
figure{margin:0;text-align:center;font-size:10px}figure img{display:block;width:48px;height:96px}
.q img{border:3px solid #333}.match img{border:3px solid #1a9c3a}.wrong img{border:3px solid #d22}
.junk img{border:3px solid #999;opacity:.6}.reliable img{border:3px solid #1a9c3a}.rejected img{border:3px dashed #d22}
.sep{width:14px}
"""


def thumbnail(path: str, size: tuple[int, int] = (48, 96)) -> str:
    try:
        with Image.open(path) as im:
            im = im.convert("RGB").resize(size, Image.BILINEAR)
            buf = io.BytesIO()
            im.save(buf, format="JPEG", quality=80)
    except OSError:
        return ""
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode()


def _img(path: str, css: str, caption: str) -> str:
    src = thumbnail(path)
    alt = html.escape(Path(path).name)
    return f'<figure class="{css}"><img src="{src}" alt="{alt}" title="{alt}"><figcaption>{html.escape(caption)}</figcaption></figure>'


def _table(rows: list[dict[str, Any]]) -> str:
    cols = ["round", "k", "k_auto", "eps", "outlier_fraction", "must_links", "reliable", "reliable_fraction", "rank1",
            "rank5", "mAP", "mINP", "center_shift", "purity", "reliable_pair_precision", "train_loss"]
    cols = [c for c in cols if any(c in r for r in rows)]
    head = "".join(f"<th>{c}</th>" for c in cols) + "<th>seconds per stage</th>"
    body = []
    for r in rows:
        cells = "".join(f"<td>{r.get(c, '')}</td>" for c in cols)
        secs = ", ".join(f"{k} {v:.0f}" for k, v in r.get("seconds", {}).items())
        body.append(f"<tr>{cells}<td style='text-align:left'>{secs}</td></tr>")
    return f'<table id="rounds"><tr>{head}</tr>{"".join(body)}</table>'


def _ranked(data: dict[str, Any]) -> str:
    parts = [f"<p>After round {data['round']}. Border: green = true match (other camera), red = wrong identity, "
             "grey = same identity and camera (ignored by the protocol).</p>"]
    for q in data["queries"]:
        cells = [_img(q["path"], "q", f"query id {q['pid']} c{q['camid']}"), '<div class="sep"></div>']
        cells += [_img(g["path"], g["kind"], f"{i + 1}: {g['dist']:.2f}") for i, g in enumerate(q["gallery"])]
        parts.append(f'<div class="row ranked"><div class="label">{q["n_matches"]} true matches in the gallery</div>'
                     f'{"".join(cells)}</div>')
    return "".join(parts)


def _clusters(data: dict[str, Any]) -> str:
    parts = [f"<p>Round {data['round']}: members of some clusters; green = selected as reliable, "
             "dashed red = rejected this round.</p>"]
    for c in data["clusters"]:
        cells = [_img(m["path"], "reliable" if m["reliable"] else "rejected",
                      f"c{m['camid']}" + (f" f{m['frame']}" if m["frame"] is not None else "")) for m in c["members"]]
        parts.append(f'<div class="row cluster"><div class="label">cluster {c["cluster"]}: {c["reliable"]}/{c["size"]} '
                     f'reliable</div>{"".join(cells)}</div>')
    return "".join(parts)


def build_report(run_path: str | Path, title: str = "") -> Path:
    """Write ``report.html`` into the run folder and return its path."""
    run = RunDir(run_path)
    if not run.metrics_file.exists():
        raise ProgReIDError(f"{run.path}: no metrics.jsonl: not a progreid run folder (or no round finished yet).")
    rows = run.metrics()
    curves = run.path / "curves.png"
    plot_rounds(rows, curves, title)
    config = run.config_file.read_text() if run.config_file.exists() else ""
    sections = [f"<h1>{html.escape(title or 'progreid run: ' + run.path.name)}</h1>",
                "<h2>Rounds</h2>", _table(rows),
                "<h2>Curves</h2>",
                f'<img id="curves" alt="curves per round" style="max-width:100%" src="data:image/png;base64,'
                f'{base64.b64encode(curves.read_bytes()).decode()}">']
    if (run.path / RANKED_FILE).exists():
        sections += ["<h2>Ranked lists</h2>", _ranked(json.loads((run.path / RANKED_FILE).read_text()))]
    if (run.path / CLUSTERS_FILE).exists():
        sections += ["<h2>Clusters: reliable and rejected members</h2>",
                     _clusters(json.loads((run.path / CLUSTERS_FILE).read_text()))]
    sections += ["<h2>Configuration</h2>", f"<pre>{html.escape(config)}</pre>"]
    page = (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{html.escape(run.path.name)}</title>'
            f'<style>{CSS}</style></head><body>{"".join(sections)}</body></html>')
    out = run.path / "report.html"
    atomic_write(out, lambda t: Path(t).write_text(page, encoding="utf-8"))
    return out
