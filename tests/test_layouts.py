from pathlib import Path

import pytest
from PIL import Image

from progreid.data.layouts import detect_layout, load_dataset, require_parts
from progreid.data.records import DISTRACTOR, UNLABELED, relabel, without_labels
from progreid.errors import DatasetError

from conftest import shared_path, write_image


def make_market(root: Path, names: dict[str, list[str]]) -> Path:
    for sub, files in names.items():
        for n in files:
            write_image(root / sub / n)
    return root


def test_market_parses_ids_cameras_sequences_frames_and_drops_junk(tmp_path):
    root = make_market(tmp_path / "m", {
        "bounding_box_train": ["0002_c1s1_000451_03.jpg", "0002_c2s3_000100_01.jpg"],
        "query": ["0007_c1s6_028546_01.jpg"],
        "bounding_box_test": ["-1_c1s1_000001_00.jpg", "0000_c3s1_000010_00.jpg", "0007_c2s3_070952_01.jpg"],
    })
    split = load_dataset(root)
    assert [(r.pid, r.camid, r.sequence, r.frame) for r in split.train] == [(2, 1, 1, 451), (2, 2, 3, 100)]
    assert [r.pid for r in split.gallery] == [DISTRACTOR, 7]  # junk (-1) dropped, distractor kept
    assert split.has_frames
    rows = {row[0]: row[1:] for row in split.statistics()}
    assert rows["train"] == (1, 2, 2) and rows["gallery"] == (2, 2, 2)
    assert "train" in split.format_statistics()


def test_bad_name_error_names_the_file_and_pattern(tmp_path):
    root = make_market(tmp_path / "m", {"bounding_box_train": ["0002_c1s1_000451_03.jpg", "person_12.jpg"]})
    with pytest.raises(DatasetError) as exc:
        load_dataset(root, "market1501")
    msg = str(exc.value)
    assert "person_12.jpg" in msg and "0002_c1s1_000451_03.jpg" in msg and "--layout" in msg


def test_missing_folder_and_missing_parts_are_clear(tmp_path):
    with pytest.raises(DatasetError, match="does not exist"):
        load_dataset(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="cannot tell the dataset layout"):
        load_dataset(tmp_path / "empty")
    with pytest.raises(DatasetError, match="bounding_box_train"):
        load_dataset(tmp_path / "empty", "market1501")
    root = make_market(tmp_path / "m", {"bounding_box_train": ["0002_c1s1_000451_03.jpg"]})
    with pytest.raises(DatasetError, match=r"query \(query/\), gallery \(bounding_box_test/\)"):
        require_parts(load_dataset(root), "query", "gallery")


def test_duke_and_cuhk03_layouts(tmp_path):
    duke = make_market(tmp_path / "d", {"bounding_box_train": ["0001_c2_f0046182.jpg"], "query": ["0005_c1_f0000010.jpg"]})
    assert detect_layout(duke) == "dukemtmc"
    r = load_dataset(duke).train[0]
    assert (r.pid, r.camid, r.sequence, r.frame) == (1, 2, 0, 46182)
    cuhk = make_market(tmp_path / "c", {"bounding_box_train": ["0001_c1_00.jpg", "0001_c2_05.jpg"]})
    assert detect_layout(cuhk) == "cuhk03"
    split = load_dataset(cuhk)
    assert [(r.pid, r.camid, r.frame) for r in split.train] == [(1, 1, None), (1, 2, None)]
    assert not split.has_frames


def test_msmt17_list_files(tmp_path):
    root = tmp_path / "msmt"
    write_image(root / "train" / "0000" / "0000_000_01_0303morning_0015_0.jpg")
    write_image(root / "test" / "0001" / "0001_003_07_0303noon_0100_1.jpg")
    write_image(root / "test" / "0001" / "0001_004_02_0303noon_0200_1.jpg")
    (root / "list_train.txt").write_text("0000/0000_000_01_0303morning_0015_0.jpg 0\n")
    (root / "list_query.txt").write_text("0001/0001_003_07_0303noon_0100_1.jpg 1\n")
    (root / "list_gallery.txt").write_text("0001/0001_004_02_0303noon_0200_1.jpg 1\n")
    assert detect_layout(root) == "msmt17"
    split = load_dataset(root)
    assert [(r.pid, r.camid) for r in split.train] == [(0, 1)]
    assert [(r.pid, r.camid) for r in split.query + split.gallery] == [(1, 7), (1, 2)]
    (root / "list_query.txt").write_text("garbage\n")
    with pytest.raises(DatasetError, match="list_query.txt:1"):
        load_dataset(root)


def test_csv_manifest_unlabeled_and_labeled(tmp_path):
    root = tmp_path / "net"
    for n in ("a.jpg", "b.jpg", "c.jpg"):
        write_image(root / "crops" / n)
    (root / "manifest.csv").write_text(
        "path,camid,pid,frame,split\ncrops/a.jpg,1,,10,train\ncrops/b.jpg,2,,,train\ncrops/c.jpg,1,4,,query\n")
    split = load_dataset(root)
    assert [(r.pid, r.camid, r.frame) for r in split.train] == [(UNLABELED, 1, 10), (UNLABELED, 2, None)]
    assert split.query[0].pid == 4 and split.query[0].path.endswith("crops/c.jpg")
    assert split.statistics()[0][1] == 0  # unlabeled images count no identity
    (root / "manifest.csv").write_text("path,camera\nx.jpg,1\n")
    with pytest.raises(DatasetError, match="header"):
        load_dataset(root)
    (root / "manifest.csv").write_text("path,camid\nx.jpg,one\n")
    with pytest.raises(DatasetError, match="manifest.csv:2"):
        load_dataset(root)
    for ragged in ("path,camid,frame,split\nx.jpg,1,train\n", "path,camid\nx.jpg,1,7\n"):  # a column short, one extra
        (root / "manifest.csv").write_text(ragged)
        with pytest.raises(DatasetError, match="manifest.csv:2: not as many fields"):
            load_dataset(root)


def test_labels_can_be_deleted_and_relabelled(tmp_path):
    root = make_market(tmp_path / "m", {"bounding_box_train": ["0002_c1s1_000451_03.jpg", "0009_c1s1_000451_03.jpg",
                                                               "0002_c2s1_000451_03.jpg"]})
    train = load_dataset(root).train
    labels, n = relabel(train)
    assert labels == [0, 0, 1] and n == 2
    assert {r.pid for r in without_labels(train)} == {UNLABELED}


@pytest.mark.parametrize("name,expected", [
    ("market1501-mini", [("train", 376, 6338, 6), ("query", 375, 1635, 6), ("gallery", 372, 4963, 6)]),
    ("cuhk03-mini", [("train", 422, 4109, 2), ("query", 421, 842, 2), ("gallery", 421, 3226, 2)]),
])
def test_shared_datasets_load_with_market_layout(name, expected):
    split = load_dataset(shared_path(name))
    assert split.statistics() == expected


# ---- crops as people have them (the "folders" layout, detected) ----
def _crop(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (32, 64), (120, 80, 40)).save(path)


def test_a_plain_folder_of_crops_is_one_camera_without_frames(tmp_path):
    for i in range(1, 6):
        _crop(tmp_path / f"img_{i}.jpg")
    split = load_dataset(tmp_path)
    assert len(split.train) == 5 and {r.camid for r in split.train} == {1} and not split.has_frames
    assert "one camera" in split.format_statistics()


def test_a_folder_per_camera_gives_one_camera_each_with_its_name(tmp_path):
    for cam in ("cam2", "cam10", "cam1"):
        for i in range(3):
            _crop(tmp_path / cam / f"x{i}.jpg")
    split = load_dataset(tmp_path)
    assert split.camera_names == {1: "cam1", 2: "cam2", 3: "cam10"}  # natural order
    assert sorted({r.camid for r in split.train}) == [1, 2, 3]
    assert "3=cam10" in split.format_statistics()


def test_tracker_crop_folders_keep_track_and_frame(tmp_path):
    _crop(tmp_path / "vid1" / "person" / "3" / "000012.jpg")
    _crop(tmp_path / "vid1" / "person" / "7" / "frame_15.jpg")
    _crop(tmp_path / "vid2" / "person" / "3" / "f9.jpg")
    split = load_dataset(tmp_path)
    got = sorted((r.camid, r.track, r.frame) for r in split.train)
    assert got == [(1, 3, 12), (1, 7, 15), (2, 3, 9)] and split.has_frames


def test_motchallenge_style_track_folders_are_tracks_of_one_camera(tmp_path):
    _crop(tmp_path / "1" / "a.jpg")
    _crop(tmp_path / "2" / "b.jpg")
    split = load_dataset(tmp_path)
    assert sorted(r.track for r in split.train) == [1, 2] and {r.camid for r in split.train} == {1}


def test_market_folders_with_other_names_still_ask_for_a_layout(tmp_path):
    _crop(tmp_path / "bounding_box_train" / "img_1.jpg")
    with pytest.raises(DatasetError, match="pass --layout"):
        load_dataset(tmp_path)
