import json

import pytest

from progreid.cli import main

from conftest import shared_path, write_image

DIRECT_TRANSFER = [  # (dataset, weights, R1, mAP): torchreid's numbers for the same weights
    ("market1501-mini", "osnet_x0_25_msmt17.pth", 51.3, 29.6),
    ("cuhk03-mini", "osnet_x0_25_msmt17.pth", 10.5, 11.9),
]


@pytest.mark.parametrize("data,weights,r1,mAP", DIRECT_TRANSFER)
def test_evaluate_reproduces_torchreid(tmp_path, capsys, data, weights, r1, mAP):
    out = tmp_path / "m.json"
    code = main(["-q", "evaluate", "--data", str(shared_path(data)), "--arch", "osnet_x0_25",
                 "--weights", str(shared_path("weights", weights)), "--json", str(out)])
    assert code == 0
    metrics = json.loads(out.read_text())
    assert set(metrics) >= {"rank1", "rank5", "rank10", "rank20", "mAP", "mINP"}
    assert abs(metrics["rank1"] - r1) <= 0.5 and abs(metrics["mAP"] - mAP) <= 0.5
    assert "R1" in capsys.readouterr().out


def test_user_mistakes_print_one_line_not_a_traceback(tmp_path, capsys):
    assert main(["datasets", "--data", str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("progreid: error:") and "missing" in err and "Traceback" not in err
    write_image(tmp_path / "d" / "query" / "0001_c1s1_000001_00.jpg")
    write_image(tmp_path / "d" / "bounding_box_test" / "0001_c2s1_000001_00.jpg")
    assert main(["-q", "evaluate", "--data", str(tmp_path / "d"), "--weights", str(tmp_path / "w.pth")]) == 2
    assert "w.pth: weights file not found" in capsys.readouterr().err


def test_extract_writes_features_and_records(tmp_path, capsys):
    for i, name in enumerate(["0001_c1s1_000001_00.jpg", "0002_c2s1_000005_00.jpg"]):
        write_image(tmp_path / "d" / "bounding_box_train" / name, color=(50 * i, 80, 90))
    assert main(["-q", "extract", "--data", str(tmp_path / "d"), "--out", str(tmp_path / "o"), "--parts", "train",
                 "--height", "64", "--width", "32"]) == 0
    import numpy as np

    feats = np.load(tmp_path / "o" / "train_features.npy")
    assert feats.shape == (2, 512)
    lines = (tmp_path / "o" / "train_records.csv").read_text().splitlines()
    assert lines[0] == "path,pid,camid,sequence,frame,track" and lines[2].endswith(",2,2,1,5,")


def test_bad_device_and_bad_override_are_user_errors(tmp_path, capsys):
    write_image(tmp_path / "d" / "bounding_box_train" / "0001_c1s1_000001_00.jpg")
    assert main(["-q", "adapt", "--target", str(tmp_path / "d"), "--out", str(tmp_path / "r"),
                 "--device", "gpu"]) == 2
    assert "--device 'gpu'" in capsys.readouterr().err
    assert main(["-q", "adapt", "--target", str(tmp_path / "d"), "--out", str(tmp_path / "r2"),
                 "--set", "train.epochz=3"]) == 2
    assert "unknown key 'epochz'" in capsys.readouterr().err
    # nothing was lost and nothing blocks a corrected retry: the folder holds no finished round
    assert not (tmp_path / "r" / "state.json").exists()
