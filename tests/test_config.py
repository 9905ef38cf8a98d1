import pytest

from progreid.config import config_from_dict, load_config, parse_override
from progreid.errors import ProgReIDError


def test_presets_overrides_and_files(tmp_path):
    pul = load_config("pul", "paper")
    assert (pul.train.epochs, pul.train.lr, pul.train.batch_size, pul.select.lam) == (20, 0.001, 16, 0.85)
    tcul = load_config("tcul", "paper")
    assert (tcul.stages.select, tcul.stages.pseudo_label, tcul.stages.fine_tune, tcul.stages.after_round) == \
        ("temporal", "moving_centers", "continue", ("center_update",))
    assert (tcul.train.loss, tcul.train.p, tcul.train.k) == ("triplet", 16, 8)
    assert load_config("pul", "quick", overrides=["stages.after_round=a, b"]).stages.after_round == ("a", "b")
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


def test_run_folders_written_before_the_stages_section_still_load():
    old = {"method": "tcul", "cluster": {"labels": "centers", "center_update": 0.5},
           "select": {"method": "temporal", "frame_window": 60}, "train": {"init": "previous", "loss": "triplet"}}
    cfg = config_from_dict(old)
    assert (cfg.stages.pseudo_label, cfg.stages.select, cfg.stages.fine_tune, cfg.stages.after_round) == \
        ("moving_centers", "temporal", "continue", ("center_update",))
    assert cfg.select.frame_window == "60" and old["select"]["method"] == "temporal"  # the input is not modified
    pul = config_from_dict({"method": "pul", "cluster": {"labels": "kmeans"}, "train": {"init": "original"}})
    assert (pul.stages.pseudo_label, pul.stages.fine_tune, pul.stages.after_round) == ("kmeans", "restart", ())
