"""k-reciprocal Jaccard distance (Zhong et al. 2017) as a sparse matrix, for density clustering.

Follows Cluster Contrast's ``compute_jaccard_distance`` (alibaba/cluster-contrast-reid,
``clustercontrast/utils/faiss_rerank.py``), the form SpCL and Cluster Contrast cluster with:
the k1-NN lists *include* the sample itself, V rows are ``softmax(-(2 - 2 cos))`` over the
k-reciprocal expansion, local query expansion averages the k2 nearest rows, and
``d(i, j) = 1 - m / (2 - m)`` with ``m = sum_l min(V_il, V_jl)``.

Where the reference fills a dense N x N matrix, this keeps only the pairs whose V rows overlap
(every other distance is exactly 1, beyond any DBSCAN eps): memory is O(N x k1 x k2 x fan-out),
not O(N^2), and the stored values equal the dense ones (tested against a direct dense reference).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch


KNN_EXACT_LIMIT = 200_000  # rows above which ``knn(method="auto")`` searches an inverted file
KNN_NPROBE = 32        # cells each row probes
KNN_CELL_POINTS = 256


def knn(features: np.ndarray, k: int, chunk: int = 4096, method: str = "auto",
        device: str | torch.device = "cpu") -> tuple[np.ndarray, np.ndarray]:
    """(indices, cosine similarities) of each row's ``k`` nearest rows by cosine, itself first.

    ``exact``: in row chunks (memory O(chunk x N) for the similarity block, O(N x k) for the result),
    O(N^2 x D) time. ``ivf``: an inverted file (``ivf.py``; cells of ~``KNN_CELL_POINTS`` rows,
    ``KNN_NPROBE`` probed), O(N x D x nprobe x cell size) plus the N^2 / cell size probe; its recall
    against exact is measured in BENCHMARKS.md. ``auto``: exact up to
    ``KNN_EXACT_LIMIT`` rows. The matrix products run on ``device`` (a GPU where the run has one).
    """
    x = torch.nn.functional.normalize(torch.as_tensor(np.asarray(features, np.float32)).to(device), dim=1)
    n = len(x)
    k = min(k, n)
    if method == "ivf" or (method == "auto" and n > KNN_EXACT_LIMIT):
        return _knn_ivf(x, k)
    if method not in ("exact", "auto"):
        raise ValueError(f"knn method {method!r}: choose exact, ivf or auto")
    idx = np.empty((n, k), np.int64)
    sim = np.empty((n, k), np.float32)
    for s in range(0, n, chunk):
        block = x[s:s + chunk] @ x.T
        rows = torch.arange(s, min(s + chunk, n), device=x.device)
        block[rows - s, rows] = 2.0  # itself first, even among exact duplicates
        v, i = block.topk(k, dim=1)
        v[:, 0] = 1.0
        idx[s:s + chunk], sim[s:s + chunk] = i.cpu().numpy(), v.cpu().numpy()
    return idx, sim


def _knn_ivf(xt: torch.Tensor, k: int, nprobe: int = KNN_NPROBE, seed: int = 1234) -> tuple[np.ndarray, np.ndarray]:
    """Inverted file over cells of ~``KNN_CELL_POINTS`` rows (a k-means of a sample of the rows),
    each row probing its ``nprobe`` nearest cells (see ``ivf.py``)."""
    from .ivf import InvertedFile, nearest_cells, search
    from .kmeans import kmeans

    n = len(xt)
    n_cells = max(1, n // KNN_CELL_POINTS)
    gen = torch.Generator().manual_seed(seed)
    sample = xt[torch.sort(torch.randperm(n, generator=gen)[:min(n, 32 * n_cells)]).values.to(xt.device)]
    cell_centers = torch.as_tensor(kmeans(sample, n_cells, max_iter=10, seed=seed, init="random",
                                          assign="exact", device=xt.device).centers).to(xt.device)
    probes = nearest_cells(xt, cell_centers, nprobe, metric="ip")
    ivf = InvertedFile.build(cell_centers, probes[:, 0].contiguous())  # its own cell is its nearest
    sim, idx = search(xt, xt, ivf, probes, k + 1, metric="ip")
    sim, idx = sim.cpu().numpy(), idx.cpu().numpy()
    short = (idx < 0).any(1)
    if short.any():  # too few candidates in the probed cells (tiny data): those rows exactly
        e_idx, e_sim = _knn_exact_rows(xt, np.flatnonzero(short), k + 1)
        idx[short], sim[short] = e_idx, e_sim
    # itself first (it is found, at similarity 1, unless an exact duplicate outranks it), then the rest
    rows = np.arange(n)[:, None]
    others = idx != rows
    order = np.argsort(~others, axis=1, kind="stable")  # stable: keeps the ranking among the others
    idx_o = np.take_along_axis(idx, order, 1)[:, :k - 1]
    sim_o = np.take_along_axis(sim, order, 1)[:, :k - 1]
    return (np.concatenate([rows, idx_o], 1).astype(np.int64),
            np.concatenate([np.ones((n, 1), np.float32), sim_o], 1).astype(np.float32))


def _knn_exact_rows(x: torch.Tensor, rows: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    v, i = (x[torch.as_tensor(rows, device=x.device)] @ x.T).topk(min(k, len(x)), dim=1)
    return i.cpu().numpy(), v.cpu().numpy()


def reciprocal_matrix(rank: np.ndarray, k: int, chunk: int = 1 << 15) -> sp.csr_matrix:
    """Boolean (N, N): row i marks the members of its first ``k`` neighbours that also list i in their
    first ``k`` (in row chunks: the (rows, k, k) comparison stays ~chunk x k^2, not N x k^2)."""
    n = len(rank)
    fwd = rank[:, :k]
    rows_out, cols_out = [], []
    for s in range(0, n, chunk):
        f = fwd[s:s + chunk]
        back = np.any(rank[f, :k] == np.arange(s, s + len(f))[:, None, None], axis=2)  # (rows, k)
        rows_out.append(np.repeat(np.arange(s, s + len(f)), k)[back.ravel()])
        cols_out.append(f.ravel()[back.ravel()])
    rows, cols = np.concatenate(rows_out), np.concatenate(cols_out)
    return sp.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)), shape=(n, n))


def row_dots(x: np.ndarray, rows: np.ndarray, cols: np.ndarray, chunk: int = 1 << 14) -> np.ndarray:
    """``x[rows[t]] . x[cols[t]]`` for every t, in chunks of pairs small enough to stay in cache (a chunk
    of 16k pairs of 512-d rows: 2.5x faster than 256k ones)."""
    out = np.empty(len(rows), np.float32)
    for s in range(0, len(rows), chunk):
        out[s:s + chunk] = np.einsum("ij,ij->i", x[rows[s:s + chunk]], x[cols[s:s + chunk]])
    return out


def jaccard_distance(features: np.ndarray, k1: int = 30, k2: int = 6,
                     device: str | torch.device = "cpu") -> sp.csr_matrix:
    """Sparse (N, N) k-reciprocal Jaccard distances of L2-normalised ``features``.

    Stored entries are the pairs with overlapping neighbourhoods (the diagonal included, 0);
    any pair not stored is at distance 1.
    """
    x = np.asarray(features, np.float32)
    x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    rank, _ = knn(x, k1, device=device)
    V = expanded_neighbourhoods(rank, k1, k2, lambda i, j: 2 - 2 * row_dots(x, i, j))  # |x_i - x_j|^2
    return min_overlap_distance(V)


def expanded_neighbourhoods(rank: np.ndarray, k1: int, k2: int, pair_distance, chunk: int = 1 << 16) -> sp.csr_matrix:
    """The V matrix of k-reciprocal encoding (Zhong et al. 2017), sparse: row i weights
    ``exp(-pair_distance(i, members))`` over i's k-reciprocal set R(i) expanded by the half-size set
    R*(c) of each candidate c in R(i) that shares more than 2/3 of R*(c) with R(i), normalised to sum
    1, then averaged over i's ``k2`` nearest rows (local query expansion).

    ``rank``: each row's nearest rows, itself first; all its columns are the forward lists (Cluster
    Contrast searches ``k1`` of them, Zhong et al.'s re-ranking ``k1 + 1``), the expansion uses the
    first ``round(k1 / 2) + 1`` (both references). ``pair_distance(rows, cols)``: distances of index
    pairs, vectorised. Array operations throughout (sparse products for the set overlaps), no loop
    per crop: equal to the per-crop form (``jaccard_reference``), which is kept as the test oracle.
    """
    n = len(rank)
    R = reciprocal_matrix(rank, rank.shape[1])
    H = reciprocal_matrix(rank, min(int(np.around(k1 / 2)) + 1, rank.shape[1]))
    HT = H.T.tocsr()
    half_sizes = np.diff(H.indptr)
    parts = []
    for s in range(0, n, chunk):  # rows in chunks: the overlap products hold ~chunk x k1 x k1/2 entries
        Rc = R[s:s + chunk]
        overlap = (Rc @ HT).multiply(Rc).tocoo()  # |R*(c) & R(i)| at each (i, c) with c in R(i)
        keep = overlap.data > 2 / 3 * half_sizes[overlap.col]
        accepted = sp.csr_matrix((np.ones(int(keep.sum()), np.float32), (overlap.row[keep], overlap.col[keep])),
                                 shape=Rc.shape)
        members = (Rc + accepted @ H).tocsr()  # R(i) and the accepted R*(c); values only mark membership
        members.sum_duplicates()
        rows = np.repeat(np.arange(len(members.indptr) - 1), np.diff(members.indptr))
        w = np.exp(-np.asarray(pair_distance(rows + s, members.indices), np.float64))
        sums = np.bincount(rows, weights=w, minlength=Rc.shape[0])
        parts.append(sp.csr_matrix(((w / sums[rows]).astype(np.float32), members.indices, members.indptr),
                                   shape=Rc.shape))
    V = sp.vstack(parts).tocsr()
    if k2 != 1:  # local query expansion: each row becomes the mean of its k2 nearest rows
        kk = min(k2, rank.shape[1])
        A = sp.csr_matrix((np.full(n * kk, 1.0 / kk), (np.repeat(np.arange(n), kk), rank[:, :kk].ravel())),
                          shape=(n, n))
        V = (A @ V).tocsr()
    return V.astype(np.float32)


def min_overlap_distance(V: sp.csr_matrix, chunk_entries: int = 1 << 22, rows: int | None = None) -> sp.csr_matrix:
    """``1 - m/(2 - m)``, ``m_ij = sum_l min(V_il, V_jl)``, for every pair sharing a column of V.

    Rows of V are expanded in chunks: each stored (i, l) meets every stored (j, l) of column l
    (the inverted index), and the minima are summed per (i, j) by the sparse constructor.
    ``rows``: only the first ``rows`` rows (re-ranking needs the queries' rows alone).
    """
    n = V.shape[0]
    n_rows = n if rows is None else rows
    Vc = V.tocsc()
    col_len = np.diff(Vc.indptr)
    pairs_per_row = np.zeros(n, np.int64)  # how many (i, j) contributions each row expands to
    np.add.at(pairs_per_row, np.repeat(np.arange(n), np.diff(V.indptr)), col_len[V.indices])
    out = []
    start = 0
    while start < n_rows:  # rows [start, stop) whose expansion fits in about chunk_entries pairs
        csum = np.cumsum(pairs_per_row[start:n_rows])
        stop = min(n_rows, start + max(1, int(np.searchsorted(csum, chunk_entries, side="right"))))
        lo, hi = V.indptr[start], V.indptr[stop]
        i_of = np.repeat(np.arange(start, stop), np.diff(V.indptr[start:stop + 1]))
        l_of, v_of = V.indices[lo:hi], V.data[lo:hi]
        reps = col_len[l_of]
        i_rep = np.repeat(i_of, reps)
        v_rep = np.repeat(v_of, reps)
        # for each (i, l) entry, the positions of column l's entries in the CSC arrays
        offs = np.arange(reps.sum()) - np.repeat(np.cumsum(reps) - reps, reps)
        pos = np.repeat(Vc.indptr[l_of], reps) + offs
        m = sp.csr_matrix((np.minimum(v_rep, Vc.data[pos]), (i_rep - start, Vc.indices[pos])),
                          shape=(stop - start, n))
        m.sum_duplicates()
        m.data = np.maximum(1 - m.data / (2 - m.data), 0).astype(np.float32)
        m.setdiag(0, k=start)  # itself: distance 0, stored (DBSCAN counts a point in its own neighbourhood)
        out.append(m)
        start = stop
    return sp.vstack(out).tocsr()
