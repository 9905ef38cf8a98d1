"""The verification page: a local Flask app (the ``ui`` extra) over a verify folder.

One query at a time beside its merged, shuffled candidates; the person clicks the crops that show the
same person and submits, or answers "none of these", skips, or undoes the last answer. Each answer is
appended to ``verify.jsonl`` before the reply, and the live estimate the page shows is the one
``verify --score`` prints (the same function on the same file). Images are served by index into the
session's list only: no path from the browser is ever opened. Plain HTML and JS, nothing fetched from
the internet.
"""

from __future__ import annotations

import threading
from pathlib import Path

from progreid.errors import ProgReIDError
from progreid.verify.answers import append_answer, current_answers, next_query
from progreid.verify.session import Session
from progreid.verify.score import score


def create_app(session: Session, folder: str | Path):
    try:
        from flask import Flask, abort, jsonify, request, send_file
    except ImportError:
        raise ProgReIDError("the verify page needs Flask. Fix: pip install 'progreid[ui]'.") from None
    app = Flask("progreid.verify")
    lock = threading.Lock()  # one writer at a time, whatever the server's threads
    folder = Path(folder)

    def state(standing: dict[int, dict[str, object]] | None = None) -> dict[str, object]:
        standing = current_answers(folder) if standing is None else standing
        q = next_query(len(session.queries), standing)
        current = None
        if q is not None:
            item = session.queries[q]
            current = {"index": q, "query": item.query, "candidates": item.shown}
        return {"total": len(session.queries), "answered": len(standing), "current": current,
                "can_undo": bool(standing), "estimate": score(session, folder, standing)}

    @app.get("/")
    def page():
        return PAGE

    @app.get("/api/state")
    def get_state():
        return jsonify(state())

    @app.get("/img/<int:i>")
    def image(i: int):
        if not 0 <= i < len(session.images):
            abort(404)
        return send_file(Path(session.images[i]).resolve())

    @app.post("/api/answer")
    def answer():
        body = request.get_json(force=True, silent=True) or {}
        with lock:
            standing = current_answers(folder)
            q = body.get("index")
            if q != next_query(len(session.queries), standing):
                return jsonify({"error": "that query is not the one waiting (answered in another tab?)",
                                **state(standing)}), 409
            shown = set(session.queries[q].shown)
            if body.get("skip"):
                append_answer(folder, {"q": q, "skip": True})
            else:
                matches = [int(m) for m in body.get("matches", []) if int(m) in shown]
                append_answer(folder, {"q": q, "matches": matches, "none": not matches})
            return jsonify(state())

    @app.post("/api/undo")
    def undo():
        with lock:
            standing = current_answers(folder)
            if standing:
                append_answer(folder, {"undo": next(reversed(standing))})
            return jsonify(state())

    return app


def serve(session: Session, folder: str | Path, port: int = 8765, host: str = "127.0.0.1", log=print) -> None:
    """Serve until interrupted; every answer is already on disk, so stopping loses nothing."""
    from werkzeug.serving import make_server

    server = make_server(host, port, create_app(session, folder), threaded=True)
    log(f"verify page: http://{host}:{server.server_port}/  (answers go to {Path(folder) / 'verify.jsonl'}; "
        "Ctrl-C stops, the same --out continues)")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>progreid verify</title>
<style>
body{font-family:system-ui,sans-serif;margin:1.5em;color:#222}
#layout{display:flex;gap:2em;align-items:flex-start}
#query img{height:256px;border:3px solid #333}
#candidates{display:flex;flex-wrap:wrap;gap:8px;max-width:900px}
#candidates img{height:192px;border:4px solid transparent;cursor:pointer}
#candidates img.picked{border-color:#1a8f3a}
button{font-size:1em;margin:0.6em 0.4em 0 0;padding:0.4em 0.9em}
table{border-collapse:collapse;margin-top:1em}td,th{border:1px solid #bbb;padding:0.25em 0.6em;text-align:right}
#done{display:none;font-size:1.2em}
</style></head><body>
<h2>Same person? <small id="progress"></small></h2>
<p>Click every crop on the right that shows the person on the left, then <b>Submit</b>; or <b>None of these</b>.
The candidates come from other cameras, merged from every model and shuffled.</p>
<div id="layout"><div id="query"></div><div><div id="candidates"></div>
<button id="submit">Submit</button><button id="none">None of these</button><button id="skip">Skip</button>
<button id="undo">Undo last</button></div></div>
<p id="done">All queries answered. The estimate below is final; <code>progreid verify --score</code> prints it.</p>
<h3>Estimate so far</h3><pre id="estimate-text"></pre>
<table id="estimate"><thead><tr><th>model</th><th>R1</th><th>95% CI</th><th>mAP@k</th><th>95% CI</th></tr></thead>
<tbody></tbody></table><p id="difference"></p>
<script>
let current = null;
function ci(v){return v ? v[0].toFixed(1) + "-" + v[1].toFixed(1) : "";}
function show(s){
  current = s.current;
  document.getElementById("progress").textContent = "(" + s.answered + " of " + s.total + " answered)";
  document.getElementById("done").style.display = current ? "none" : "block";
  const q = document.getElementById("query"), c = document.getElementById("candidates");
  q.innerHTML = ""; c.innerHTML = "";
  if (current) {
    const qi = document.createElement("img"); qi.src = "/img/" + current.query; qi.id = "query-image"; q.appendChild(qi);
    for (const i of current.candidates) {
      const im = document.createElement("img"); im.src = "/img/" + i; im.dataset.index = i; im.className = "candidate";
      im.onclick = () => im.classList.toggle("picked"); c.appendChild(im);
    }
  }
  for (const id of ["submit", "none", "skip"]) document.getElementById(id).disabled = !current;
  document.getElementById("undo").disabled = !s.can_undo;
  const body = document.querySelector("#estimate tbody"); body.innerHTML = "";
  s.estimate.models.forEach((m, k) => {
    const tr = document.createElement("tr");
    const cells = [String.fromCharCode(65 + k) + " " + m.weights, m.rank1 === null ? "" : m.rank1.toFixed(1), ci(m.rank1_ci),
                   m.mAP === null ? "" : m.mAP.toFixed(1), ci(m.mAP_ci)];
    for (const t of cells) { const td = document.createElement("td"); td.textContent = t; tr.appendChild(td); }
    body.appendChild(tr);
  });
  document.getElementById("estimate-text").textContent = s.estimate.text;
  document.getElementById("difference").textContent = s.estimate.difference_text || "";
}
async function call(url, body){
  const r = await fetch(url, body === undefined ? {} : {method: "POST", headers: {"Content-Type": "application/json"},
                                                        body: JSON.stringify(body)});
  show(await r.json());
}
function picked(){ return [...document.querySelectorAll("#candidates img.picked")].map(im => Number(im.dataset.index)); }
document.getElementById("submit").onclick = () => call("/api/answer", {index: current.index, matches: picked()});
document.getElementById("none").onclick = () => call("/api/answer", {index: current.index, matches: []});
document.getElementById("skip").onclick = () => call("/api/answer", {index: current.index, skip: true});
document.getElementById("undo").onclick = () => call("/api/undo", {});
call("/api/state");
</script></body></html>
"""
