"""Every bad input a hostile new user tries: exit code 2, one line naming the file or option (and the
fix), no traceback; and the run folder's lock, integrity check and resume from the last good round."""

from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from progreid.cli import main

from conftest import write_image

SMALL = ["--set", "data.height=64", "--set", "data.width=32"]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A tiny synthetic network, random weights, and a finished 2-round PUL run (the folder cases copy it)."""
    from progreid.data.synth import generate_domain
    from progreid.models import build_model, save_weights

    root = tmp_path_factory.mktemp("world")
    os.environ["PROGREID_CACHE"] = str(root / "cache")
    data = generate_domain(root / "net", "target", num_ids=12, num_cameras=2, seed=0)
    torch.manual_seed(0)
    weights = root / "w.safetensors"
    save_weights(build_model("osnet_x0_25"), weights)
    run = root / "run"
    assert cli([*adapt_args(data, weights, run)])[0] == 0
    return {"root": root, "data": data, "weights": weights, "run": run}


def adapt_args(data: Path, weights: Path, out: Path, *extra: str) -> list[str]:
    return ["-q", "adapt", "--method", "pul", "--preset", "quick", "--target", str(data), "--weights", str(weights),
            "--out", str(out), *SMALL, "--set", "train.epochs=1", "--set", "loop.max_rounds=2",
            "--set", "cluster.k=6", *extra]


def cli(argv: list[str]) -> tuple[int, str]:
    """(exit code, stderr) of ``progreid argv`` in this process; argparse's exits count as codes."""
    import contextlib
    import io

    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            code = main(argv)
        except SystemExit as exc:
            code = exc.code
    return int(code or 0), err.getvalue()


def png_header(path: Path, width: int, height: int) -> Path:
    """A PNG whose header claims ``width`` x ``height`` (the pixels are never reached: a decompression bomb)."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64))
                     + chunk(b"IEND", b""))
    return path


def manifest(folder: Path, text: str, images: tuple[str, ...] = ("a.jpg", "b.jpg")) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name in images:
        write_image(folder / name)
    (folder / "manifest.csv").write_text(text, encoding="utf-8")
    return folder


def flip_byte(path: Path, at: int = -100) -> None:
    data = bytearray(path.read_bytes())
    data[at] ^= 0xFF
    path.write_bytes(bytes(data))


# ---- the table: (id, build argv from the world and a scratch folder, what the one-line error must name) ----
def _evaluate(w, *extra):
    return ["-q", "evaluate", "--data", str(w["data"]), "--weights", str(w["weights"]), "--height", "64",
            "--width", "32", *extra]


def _rank(w, tmp, *extra):
    q = str(w["data"] / "query")
    return ["-q", "rank", "--weights", str(w["weights"]), "--arch", "osnet_x0_25", "--query", q, "--gallery", q,
            *extra]


def _adapt_set(*sets):
    def build(w, tmp):
        return adapt_args(w["data"], w["weights"], tmp / "r", *[x for s in sets for x in ("--set", s)])
    return build


def _random_bytes(w, tmp):
    (tmp / "w.pth").write_bytes(os.urandom(4096))
    return _evaluate(w, "--weights", str(tmp / "w.pth"))


def _truncated(w, tmp):
    (tmp / "w.safetensors").write_bytes(w["weights"].read_bytes()[:5000])
    return _evaluate(w, "--weights", str(tmp / "w.safetensors"))


def _zero_bytes(w, tmp):
    (tmp / "w.pth").write_bytes(b"")
    return _evaluate(w, "--weights", str(tmp / "w.pth"))


def _copy_run(w, tmp) -> Path:
    shutil.copytree(w["run"], tmp / "run")
    return tmp / "run"


def _resume(w, tmp, *extra):
    return ["-q", "adapt", "--out", str(_copy_run(w, tmp)), "--resume", *extra]


def _one_pixel_query(w, tmp):
    data = tmp / "d"
    shutil.copytree(w["data"], data)
    Image.new("RGB", (1, 1)).save(data / "query" / "0001_c1s1_000001_00.jpg")
    return _evaluate(w, "--data", str(data))


def _huge_query(w, tmp, size):
    data = tmp / "d"
    shutil.copytree(w["data"], data)
    png_header(data / "query" / "0001_c1s1_000001_00.png", *size)
    return _evaluate(w, "--data", str(data))


def _nan_track(w, tmp):
    (tmp / "t.txt").write_text("1,1,10,10,20,60,1\n2,1,nan,10,20,60,1\n")
    (tmp / "v.mp4").write_bytes(b"")
    return ["-q", "crops", "--video", str(tmp / "v.mp4"), "--tracks", str(tmp / "t.txt"), "--camera", "1",
            "--out", str(tmp / "c")]


def _jpeg_video(w, tmp):
    write_image(tmp / "frame.jpg")
    (tmp / "t.txt").write_text("1,1,0,0,20,60,1\n")
    return ["-q", "crops", "--video", str(tmp / "frame.jpg"), "--tracks", str(tmp / "t.txt"), "--camera", "1",
            "--out", str(tmp / "c")]


def _export(w, tmp, *extra):
    return ["-q", "export", str(w["weights"]), "--arch", "osnet_x0_25", "--format", "torchreid", *extra]


def _export_existing(w, tmp):
    (tmp / "osnet_x0_25_mine.pt").write_bytes(b"keep me")
    return _export(w, tmp, "--out", str(tmp / "osnet_x0_25_mine.pt"))


def _rank_existing(w, tmp):
    (tmp / "r.html").write_text("keep me")
    return _rank(w, tmp, "--out", str(tmp / "r.html"))


def _unfinished_run(w, tmp):
    run = _copy_run(w, tmp)
    (run / "state.json").write_text(json.dumps({"last_round": 0, "finished": False}))
    return _rank(w, tmp, "--weights", str(run), "--out", str(tmp / "r.html"))


def _corrupt_export(w, tmp):
    run = _copy_run(w, tmp)
    flip_byte(run / "checkpoints" / "round_02.safetensors")
    return ["-q", "export", str(run), "--format", "torchreid", "--out", str(tmp / "e")]


def _adapt_out(w, tmp, out):
    return adapt_args(w["data"], w["weights"], out)


def _file_as_out(w, tmp):
    (tmp / "f").write_text("x")
    return _adapt_out(w, tmp, tmp / "f")


def _busy_folder(w, tmp):
    (tmp / "mine").mkdir()
    (tmp / "mine" / "notes.txt").write_text("my notes")
    return _adapt_out(w, tmp, tmp / "mine")


def _manifest_case(text):
    def build(w, tmp):
        return ["datasets", "--data", str(manifest(tmp / "m", text))]
    return build


def _config_file(w, tmp):
    (tmp / "c.yaml").write_text("- just\n- a list\n")
    return adapt_args(w["data"], w["weights"], tmp / "r", "--config", str(tmp / "c.yaml"))


def _train_over_model(w, tmp):
    (tmp / "src").mkdir()
    (tmp / "src" / "model.safetensors").write_bytes(b"keep me")
    return ["-q", "train", "--source", str(w["data"]), "--out", str(tmp / "src"), *SMALL]


def _extract_existing(w, tmp):
    (tmp / "o").mkdir()
    np.save(tmp / "o" / "train_features.npy", np.zeros(3))
    return ["-q", "extract", "--data", str(w["data"]), "--weights", str(w["weights"]), "--out", str(tmp / "o"),
            "--parts", "train", "--height", "64", "--width", "32"]


CASES = [
    # silent wrong results before
    ("evaluate --batch-size=-1", lambda w, t: _evaluate(w, "--batch-size=-1"), "--batch-size"),
    ("train.epochs=-1 (train)", lambda w, t: ["-q", "train", "--source", str(w["data"]), "--out", str(t / "s"),
                                              "--set", "train.epochs=-1"], "train.epochs"),
    ("select.lam=1.5", _adapt_set("select.lam=1.5"), "select.lam"),
    ("select.lam=-0.2", _adapt_set("select.lam=-0.2"), "select.lam"),
    ("rank --top -3", lambda w, t: _rank(w, t, "--top", "-3", "--out", str(t / "r.html")), "--top"),
    ("duplicate manifest rows", _manifest_case("path,camid\na.jpg,1\nb.jpg,2\na.jpg,1\n"), "listed again"),
    ("1x1-pixel crop", _one_pixel_query, "data.min_side"),
    ("JPEG as crops --video", _jpeg_video, "still image"),
    ("resume with another --method", lambda w, t: _resume(w, t, "--method", "cc"), "method"),
    ("resume with another --set", lambda w, t: _resume(w, t, "--set", "train.epochs=5"), "train.epochs"),
    ("corrupt checkpoint exported", _corrupt_export, "round_02.safetensors"),
    # tracebacks before
    ("train.epochs=0", _adapt_set("train.epochs=0"), "train.epochs"),
    ("data.height=3", _adapt_set("data.height=3"), "data.height"),
    ("train.lr=-0.1", _adapt_set("train.lr=-0.1"), "train.lr"),
    ("cluster.min_samples=0", _adapt_set("cluster.min_samples=0"), "cluster.min_samples"),
    ("evaluate --height -5", lambda w, t: _evaluate(w, "--height", "-5"), "--height"),
    ("20000x20000 image", lambda w, t: _huge_query(w, t, (20000, 20000)), "0001_c1s1_000001_00.png"),
    ("10000x6000 image", lambda w, t: _huge_query(w, t, (10000, 6000)), "data.max_pixels"),
    ("NaN box in a track line", _nan_track, "t.txt:2"),
    ("truncated checkpoint", _truncated, "w.safetensors"),
    ("zero-byte checkpoint", _zero_bytes, "empty"),
    ("--out is a file", _file_as_out, "is a file"),
    ("--out cannot be created", lambda w, t: _adapt_out(w, t, Path("/proc/progreid-run")), "/proc/progreid-run"),
    ("export --out onto an existing file", _export_existing, "--force"),
    ("rank --out onto an existing file", _rank_existing, "--force"),
    ("rank --out onto a folder", lambda w, t: _rank(w, t, "--out", str(t)), "is a folder"),
    # errors without the right fix before
    ("random bytes as --weights", _random_bytes, "w.pth"),
    ("a folder as --weights", lambda w, t: _evaluate(w, "--weights", str(t)), "is a folder"),
    ("header-only manifest", _manifest_case("path,camid\n"), "empty manifest"),
    ("rank on an unfinished run", _unfinished_run, "no round has finished"),
    # the same classes of input elsewhere
    ("cluster.eps=1.5", _adapt_set("cluster.eps=1.5"), "cluster.eps"),
    ("cluster.k=abc", _adapt_set("cluster.k=abc"), "cluster.k"),
    ("train.memory=foo", _adapt_set("train.memory=foo"), "train.memory"),
    ("augment flip 2", _adapt_set("train.augment.flip=2"), "train.augment.flip"),
    ("unknown --set key", _adapt_set("train.epochz=3"), "epochz"),
    ("--set without =", lambda w, t: adapt_args(w["data"], w["weights"], t / "r", "--set", "train.epochs"),
     "section.key=value"),
    ("--preset unknown", lambda w, t: adapt_args(w["data"], w["weights"], t / "r", "--preset", "fast"), "--preset"),
    ("--labeled-ids -1", lambda w, t: adapt_args(w["data"], w["weights"], t / "r", "--labeled-ids", "-1"),
     "--labeled-ids"),
    ("--max-rounds 0", lambda w, t: _resume(w, t, "--max-rounds", "0"), "--max-rounds"),
    ("--seed -1", lambda w, t: adapt_args(w["data"], w["weights"], t / "r", "--seed", "-1"), "--seed"),
    ("--config not a mapping", _config_file, "c.yaml"),
    ("missing --labeled-csv", lambda w, t: adapt_args(w["data"], w["weights"], t / "r", "--labeled-csv",
                                                        str(t / "no.csv")), "no.csv"),
    ("resume where no run is", lambda w, t: ["-q", "adapt", "--out", str(t / "none"), "--resume"], "no run"),
    ("adapt into a folder of other files", _busy_folder, "--force"),
    ("train over an existing model", _train_over_model, "--force"),
    ("extract over existing features", _extract_existing, "--force"),
    ("export --format torchscript --out x.pt", lambda w, t: ["-q", "export", str(w["weights"]), "--arch",
     "osnet_x0_25", "--format", "torchscript", "--out", str(t / "osnet_x0_25_x.pt")], ".torchscript"),
    ("export under a stock tracker name", lambda w, t: _export(w, t, "--out", str(t / "osnet_x0_25_msmt17.pt")),
     "stock model"),
    ("export without the arch in the name", lambda w, t: _export(w, t, "--out", str(t / "mine.pt")), "osnet_x0_25"),
    ("export --round 0", lambda w, t: ["-q", "export", str(w["run"]), "--format", "onnx", "--out", str(t),
                                       "--round", "0"], "--round"),
    ("export a round the run does not have", lambda w, t: ["-q", "export", str(w["run"]), "--format", "onnx",
                                                            "--out", str(t), "--round", "7"], "round 7"),
    ("crops --stride 0", lambda w, t: ["-q", "crops", "--video", "v", "--tracks", "t", "--camera", "1", "--out",
                                       str(t / "c"), "--stride", "0"], "--stride"),
    ("crops --min-height 0", lambda w, t: ["-q", "crops", "--list", "l.yaml", "--out", str(t / "c"),
                                           "--min-height", "0"], "--min-height"),
    ("synth --ids 0", lambda w, t: ["synth", "--out", str(t / "s"), "--ids", "0"], "--ids"),
    ("weights of another arch", lambda w, t: _evaluate(w, "--arch", "osnet_x1_0"), "--arch"),
    ("report on a folder that is no run", lambda w, t: ["report", str(t)], "no metrics.jsonl"),
    ("manifest camid not a number", _manifest_case("path,camid\na.jpg,one\n"), "manifest.csv:2"),
    ("--layout unknown", lambda w, t: ["datasets", "--data", str(t), "--layout", "voc"], "--layout"),
]


@pytest.mark.parametrize("build,names", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_is_one_line_naming_it_with_exit_code_2(world, tmp_path, build, names):
    code, err = cli(build(world, tmp_path))
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("progreid") and "error:" in lines[0], err
    assert names in lines[0] and "Traceback" not in err
    assert "weights_only" not in err  # never pass on advice to unpickle a file


def test_what_was_refused_is_still_there(world, tmp_path):
    cli(_export_existing(world, tmp_path))
    assert (tmp_path / "osnet_x0_25_mine.pt").read_bytes() == b"keep me"
    cli(_train_over_model(world, tmp_path))
    assert (tmp_path / "src" / "model.safetensors").read_bytes() == b"keep me"
    cli(_rank_existing(world, tmp_path))
    assert (tmp_path / "r.html").read_text() == "keep me"


def test_manifest_with_a_byte_order_mark_is_read(tmp_path, capsys):
    folder = manifest(tmp_path / "m", "\ufeffpath,camid\na.jpg,1\nb.jpg,2\n")
    assert main(["datasets", "--data", str(folder)]) == 0
    assert "train" in capsys.readouterr().out


def test_oversized_and_tiny_crops_are_counted_skips_under_skip(tmp_path):
    from progreid.data.images import load_images

    write_image(tmp_path / "ok.jpg")
    Image.new("RGB", (1, 1)).save(tmp_path / "tiny.jpg")
    png_header(tmp_path / "bomb.png", 20000, 20000)
    bad: list[int] = []
    images = load_images([str(tmp_path / n) for n in ("ok.jpg", "tiny.jpg", "bomb.png")], (64, 32), bad=bad,
                         progress=False, use_cache=False)
    assert bad == [1, 2] and images[0].any() and not images[1:].any()


# ---- the run folder: one writer, verified rounds, resume from the last round that verifies ----
def _launch(argv: list[str]) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "-m", "progreid", *argv], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)


def test_two_writers_on_one_folder_one_runs_and_a_killed_one_leaves_no_lock(world, tmp_path):
    out = tmp_path / "run"
    argv = adapt_args(world["data"], world["weights"], out, "--set", "train.epochs=200")
    first = _launch(argv)
    time.sleep(0.1)
    second = _launch(argv)
    deadline = time.time() + 120
    while first.poll() is None and second.poll() is None and time.time() < deadline:
        time.sleep(0.1)
    loser, winner = (first, second) if first.poll() is not None else (second, first)
    assert loser.wait() == 2 and winner.poll() is None  # exactly one runs
    err = loser.stderr.read()
    assert str(out) in err and f"pid {winner.pid}" in err and "Traceback" not in err
    winner.kill()  # kill -9: the kernel drops its lock
    winner.wait()
    third = _launch(adapt_args(world["data"], world["weights"], out, "--set", "train.epochs=200", "--force"))
    deadline = time.time() + 60
    while (out / ".lock").read_text().strip() != str(third.pid) and third.poll() is None and time.time() < deadline:
        time.sleep(0.1)
    held = (out / ".lock").read_text().strip()
    third.kill()
    third.wait()
    assert held == str(third.pid), third.stderr.read()


def test_a_flipped_byte_in_the_last_checkpoint_resumes_from_the_round_before(world, tmp_path):
    run = _copy_run(world, tmp_path)
    expected = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    flip_byte(run / "checkpoints" / "round_02.safetensors")
    assert cli(["-q", "export", str(run), "--format", "torchreid", "--out", str(tmp_path / "e")])[0] == 2
    import contextlib
    import io

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["-q", "adapt", "--out", str(run), "--resume"]) == 0
    said = out.getvalue()
    assert "round_02.safetensors" in said and "resuming from round 1" in said
    again = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    volatile = {"seconds", "train_images_per_second"}
    assert [{k: v for k, v in r.items() if k not in volatile} for r in again] == \
        [{k: v for k, v in r.items() if k not in volatile} for r in expected]  # round 2 redone, the same
    assert cli(["-q", "export", str(run), "--format", "torchreid", "--out", str(tmp_path / "e")])[0] == 0


@pytest.mark.parametrize("damage", ["state.json", "metrics.jsonl", "deleted checkpoint", "round record"])
def test_damaged_run_files_resume_from_the_last_round_that_verifies(world, tmp_path, damage):
    run = _copy_run(world, tmp_path)
    if damage == "state.json":
        (run / "state.json").write_text("{not json")
    elif damage == "metrics.jsonl":
        (run / "metrics.jsonl").write_text("garbage\n")
    elif damage == "deleted checkpoint":
        (run / "checkpoints" / "round_02.safetensors").unlink()
    else:
        flip_byte(run / "checkpoints" / "round_02.json", 20)
    code, err = cli(["-q", "adapt", "--out", str(run), "--resume", "--max-rounds", "3"])
    assert code == 0, err
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["round"] for r in rows] == [0, 1, 2, 3]
    state = json.loads((run / "state.json").read_text())
    assert state["last_round"] == 3 and state["finished"]
