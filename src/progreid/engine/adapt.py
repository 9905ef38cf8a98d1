"""The progressive loop shared by every method: a round is

    extract -> pseudo_label -> select -> fine_tune -> after_round -> evaluate -> stop?

with each stage looked up by the name the preset gives it (``engine.stages``), the state that
crosses rounds in one :class:`RunState`, and the run folder, log, artifacts and report in hooks
(``engine.hooks``). Round 0 is the direct-transfer evaluation of the original model.
"""

from __future__ import annotations

import copy
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

from progreid.config import Config
from progreid import distributed
from progreid.engine.context import DENSITY_LABELLERS, RunContext, build_context, build_model, labels_as
from progreid.engine.evaluate import EvalOptions, Evaluation, evaluate_model
from progreid.engine.hooks import Hook, RoundResult, default_hooks
from progreid.engine.rundir import RunDir
from progreid.engine.stages import AFTER_ROUND, FINE_TUNERS, PSEUDO_LABELERS, SELECTORS, PseudoLabels
from progreid.engine.state import RunState, restore_state
from progreid.errors import ProgReIDError
from progreid.evaluation.clustering import cameras_per_cluster, identity_cosines, label_diagnostics
from progreid.evaluation.label_free import label_free_score, label_free_signals
from progreid.select import Selection


class Timer:
    """Seconds per stage of one round (a stage entered twice adds up)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextmanager
    def __call__(self, stage: str) -> Iterator[None]:
        start = time.perf_counter()
        yield
        self.seconds[stage] = round(self.seconds.get(stage, 0.0) + time.perf_counter() - start, 2)


def check_stages(ctx: RunContext) -> None:
    """Look every named stage up and run its precondition, before any work."""
    s = ctx.cfg.stages
    PSEUDO_LABELERS.check(s.pseudo_label, ctx)
    SELECTORS.check(s.select, ctx)
    FINE_TUNERS.check(s.fine_tune, ctx)
    for name in s.after_round:
        AFTER_ROUND.check(name, ctx)


def check_semi(cfg: Config) -> None:
    """How labeled crops train must fit the method, said before any image is read."""
    semi, labeller = cfg.semi, cfg.stages.pseudo_label
    if semi.labels_as == "links" and labeller not in DENSITY_LABELLERS:
        raise ProgReIDError(f"semi.labels_as=links ties labeled crops into a density clustering (cc, tcc); --method "
                            f"{cfg.method} clusters with {labeller}. Fix: --labels-as classes, or --method cc or tcc.")
    if semi.cannot_links_csv and labels_as(cfg) != "links":
        raise ProgReIDError(f"semi.cannot_links_csv={semi.cannot_links_csv} is read only inside the clustering. "
                            "Fix: --labels-as links with --method cc or tcc, or drop --cannot-links.")


def target_notes(ctx: RunContext) -> list[str]:
    """What this target cannot give the method, said at the start rather than found out later: one
    camera (no camera-aware proxies, no cross-camera signals) and no test split (no mAP)."""
    notes, cfg = [], ctx.cfg
    if len(np.unique(ctx.pool_cameras)) == 1:
        memory = (" camera-aware proxies fall back to one memory entry per cluster (train.memory=camera acts as "
                  "train.memory=cluster);" if cfg.stages.fine_tune == "cluster_memory" and cfg.train.memory == "camera"
                  else "")
        notes.append(f"one camera in the training crops:{memory} the cross-camera label-free signals and "
                     "diagnostics are skipped. A folder per camera (cam1/, cam2/, ...) gives them.")
    if not ctx.target.has_test:
        notes.append(f"{cfg.data.target}: no query/ and bounding_box_test/ (or test rows), so no mAP is measured; "
                     "each round still logs its label-free signals. Check the adapted model on your own crops "
                     "with `progreid verify` (confirm a few matches on a page: R1/mAP estimates with intervals) or `progreid rank`.")
    return notes


def adapt(cfg: Config, out: str | Path, resume: bool = False, progress: bool = True,
          log: Callable[[str], None] = print, max_rounds: int | None = None,
          hooks: list[Hook] | None = None, force: bool = False) -> list[dict[str, Any]]:
    """Run (or resume) an adaptation; returns one metrics row per round (round 0 = direct transfer).

    ``max_rounds`` with ``resume`` continues a run, finished or not, up to that many rounds: the
    rounds it adds are the ones an uninterrupted run with that budget would have made (same seeds).
    ``hooks`` are called after the default ones (run folder, artifacts, log, report). The run folder
    is locked for this process from its first write to the end (``engine.rundir``); ``force`` lets a
    new run write into a folder that holds other files.
    """
    device = distributed.setup(cfg.device)  # under torchrun: join the group (rank 0 alone writes the run folder)
    main = distributed.is_main()
    log = log if main else _silent
    run = RunDir(out)
    try:
        return _adapt(run, cfg, resume, progress, log, max_rounds, hooks, force, device, main)
    finally:
        run.lock.release()


def _adapt(run: RunDir, cfg: Config, resume: bool, progress: bool, log: Callable[[str], None],
           max_rounds: int | None, hooks: list[Hook] | None, force: bool, device: str, main: bool) -> list[dict[str, Any]]:
    cfg, saved, notes = distributed.on_main(lambda: _open_run(run, cfg, resume, max_rounds, force))
    for note in notes:
        log(note)
    check_semi(cfg)
    ctx = build_context(cfg, progress and main, device if distributed.active() else None)
    check_stages(ctx)
    for note in target_notes(ctx):
        log(note)
    if len(ctx.target.bad_train):
        log(f"skipping {len(ctx.target.bad_train)} unreadable training images (data.bad_images: skip), "
            f"e.g. {ctx.target.train[ctx.target.bad_train[0]].path}")
    model = build_model(cfg)
    state = RunState(model=model, original=copy.deepcopy(model))
    if saved is not None:
        if main:
            restore_state(run, saved, state, log)
        distributed.share_state(state)  # other ranks take rank 0's weights, arrays and rows
        if state.finished:
            log(f"{run.path}: run already finished at round {state.last_round}.")
            return state.rows
        log(f"resuming {run.path} after round {state.last_round}")
    hooks = [*default_hooks(run, log), *(hooks or [])] if main else []
    if state.last_round < 0:
        finish_round(ctx, state, hooks, direct_transfer(ctx, state))
    while state.last_round < cfg.loop.max_rounds and not state.finished:
        finish_round(ctx, state, hooks, run_round(ctx, state, state.last_round + 1))
    if state.last_round >= 1 and "mAP" not in state.rows[-1] and ctx.evaluates(cfg.loop.max_rounds):
        final_evaluation(ctx, state, hooks)  # an early stop, or a budget cut to a round that was not tested
    state.finished = True
    for hook in hooks:
        hook.run_end(ctx, state)
    return state.rows


def _silent(_: str) -> None:
    pass


def _open_run(run: RunDir, cfg: Config, resume: bool, max_rounds: int | None,
              force: bool) -> tuple[Config, dict[str, Any] | None, list[str]]:
    cfg, saved, notes = run.start(cfg, resume, force)
    if max_rounds is not None and max_rounds != cfg.loop.max_rounds:
        saved = run.set_max_rounds(cfg, saved, max_rounds)
    return cfg, saved, notes


def final_evaluation(ctx: RunContext, state: RunState, hooks: list[Hook]) -> None:
    """Test the last finished round's model and add the metrics to its row: the run stopped early
    (the reliable set stalled) or ``--max-rounds`` was lowered to a round that ran without a test."""
    row = state.rows.pop()
    timer = Timer()
    with timer("evaluate"):
        evaluation = evaluate(ctx, state)
    row.update(evaluation.metrics.as_percent())
    row["seconds"] = {**row["seconds"], "evaluate": timer.seconds["evaluate"]}
    finish_round(ctx, state, hooks, RoundResult(row, evaluation=evaluation))


def direct_transfer(ctx: RunContext, state: RunState) -> RoundResult:
    """Round 0: the original model on the target's test split."""
    timer = Timer()
    row: dict[str, Any] = {"round": 0}
    row.update(label_free(ctx, state, timer))
    evaluation = None
    if ctx.evaluates(0):
        with timer("evaluate"):
            evaluation = evaluate(ctx, state)
        row.update(evaluation.metrics.as_percent())
    row["seconds"] = timer.seconds
    return RoundResult(row, evaluation=evaluation)


def run_round(ctx: RunContext, state: RunState, rnd: int) -> RoundResult:
    """One round of the configured stages; updates ``state`` (model, arrays, caches) in place."""
    cfg, timer = ctx.cfg, Timer()
    seed = cfg.seed * 1000 + rnd
    with timer("extract"):
        if state.features is None:
            state.features = ctx.extract_train(state.model)  # on rank 0 (a placeholder on the others)
    truth = None if ctx.target.truth is None else ctx.target.truth[ctx.pool]
    pseudo, sel, diagnostics = distributed.on_main_then_share(
        lambda: _label_and_select(ctx, state, ctx.pool_features(state.features), seed, timer, truth), state)
    indices, classes = training_set(ctx, pseudo, sel)
    with timer("train"):
        stats = FINE_TUNERS.get(cfg.stages.fine_tune)(ctx, state, indices, classes, seed)
    state.model_changed()
    row: dict[str, Any] = {
        "round": rnd, "k": pseudo.num_clusters, "num_train": len(ctx.pool), "reliable": int(sel.reliable.sum()),
        "reliable_fraction": round(float(sel.reliable.mean()), 4), "labeled": len(ctx.labeled_idx),
        "reliable_cameras_per_cluster": round(cameras_per_cluster(pseudo.labels, ctx.pool_cameras, sel.reliable), 3),
        "train_loss": round(stats.loss[-1], 4), "train_images_per_second": round(stats.images_per_second, 1),
        **({"train_accuracy": round(stats.accuracy[-1], 4)} if stats.accuracy else {}), **pseudo.info, **sel.info}
    if len(ctx.target.bad_train):
        row["bad_images"] = len(ctx.target.bad_train)  # unreadable crops left out (data.bad_images: skip)
    for name in cfg.stages.after_round:
        with timer("update"):
            row.update(AFTER_ROUND.get(name)(ctx, state, pseudo))
    row.update(label_free(ctx, state, timer))
    evaluation = None
    if ctx.evaluates(rnd):
        with timer("evaluate"):
            evaluation = evaluate(ctx, state)
        row.update(evaluation.metrics.as_percent())
    row.update(label_diagnostics(pseudo.labels, sel.reliable, truth))  # ground truth: reported, never used
    row.update(diagnostics)
    row["seconds"] = timer.seconds
    return RoundResult(row, pseudo, sel, evaluation)


def label_free(ctx: RunContext, state: RunState, timer: Timer) -> dict[str, Any]:
    """The label-free signals of the model as it is now, on the unlabeled training crops
    (``evaluation.label_free``). Its features are the next round's, so they are extracted once."""
    with timer("extract"):
        if state.features is None:
            state.features = ctx.extract_train(state.model)
    signals = distributed.on_main(lambda: label_free_signals(ctx.pool_features(state.features), ctx.pool_cameras))
    score = label_free_score(signals)
    return {**signals, **({"label_free_score": score} if score is not None else {})}


def finish_round(ctx: RunContext, state: RunState, hooks: list[Hook], result: RoundResult) -> None:
    """Record the round in ``state``, decide whether to stop, and hand it to the hooks (which save it)."""
    state.rows.append(result.row)
    state.last_round = result.row["round"]
    loop = ctx.cfg.loop
    if state.last_round >= 1 and ctx.cfg.stages.select != "all" and \
            reliable_stalled(state.rows, loop.stop_tol, loop.stop_patience):
        state.stop_reason = (f"the reliable set stopped growing (under {loop.stop_tol:.0%} for "
                             f"{loop.stop_patience} rounds)")
    state.finished = state.last_round >= loop.max_rounds or bool(state.stop_reason)
    for hook in hooks:
        hook.round_end(ctx, state, result)


def _label_and_select(ctx: RunContext, state: RunState, x: np.ndarray, seed: int, timer: Timer,
                      truth: np.ndarray | None) -> tuple[PseudoLabels, Selection, dict[str, Any]]:
    """Rank 0's job under torchrun (the others receive the result): labels, selection, and the
    features' ground-truth diagnostics (reported, never used)."""
    with timer("cluster"):
        pseudo = PSEUDO_LABELERS.get(ctx.cfg.stages.pseudo_label)(ctx, state, x, seed)
    with timer("select"):
        sel = SELECTORS.get(ctx.cfg.stages.select)(ctx, x, pseudo)
    return pseudo, sel, identity_cosines(x, sel.reliable, truth)


def training_set(ctx: RunContext, pseudo: PseudoLabels, sel: Selection) -> tuple[np.ndarray, np.ndarray]:
    """(image indices, classes 0..C-1): the reliable pool samples by cluster, then the labeled images
    (semi-supervised PUL) as classes of their own."""
    _, classes = np.unique(pseudo.labels[sel.reliable], return_inverse=True)
    offset = classes.max() + 1 if len(classes) else 0
    return (np.concatenate([ctx.pool[sel.reliable], ctx.labeled_idx]),
            np.concatenate([classes, ctx.labeled_cls + offset]))


def evaluate(ctx: RunContext, state: RunState) -> Evaluation:
    t = ctx.target
    opts = EvalOptions(size=(ctx.cfg.data.height, ctx.cfg.data.width))
    return evaluate_model(state.model, t.split, opts, ctx.device, ctx.progress, t.query_images, t.gallery_images)


def reliable_stalled(rows: list[dict[str, Any]], tol: float, patience: int) -> bool:
    """True when the reliable count changed by less than ``tol`` (relative) ``patience`` rounds in a row."""
    counts = [r["reliable"] for r in rows if r["round"] >= 1]
    if patience <= 0 or len(counts) <= patience:
        return False
    recent = counts[-(patience + 1):]
    return all(abs(b - a) / max(a, 1) < tol for a, b in zip(recent, recent[1:]))
