"""Target loading: labels deleted at load, ground truth kept apart, semi-supervised label sources."""

import numpy as np
import pytest

from progreid.config import load_config
from progreid.data.records import UNLABELED
from progreid.engine.target import labeled_subset, load_target
from progreid.errors import ProgReIDError

from conftest import write_image


@pytest.fixture
def target_dir(tmp_path):
    for pid in (1, 2, 3):
        for cam in (1, 2):
            write_image(tmp_path / "t" / "bounding_box_train" / f"{pid:04d}_c{cam}s1_{100 * pid + cam:06d}_00.jpg")
    return tmp_path / "t"


def cfg_for(target, *extra):
    return load_config("pul", "quick", overrides=["data.height=32", "data.width=16", f"data.target={target}", *extra])


def test_identities_are_deleted_and_kept_apart(target_dir):
    t = load_target(cfg_for(target_dir), progress=False)
    assert {r.pid for r in t.train} == {UNLABELED}
    assert t.truth.tolist() == [1, 1, 2, 2, 3, 3]
    assert t.train_images.shape == (6, 32, 16, 3) and not t.has_test


def test_labeled_ids_experiment_and_labeled_csv(target_dir, tmp_path):
    t = load_target(cfg_for(target_dir), progress=False)
    idx, cls = labeled_subset(cfg_for(target_dir, "semi.labeled_ids=2"), t)
    assert len(idx) == 4 and sorted(set(cls.tolist())) == [0, 1]
    pairs = {(int(t.truth[i]), int(c)) for i, c in zip(idx, cls)}
    assert len(pairs) == 2 and len({p for p, _ in pairs}) == 2  # one class per chosen identity
    csv = tmp_path / "labels.csv"
    csv.write_text("path,pid\nt/bounding_box_train/0002_c1s1_000201_00.jpg,77\n"
                   "t/bounding_box_train/0002_c2s1_000202_00.jpg,77\nt/bounding_box_train/0003_c1s1_000301_00.jpg,5\n")
    idx, cls = labeled_subset(cfg_for(target_dir, f"semi.labeled_csv={csv}"), t)
    assert idx.tolist() == [2, 3, 4] and cls.tolist() == [1, 1, 0]
    csv.write_text("path,pid\nnot/there.jpg,1\n")
    with pytest.raises(ProgReIDError, match="labels.csv:2"):
        labeled_subset(cfg_for(target_dir, f"semi.labeled_csv={csv}"), t)
    none_idx, _ = labeled_subset(cfg_for(target_dir), t)
    assert len(none_idx) == 0 and np.issubdtype(none_idx.dtype, np.integer)
