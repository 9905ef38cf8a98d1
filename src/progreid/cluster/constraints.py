"""A person's answers inside the density clustering: must-links (crops confirmed to show one person,
``progreid verify``'s groups) and cannot-links (crops shown beside a query and not clicked).

Before DBSCAN every pair within a group is put at distance ~0 and every cannot-linked pair far apart;
after it, each group is made one cluster (a group with no dense member becomes a cluster of its
own) and a cannot-linked pair left in one cluster (chained through others) loses its ungrouped crop
to the outliers for the round. The labeled crops stay in the pool, so a group *joins* the cluster of
its person's unlabeled crops instead of training as a class of its own beside them, which is how
PUL's semi-supervised setting uses labels and what gave cc no gain (BENCHMARKS.md). The same
constraint set is COP-KMeans' (Wagstaff et al., ICML 2001), applied to DBSCAN's input and output.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from progreid.cluster.density import with_links, without_pairs


@dataclass
class PairConstraints:
    groups: np.ndarray   # (N,) group id of each pool sample, -1: in no group
    cannot: np.ndarray   # (M, 2) pool positions of pairs shown to be different people

    @property
    def empty(self) -> bool:
        return not (self.groups >= 0).any() and not len(self.cannot)

    def must_pairs(self) -> tuple[np.ndarray, np.ndarray]:
        """Every pair (i < j) within each group."""
        rows, cols = [], []
        for g in np.unique(self.groups[self.groups >= 0]):
            members = np.flatnonzero(self.groups == g)
            a, b = np.triu_indices(len(members), 1)
            rows.append(members[a])
            cols.append(members[b])
        if not rows:
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        return np.concatenate(rows), np.concatenate(cols)


def constrain_distance(dist: sp.csr_matrix, c: PairConstraints) -> sp.csr_matrix:
    """Must-linked pairs at ~0, cannot-linked pairs removed (far)."""
    i, j = c.must_pairs()
    out = with_links(dist, i, j) if len(i) else dist
    return without_pairs(out, c.cannot[:, 0], c.cannot[:, 1]) if len(c.cannot) else out


def enforce(labels: np.ndarray, c: PairConstraints) -> tuple[np.ndarray, dict[str, int]]:
    """DBSCAN's labels made to keep the constraints; ids renumbered 0..K-1 (-1 stays an outlier).

    Returns the labels and counts for the round's row: groups, cannot-links, the groups that became
    clusters of their own, the group crops moved to their group's cluster, and the crops taken out
    of a cluster that held a cannot-linked pair.
    """
    labels = labels.copy()
    next_id = int(labels.max()) + 1 if len(labels) else 0
    new_clusters = moved = 0
    for g in np.unique(c.groups[c.groups >= 0]):
        members = np.flatnonzero(c.groups == g)
        clustered = labels[members][labels[members] >= 0]
        if len(clustered):
            target = int(np.bincount(clustered).argmax())  # where most of the group already is
        else:
            target, next_id, new_clusters = next_id, next_id + 1, new_clusters + 1
        moved += int((labels[members] != target).sum()) if len(clustered) else 0
        labels[members] = target
    split = 0
    for a, b in c.cannot:
        if labels[a] < 0 or labels[a] != labels[b]:
            continue
        drop = b if c.groups[b] < 0 else a if c.groups[a] < 0 else None
        if drop is not None:  # both in confirmed groups: left together (splitting the cluster is not tried)
            labels[drop] = -1
            split += 1
    kept = labels >= 0
    labels[kept] = np.unique(labels[kept], return_inverse=True)[1]
    return labels, {"human_groups": int(len(np.unique(c.groups[c.groups >= 0]))), "cannot_links": int(len(c.cannot)),
                    "groups_as_new_clusters": new_clusters, "group_crops_moved": moved, "cannot_link_crops_out": split}
