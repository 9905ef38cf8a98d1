"""Answers from ground-truth identities: for benchmarks and tests, never for training data's labels
to reach a method. A shown candidate is confirmed when its identity is the query's."""

from __future__ import annotations

from pathlib import Path

from progreid.data.layouts import load_dataset
from progreid.errors import ProgReIDError
from progreid.verify.answers import append_answer, current_answers
from progreid.verify.session import Session, valid_pid


def identities(session: Session, layout: str = "auto") -> list[int]:
    """The identity of each of the session's images, read back from its dataset."""
    split = load_dataset(session.data, layout)
    pid_of = {r.path: r.pid for part in split.parts().values() for r in part}
    pids = [pid_of.get(p, -2) for p in session.images]
    if not any(valid_pid(p) for p in pids):
        raise ProgReIDError(f"--simulate: {session.data} holds no identities to answer from (crops without "
                            "labels). Fix: answer on the page (drop --simulate), or simulate on a labeled "
                            "benchmark folder.")
    return pids


def simulate_answers(session: Session, folder: str | Path, layout: str = "auto") -> int:
    """Answer every unanswered query as ground truth says; returns how many were answered. In the
    benchmark protocol a query whose person has no valid gallery crop is skipped, as evaluation does."""
    pids = identities(session, layout)
    standing = current_answers(folder)
    done = 0
    for i, q in enumerate(session.queries):
        if i in standing:
            continue
        pid = pids[q.query]
        if not valid_pid(pid):
            append_answer(folder, {"q": i, "skip": True})
            continue
        matches = [c for c in q.shown if pids[c] == pid]
        append_answer(folder, {"q": i, "matches": matches, "none": not matches, "simulated": True})
        done += 1
    return done
