"""What hangs off the loop (fast-reid's trainer hooks): the run folder, the log, artifacts, the report.

A hook has ``round_end(ctx, state, result)`` and ``run_end(ctx, state)``; the loop calls them in
order after every finished round and once at the end. The first hook saves the round, so one that
fails later (a full disk for a plot, a KeyboardInterrupt during logging) loses nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from progreid.engine.context import RunContext
from progreid.engine.evaluate import Evaluation
from progreid.engine.rundir import RunDir
from progreid.engine.stages.pseudo_label import PseudoLabels
from progreid.engine.state import RunState, save_state, write_status
from progreid.report.artifacts import CLUSTERS_FILE, RANKED_FILE, save_cluster_samples, save_ranked_lists
from progreid.report.plots import plot_rounds
from progreid.select import Selection


@dataclass
class RoundResult:
    row: dict[str, Any]                # the metrics row (also the last of state.rows)
    pseudo: PseudoLabels | None = None  # None for round 0 (direct transfer)
    selection: Selection | None = None
    evaluation: Evaluation | None = None


class Hook:
    """Override either method; both do nothing by default."""

    def round_end(self, ctx: RunContext, state: RunState, result: RoundResult) -> None:
        pass

    def run_end(self, ctx: RunContext, state: RunState) -> None:
        pass


class SaveRound(Hook):
    """Weights, arrays, metrics.jsonl and state.json: what ``--resume`` needs."""

    def __init__(self, run: RunDir):
        self.run = run

    def round_end(self, ctx: RunContext, state: RunState, result: RoundResult) -> None:
        save_state(self.run, state)

    def run_end(self, ctx: RunContext, state: RunState) -> None:
        write_status(self.run, state)  # finished, also when the budget was reached on an earlier call


class SaveArtifacts(Hook):
    """Ranked lists and cluster samples for the report, each round's pseudo-labels, and the curves."""

    def __init__(self, run: RunDir):
        self.run = run

    def round_end(self, ctx: RunContext, state: RunState, result: RoundResult) -> None:
        if result.evaluation is not None:
            split = ctx.target.split
            save_ranked_lists(self.run.path / RANKED_FILE, result.row["round"], result.evaluation.query_features,
                              result.evaluation.gallery_features, split.query, split.gallery, seed=ctx.cfg.seed)
        if result.pseudo is not None and result.selection is not None:
            # the round's pseudo-labels of the pool (-1: no cluster) and its reliable mask, for inspection
            self.run.save_array("pseudo_labels", result.row["round"], result.pseudo.labels)
            self.run.save_array("reliable", result.row["round"], result.selection.reliable)
            save_cluster_samples(self.run.path / CLUSTERS_FILE, result.row["round"], ctx.pool_records,
                                 result.pseudo.labels, result.selection.reliable)
        plot_rounds(state.rows, self.run.path / "curves.png")


class LogSummary(Hook):
    """One line per round, and why the loop stopped early if it did."""

    def __init__(self, log: Callable[[str], None]):
        self.log = log

    def round_end(self, ctx: RunContext, state: RunState, result: RoundResult) -> None:
        first = next((r for r in state.rows if r["round"] == 1), None)
        self.log(summary_line(result.row, ctx.cfg.loop.max_rounds, first.get("k") if first else None))
        if state.stop_reason:
            self.log(f"stopping: {state.stop_reason}")

    def run_end(self, ctx: RunContext, state: RunState) -> None:
        from progreid.evaluation.label_free import best_round

        found = best_round(state.rows)
        if found:
            best, score = found
            self.log(f"best round by the label-free estimate: {best} (label_free_score {score:.3f}); "
                     "export it with --round best-estimate, or compare rounds with `progreid verify`")


class BuildReport(Hook):
    def __init__(self, run: RunDir, log: Callable[[str], None]):
        self.run, self.log = run, log

    def run_end(self, ctx: RunContext, state: RunState) -> None:
        from progreid.report.html import build_report

        title = f"{ctx.cfg.method.upper()} on {ctx.target.split.name}"
        self.log(f"report: {build_report(self.run.path, title)}")


def default_hooks(run: RunDir, log: Callable[[str], None]) -> list[Hook]:
    return [SaveRound(run), SaveArtifacts(run), LogSummary(log), BuildReport(run, log)]


def summary_line(row: dict[str, Any], max_rounds: int, first_k: int | None = None) -> str:
    """The round in one line: what was chosen from the data, the test, what the clustering shows of
    splitting people (``first_k``: round 1's cluster count, to say how K has moved), the seconds."""
    parts = [f"round {row['round']}/{max_rounds}"]
    if row["round"] > 0:
        eps = f"  eps {row['eps']}" if "eps" in row else ""
        auto = " (auto)" if "k_auto" in row else ""
        windows = sorted(set(row.get("frame_window", {}).values()))
        window = f"  frame window {'-'.join(str(w) for w in windows[::max(1, len(windows) - 1)])}" if windows else ""
        parts.append(f"K {row['k']}{auto}{eps}{window}  reliable {row['reliable']}/{row['num_train']} "
                     f"({100 * row['reliable_fraction']:.1f}%)")
    if "mAP" in row:
        parts.append(f"R1 {row['rank1']:.1f}  mAP {row['mAP']:.1f}")
    if "reliable_pair_precision" in row:
        parts.append(f"reliable precision {100 * row['reliable_pair_precision']:.1f}%")
    split = oversplit_text(row, first_k)
    if split:
        parts.append(split)
    parts.append(" ".join(f"{k} {v:.0f}s" for k, v in row["seconds"].items()))
    return "  |  ".join(parts)


def oversplit_text(row: dict[str, Any], first_k: int | None) -> str:
    """"split? ..." from the label-free over-segmentation signals of a density clustering's round."""
    bits = []
    if "split_camera_pairs" in row:
        bits.append(f"{row['split_camera_pairs']} cluster pairs look like one person across cameras "
                    f"({100 * row['split_camera_pairs'] / max(row['k'], 1):.0f}% of K)")
    if "clusters_per_track" in row:
        bits.append(f"{row['clusters_per_track']:.2f} clusters per track")
    if bits and first_k and row.get("round", 0) > 1 and "k" in row:
        bits.append(f"K {row['k'] / first_k:.2f}x round 1's")
    return "split? " + ", ".join(bits) if bits else ""
