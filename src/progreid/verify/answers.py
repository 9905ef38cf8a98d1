"""``verify.jsonl``: every answer appended the moment it is given.

One JSON object per line: ``{"q": i, "matches": [image, ...], "none": false}`` (the crops confirmed to
show the query's person, or none of them), ``{"q": i, "skip": true}`` or ``{"undo": i}`` (takes back
query i's last answer). Lines are appended with O_APPEND, flushed and fsynced, so a reload or a crash
loses nothing; a line torn by a crash mid-write is ignored when read and fenced off by a newline
before the next append.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

ANSWERS_FILE = "verify.jsonl"


def answers_path(folder: str | Path) -> Path:
    return Path(folder) / ANSWERS_FILE


def append_answer(folder: str | Path, entry: dict[str, object]) -> None:
    """Append one line durably (the torn tail of an earlier crash is ended first)."""
    path = answers_path(folder)
    line = json.dumps({**entry, "t": round(time.time(), 3)}, separators=(",", ":")) + "\n"
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        size = os.fstat(fd).st_size
        if size:
            with open(path, "rb") as f:
                f.seek(size - 1)
                if f.read(1) != b"\n":
                    line = "\n" + line
        os.write(fd, line.encode())
        os.fsync(fd)
    finally:
        os.close(fd)


def read_log(folder: str | Path) -> list[dict[str, object]]:
    """Every complete line, in order (a torn or unreadable line is left out)."""
    path = answers_path(folder)
    if not path.is_file():
        return []
    out = []
    for line in path.read_text().splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict):
            out.append(entry)
    return out


def current_answers(folder: str | Path) -> dict[int, dict[str, object]]:
    """Query index -> its standing answer (answer or skip), undos applied, in the order answered."""
    standing: dict[int, dict[str, object]] = {}
    for entry in read_log(folder):
        if "undo" in entry:
            standing.pop(int(entry["undo"]), None)
        elif "q" in entry:
            standing.pop(int(entry["q"]), None)  # a new answer replaces the old, and moves to the end
            standing[int(entry["q"])] = entry
    return standing


def judged(standing: dict[int, dict[str, object]]) -> dict[int, set[int]]:
    """Query index -> the confirmed matches, for the queries answered (skips left out)."""
    return {q: {int(i) for i in a.get("matches", [])} for q, a in standing.items() if not a.get("skip")}


def next_query(n_queries: int, standing: dict[int, dict[str, object]]) -> int | None:
    """The first query with no standing answer, or None when all are done."""
    return next((q for q in range(n_queries) if q not in standing), None)
