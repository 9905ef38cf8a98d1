"""The clicks as labels: confirmed matches join a query and its crops into one group (connected
components over all answers), written as the ``path,pid`` CSV that ``adapt --labeled-csv`` reads
(semi-supervised PUL; with ``semi.labels_as=links`` must-links for cc/tcc). Only answered queries with
at least one match make a group. The crops a person saw beside the query and did not click (all of
them after "none of these") are the cannot-links, ``path_a,path_b`` rows for ``adapt --cannot-links``."""

from __future__ import annotations

import csv
from pathlib import Path

from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from progreid.verify.answers import current_answers, judged
from progreid.verify.session import Session


def groups(session: Session, folder: str | Path) -> list[list[str]]:
    """Each group's image paths (a query with its confirmed matches, merged where they share a crop)."""
    edges = [(session.queries[q].query, m) for q, matches in judged(current_answers(folder)).items() for m in matches]
    if not edges:
        return []
    n = len(session.images)
    rows, cols = zip(*edges)
    graph = coo_matrix(([1] * len(edges), (rows, cols)), shape=(n, n))
    _, label = connected_components(graph, directed=False)
    used = {i for e in edges for i in e}
    out: dict[int, list[str]] = {}
    for i in sorted(used):
        out.setdefault(int(label[i]), []).append(session.images[i])
    return list(out.values())


def write_labeled_csv(session: Session, folder: str | Path, path: str | Path) -> int:
    """Write ``path,pid`` rows (pid = group number); returns the number of groups."""
    found = groups(session, folder)
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["path", "pid"])
        for pid, members in enumerate(found, 1):
            for p in members:
                w.writerow([p, pid])
    return len(found)


def cannot_pairs(session: Session, folder: str | Path) -> list[tuple[str, str]]:
    """(query, candidate) image paths for every shown candidate an answered query did not match."""
    out = []
    for q, matches in judged(current_answers(folder)).items():
        query = session.queries[q]
        out += [(session.images[query.query], session.images[c]) for c in query.shown if c not in matches]
    return out


def write_cannot_links_csv(session: Session, folder: str | Path, path: str | Path) -> int:
    """Write ``path_a,path_b`` rows (crops shown to be different people); returns the number of pairs."""
    pairs = cannot_pairs(session, folder)
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["path_a", "path_b"])
        w.writerows(pairs)
    return len(pairs)
