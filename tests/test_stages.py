"""The round as pluggable stages: a stage registered outside the package runs without touching it."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from progreid.config import load_config
from progreid.data.synth import generate_domain
from progreid.engine.adapt import adapt
from progreid.engine.stages import PSEUDO_LABELERS, PseudoLabels
from progreid.errors import ProgReIDError

SMALL = ["data.height=64", "data.width=32", "train.epochs=1", "model.weights=", "loop.max_rounds=2",
         "train.p=4", "train.k=4", "select.lam=0.5"]


@pytest.fixture(scope="module")
def target(tmp_path_factory):
    return generate_domain(tmp_path_factory.mktemp("t"), "target", 16, 3, seed=1, size=(64, 32), test_fraction=0.5)


@pytest.fixture
def camera_labeller():
    """A toy pseudo-labeller, registered here and nowhere in the package: one cluster per camera."""
    calls = []

    @PSEUDO_LABELERS.register("per_camera")
    def per_camera(ctx, state, features, seed):
        cams = ctx.pool_cameras
        _, labels = np.unique(cams, return_inverse=True)
        centers = np.stack([features[labels == k].mean(0) for k in range(labels.max() + 1)])
        calls.append((state.last_round + 1, features.shape, seed))
        return PseudoLabels(labels, centers, "euclidean")

    yield calls
    PSEUDO_LABELERS.remove("per_camera")


def test_a_pseudo_labeller_registered_in_a_test_file_runs_two_rounds(target, camera_labeller, tmp_path):
    cfg = load_config("pul", "quick", overrides=[*SMALL, f"data.target={target}",
                                                 "stages.pseudo_label=per_camera"])
    rows = adapt(cfg, tmp_path / "run", progress=False, log=lambda s: None)
    n_cams = 3
    assert [r["round"] for r in rows] == [0, 1, 2]
    assert [c[0] for c in camera_labeller] == [1, 2] and camera_labeller[0][2] != camera_labeller[1][2]
    assert all(r["k"] == n_cams and r["reliable_cameras_per_cluster"] == 1.0 for r in rows[1:])
    saved = (tmp_path / "run" / "config.yaml").read_text()
    assert "pseudo_label: per_camera" in saved  # the run folder says which stages ran


@pytest.mark.parametrize("override,message", [
    ("stages.pseudo_label=dbscan_typo", r"stages.pseudo_label: unknown 'dbscan_typo'; choose one of \[.*'kmeans'"),
    ("stages.select=best", r"stages.select: unknown 'best'"),
    ("stages.after_round=center_update", r"center_update moves the centers that .*moving_centers"),
])
def test_wrong_stage_choices_fail_before_any_work(target, tmp_path, override, message):
    cfg = load_config("pul", "quick", overrides=[*SMALL, f"data.target={target}", override])
    with pytest.raises(ProgReIDError, match=message):
        adapt(cfg, tmp_path / "run", progress=False, log=lambda s: None)
    assert not (tmp_path / "run" / "state.json").exists()  # nothing ran, a corrected retry starts clean


def test_a_run_logged_to_a_file_has_round_summaries_and_no_progress_bars(target, tmp_path):
    """Without a terminal on stderr (a log file, CI), progress bars stay off; summaries stay."""
    cmd = [sys.executable, "-m", "progreid", "adapt", "--method", "tcul", "--preset", "quick", "--target",
           str(target), "--out", str(tmp_path / "run"), *[x for o in SMALL for x in ("--set", o)]]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr
    log = res.stdout + res.stderr
    assert "\r" not in log
    assert [line.split("|")[0].strip() for line in log.splitlines() if line.startswith("round ")] == \
        ["round 0/2", "round 1/2", "round 2/2"]
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["round"] for r in rows] == [0, 1, 2] and "center_shift" in rows[1]


def test_a_budget_cut_to_an_untested_round_gets_that_rounds_test(target, tmp_path):
    """A run stopped after a round without a test (eval_every 2), finished with --max-rounds at that
    round, ends with the test a run of that budget would have made."""
    over = [*SMALL, f"data.target={target}", "loop.stop_patience=0", "loop.max_rounds=4", "loop.eval_every=2"]
    cfg = load_config("pul", "quick", overrides=over)

    def stop_after_round_3(line: str) -> None:
        if line.startswith("round 3/"):
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        adapt(cfg, tmp_path / "run", progress=False, log=stop_after_round_3)
    rows = adapt(cfg, tmp_path / "run", resume=True, max_rounds=3, progress=False, log=lambda s: None)
    assert [r["round"] for r in rows] == [0, 1, 2, 3] and "mAP" not in rows[1] and "mAP" in rows[3]
    fresh = adapt(load_config("pul", "quick", overrides=[*over[:-2], "loop.max_rounds=3", "loop.eval_every=2"]),
                  tmp_path / "fresh", progress=False, log=lambda s: None)
    assert rows[3]["mAP"] == fresh[3]["mAP"] and rows[3]["reliable"] == fresh[3]["reliable"]


def test_settings_no_stage_of_the_run_reads_are_named(capsys):
    from progreid.cli import _note_unread_settings
    from progreid.engine.stages import unread_settings

    keys = ["select.frame_window", "select.lam", "train.lr", "cluster.link_blend", "cluster.center_update"]
    assert unread_settings(load_config("pul", "quick").stages, keys) == [
        "select.frame_window", "cluster.link_blend", "cluster.center_update"]  # train.lr: every run reads it
    assert unread_settings(load_config("tcul", "quick").stages, keys) == ["select.lam", "cluster.link_blend"]
    assert unread_settings(load_config("tcc", "quick").stages, keys) == ["select.lam", "cluster.center_update"]

    @PSEUDO_LABELERS.register("window_aware", reads=("select.frame_window",))
    def window_aware(ctx, state, features, seed): ...

    try:
        cfg = load_config("pul", "quick", overrides=["stages.pseudo_label=window_aware"])
        assert unread_settings(cfg.stages, keys) == ["cluster.link_blend", "cluster.center_update"]
    finally:
        PSEUDO_LABELERS.remove("window_aware")
    _note_unread_settings(load_config("pul", "quick"), ["select.frame_window=50", "train.lr=0.01"])
    err = capsys.readouterr().err
    assert "--set select.frame_window has no effect" in err and "select=similarity" in err and "train.lr" not in err
