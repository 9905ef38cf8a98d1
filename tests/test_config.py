import pytest

from progreid.config import load_config, parse_override
from progreid.errors import ProgReIDError


def test_presets_overrides_and_files(tmp_path):
    pul = load_config("pul", "paper")
    assert (pul.train.epochs, pul.train.lr, pul.train.batch_size, pul.select.lam) == (20, 0.001, 16, 0.85)
    tcul = load_config("tcul", "paper")
    assert (tcul.select.method, tcul.cluster.labels, tcul.train.loss, tcul.train.p, tcul.train.k) == \
        ("temporal", "centers", "triplet", 16, 8)
    user = tmp_path / "mine.yaml"
    user.write_text("train: {epochs: 2}\nselect: {lam: 0.9}\n")
    cfg = load_config("pul", "quick", user, ["train.epochs=7", "train.augment.flip=0"])
    assert cfg.train.epochs == 7 and cfg.select.lam == 0.9 and cfg.train.augment.flip == 0.0
    assert parse_override("a.b.c=1") == {"a": {"b": {"c": 1}}}


@pytest.mark.parametrize("override,message", [
    ("train.lrr=1", "unknown key 'lrr'"),
    ("train.epochs=many", "expected int"),
    ("nonsense", "section.key=value"),
])
def test_bad_overrides_are_named(override, message):
    with pytest.raises(ProgReIDError, match=message):
        load_config("pul", "paper", overrides=[override])


def test_unknown_preset_and_method():
    with pytest.raises(ProgReIDError, match="choose one of"):
        load_config("pul", "fast")
    with pytest.raises(ProgReIDError, match="unknown --method"):
        load_config("dbscan")
