"""From synthetic camera footage to a crop dataset: counts, frames, cameras and tracks in the
manifest; appending; bad input; TCUL using the tracks."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest

pytest.importorskip("av", reason="PyAV (the video extra) is not installed: pip install 'progreid[video]'")

from progreid.cli import main  # noqa: E402
from progreid.data.layouts import load_dataset  # noqa: E402
from progreid.errors import DatasetError  # noqa: E402
from progreid.footage.crops import CameraFootage, cut_crops, read_listing, stride_in_frames  # noqa: E402
from progreid.footage.synth import write_footage  # noqa: E402
from progreid.footage.tracks import read_tracks  # noqa: E402

PEOPLE, PERSON_FRAMES = 3, 12


@pytest.fixture(scope="module")
def footage(tmp_path_factory) -> Path:
    return write_footage(tmp_path_factory.mktemp("footage"), cameras=2, people=PEOPLE, person_frames=PERSON_FRAMES)


def rows(folder: Path) -> list[dict[str, str]]:
    with (folder / "manifest.csv").open(newline="") as fh:
        return list(csv.DictReader(fh))


def test_crops_follow_the_tracks_with_the_stride_and_the_frame(footage, tmp_path):
    out = tmp_path / "crops"
    result = cut_crops(read_listing(footage), out, stride=3)
    per_track = len(range(0, PERSON_FRAMES, 3))  # frames 0, 3, 6, 9 of each track's 12
    assert [s.crops for s in result.cameras] == [PEOPLE * per_track] * 2
    assert [s.tracks for s in result.cameras] == [PEOPLE] * 2 and all(s.boxes == PEOPLE * PERSON_FRAMES for s in result.cameras)
    # people enter and leave through the frame's edges: their first (and for some, last) boxes are clipped
    assert all(0 < s.clipped < s.crops for s in result.cameras)
    table = rows(out)
    assert len(table) == 2 * PEOPLE * per_track
    truth = {(int(b.track), int(b.frame)) for b in read_tracks(footage.parent / "cam1.txt")}
    cam1 = [r for r in table if r["camid"] == "1"]
    assert {(int(r["track"]), int(r["frame"])) for r in cam1} <= truth
    for track in range(1, PEOPLE + 1):
        frames = sorted(int(r["frame"]) for r in cam1 if int(r["track"]) == track)
        assert [b - a for a, b in zip(frames, frames[1:])] == [3] * (per_track - 1)
    split = load_dataset(out)  # the csv layout reads it, tracks included
    assert len(split.train) == len(table) and {r.camid for r in split.train} == {1, 2}
    assert {r.track for r in split.train} == set(range(1, PEOPLE + 1)) and all(r.sequence == 1 for r in split.train)
    assert all((out / r["path"]).is_file() for r in table)


def test_a_stride_in_seconds_follows_each_videos_frame_rate(footage, tmp_path):
    slow = write_footage(tmp_path / "slow", cameras=1, people=1, fps=5, person_frames=PERSON_FRAMES)
    assert stride_in_frames("0.3s", footage.parent / "cam1.mp4") == 3  # written at 10 fps
    assert stride_in_frames("0.6s", slow.parent / "cam1.mp4") == 3  # 5 fps
    assert stride_in_frames(7, slow.parent / "cam1.mp4") == 7  # frames as given
    by_time = cut_crops(read_listing(footage), tmp_path / "by_time", stride="0.3s")
    assert [s.stride_frames for s in by_time.cameras] == [3, 3]
    by_frames = cut_crops(read_listing(footage), tmp_path / "by_frames", stride=3)
    assert [r["frame"] for r in rows(tmp_path / "by_time")] == [r["frame"] for r in rows(tmp_path / "by_frames")]
    for bad in ("0s", "-1", "2.5", "fast"):
        with pytest.raises(DatasetError, match="--stride"):
            cut_crops(read_listing(footage), tmp_path / "bad", stride=bad)


def test_small_boxes_are_dropped_and_boxes_outside_counted(footage, tmp_path):
    tracks = tmp_path / "cam1.txt"
    lines = (footage.parent / "cam1.txt").read_text().splitlines()
    tracks.write_text("\n".join(lines + ["2,90,-500,-500,20,40,1,-1,-1,-1", "3,91,10,10,10,20,1,-1,-1,-1",
                                          "99999,92,10,10,50,100,1,-1,-1,-1"]) + "\n")
    summary = cut_crops([CameraFootage(footage.parent / "cam1.mp4", tracks, 1)], tmp_path / "out", stride=1,
                        min_height=30).cameras[0]
    assert (summary.outside, summary.too_small, summary.beyond_video) == (1, 1, 1)
    assert summary.crops == PEOPLE * PERSON_FRAMES


def test_another_days_footage_appends_as_the_next_sequence(footage, tmp_path):
    out = tmp_path / "crops"
    cut_crops(read_listing(footage), out, stride=4)
    before = rows(out)
    again = cut_crops(read_listing(footage), out, stride=4)  # the same videos: nothing new
    assert [s.status for s in again.cameras] == ["already cut"] * 2 and rows(out) == before
    day2 = tmp_path / "day2.mp4"
    shutil.copy(footage.parent / "cam1.mp4", day2)
    with day2.open("ab") as fh:
        fh.write(b"\0")  # another file: a different size
    cut_crops([CameraFootage(day2, footage.parent / "cam1.txt", 1)], out, stride=4)
    after = rows(out)
    assert after[:len(before)] == before
    new = after[len(before):]
    assert new and {r["sequence"] for r in new} == {"2"} and {r["camid"] for r in new} == {"1"}
    assert len(json.loads((out / "crops.json").read_text())) == 3


def test_bad_input_is_a_clear_error_and_loses_nothing(footage, tmp_path):
    out = tmp_path / "crops"
    cams = read_listing(footage)
    with pytest.raises(DatasetError, match="camera 1 is listed twice"):
        cut_crops([cams[0], CameraFootage(cams[1].video, cams[1].tracks, 1)], out)
    bad_tracks = tmp_path / "bad.txt"
    bad_tracks.write_text("1,1,10,10,40,80,1\n2,1,10,ten,40,80,1\n")
    with pytest.raises(DatasetError, match=r"bad.txt:2: malformed track line"):
        cut_crops([CameraFootage(cams[0].video, bad_tracks, 1)], out)
    cut_crops([cams[0]], out, stride=4)  # camera 1 done
    kept = rows(out)
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"not a video at all" * 100)
    with pytest.raises(DatasetError, match=r"broken.mp4: cannot be opened as a video"):
        cut_crops([CameraFootage(broken, cams[1].tracks, 2)], out)
    assert rows(out) == kept and all((out / r["path"]).is_file() for r in kept)
    assert not any(p.name.startswith(".") for p in (out / "images").iterdir())  # no staging folder left


def test_tcul_on_the_crops_uses_the_tracks(footage, tmp_path):
    out = tmp_path / "crops"
    assert main(["crops", "--list", str(footage), "--out", str(out), "--stride", "2"]) == 0
    run = tmp_path / "run"
    # a 1-frame window: only the tracks can make crops other than the temporary centers reliable
    assert main(["-q", "adapt", "--method", "tcul", "--preset", "quick", "--target", str(out), "--out", str(run),
                 "--set", "loop.max_rounds=1", "--set", "select.frame_window=1", "--set", "cluster.k=4",
                 "--set", "data.height=64", "--set", "data.width=32", "--set", "train.batch_size=16"]) == 0
    row = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()][-1]
    assert row["round"] == 1 and row["reliable_by_track_only"] > 0
    assert row["reliable"] > row["reliable_by_track_only"]
    # the chain's last step: the adapted run out as a tracker's weights file and an ONNX model
    pytest.importorskip("onnxruntime", reason="onnxruntime (the export extra) is not installed")
    from progreid import api
    from progreid.models import load_model

    pt = api.export(run, "torchreid", tmp_path / "export")["path"]
    assert pt.name == "osnet_x0_25_run.pt"
    load_model("osnet_x0_25", pt)  # strict key check
    onnx = api.export(run, "onnx", tmp_path / "export", check_images=out / "images")
    assert onnx["max_abs_difference"] <= 1e-4
    # ... and features computed with onnxruntime alone, as a deployment would
    import numpy as np

    assert main(["extract", "--data", str(out), "--onnx", str(onnx["path"]), "--out", str(tmp_path / "f_onnx"),
                 "--parts", "train"]) == 0
    assert main(["extract", "--data", str(out), "--weights", str(pt), "--out", str(tmp_path / "f_torch"),
                 "--parts", "train", "--height", "64", "--width", "32"]) == 0  # the run's input size (ONNX: from the file)
    by_onnx, by_torch = (np.load(tmp_path / f / "train_features.npy") for f in ("f_onnx", "f_torch"))
    assert by_onnx.shape == (len(rows(out)), 512) and np.abs(by_onnx - by_torch).max() <= 1e-4
