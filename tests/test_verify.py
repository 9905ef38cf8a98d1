"""`progreid verify`: answers survive crashes and undos, the estimate is the protocol's R1 when every
query is answered from ground truth, intervals are paired, clicks become labels, and the page works
in headless Chromium (answers, reload, more answers; its estimate equals `verify --score`)."""

from __future__ import annotations

import csv
import json
import shutil
import threading

import numpy as np
import pytest

from progreid import api
from progreid.cli import main as cli_main
from progreid.errors import ProgReIDError
from progreid.verify.answers import append_answer, answers_path, current_answers, judged, next_query, read_log
from progreid.verify.estimate import estimate, per_query
from progreid.verify.session import load_session, stratified_sample

from conftest import SMALL, write_image


def test_answers_survive_a_torn_line_and_undo_takes_back_the_last(tmp_path):
    append_answer(tmp_path, {"q": 0, "matches": [5], "none": False})
    with open(answers_path(tmp_path), "a") as f:
        f.write('{"q": 1, "matc')  # a crash mid-write
    append_answer(tmp_path, {"q": 1, "matches": [], "none": True})
    append_answer(tmp_path, {"q": 2, "skip": True})
    assert len(read_log(tmp_path)) == 3  # the torn line is left out, the next line is whole
    append_answer(tmp_path, {"undo": 2})
    standing = current_answers(tmp_path)
    assert list(standing) == [0, 1] and next_query(4, standing) == 2
    assert judged(standing) == {0: {5}, 1: set()}


def test_stratified_sample_follows_each_cameras_share():
    cams = np.array([1] * 60 + [2] * 30 + [3] * 10)
    picked = stratified_sample(cams, 20, np.random.default_rng(0))
    assert len(set(picked)) == 20 and sorted(np.bincount(cams[picked])[1:]) == [2, 6, 12]


def test_pooled_ap_and_paired_intervals():
    assert per_query([3, 1, 2], {1, 2}) == (0.0, (1 / 2 + 2 / 3) / 2)
    assert per_query([1, 3], {1}) == (1.0, 1.0) and per_query([1], set()) == (0.0, 0.0)
    rng = np.random.default_rng(0)
    n = 60
    matches = {q: {100 + q} for q in range(n)}
    good = {q: [[100 + q if rng.random() < 0.4 else 0], [100 + q if rng.random() < 0.9 else 0]] for q in range(n)}
    est = estimate(["a", "b"], good, matches)
    a, b = est["models"]
    assert a["rank1_ci"][0] <= a["rank1"] <= a["rank1_ci"][1] and b["rank1"] > a["rank1"]
    d = est["difference"]
    assert d["rank1"] == pytest.approx(b["rank1"] - a["rank1"], abs=0.11) and d["rank1_ci"][0] > 0


@pytest.fixture(scope="module")
def two_models(network, tmp_path_factory):
    """The synthetic network's source model and an untrained one: B is known to be better."""
    import torch

    from progreid.models import build_model, save_weights

    paths, weights = network
    torch.manual_seed(0)
    untrained = tmp_path_factory.mktemp("untrained") / "untrained.safetensors"
    save_weights(build_model("osnet_x0_25"), untrained)
    return paths, [str(untrained), str(weights)]


def test_simulate_on_every_query_equals_the_protocols_r1(two_models, tmp_path):
    paths, models = two_models
    target = paths["source"]  # its test split: where this small model ranks well enough to tell R1 from 0
    session = api.verify(target, models[1:], tmp_path / "v", queries=10_000, arch="osnet_x0_25", simulate=True,
                         size=(64, 32), progress=False, log=lambda s: None)
    est = api.verify_score(tmp_path / "v")
    from progreid.engine.evaluate import EvalOptions

    truth = api.evaluate(target, "osnet_x0_25", models[1], opts=EvalOptions(size=(64, 32)), progress=False)
    assert est["queries"] == truth.num_valid == len(session.queries)
    assert est["models"][0]["rank1"] == pytest.approx(100 * truth.rank(1), abs=0.051)
    assert 0 < est["models"][0]["rank1"] < 100


def test_blind_comparison_tells_the_trained_model_from_an_untrained_one(two_models, tmp_path):
    paths, models = two_models
    code = cli_main(["-q", "verify", "--data", str(paths["source"]), "--weights", models[0], "--weights", models[1],
                     "--arch", "osnet_x0_25", "--height", "64", "--width", "32", "--out", str(tmp_path / "v"),
                     "--queries", "100", "--simulate", "--json"])
    assert code == 0
    session = load_session(tmp_path / "v")
    for q in session.queries:  # shown = the union of both lists, shuffled: no model order to read
        assert sorted(q.shown) == sorted({*q.ranked[0], *q.ranked[1]})
    est = api.verify_score(tmp_path / "v")
    assert est["difference"]["rank1"] > 0 and est["difference"]["rank1_ci"][0] > 0
    # the same --out continues; other weights are refused with the fix
    with pytest.raises(ProgReIDError, match="other models"):
        api.verify(paths["source"], models[:1], tmp_path / "v", arch="osnet_x0_25", size=(64, 32), log=lambda s: None)


def test_simulate_is_refused_on_crops_without_identities(network, tmp_path):
    paths, weights = network
    plain = tmp_path / "plain"
    for i in range(6):
        write_image(plain / f"img_{i}.jpg", (40 * i, 80, 120))
    with pytest.raises(ProgReIDError, match="no identities"):
        api.verify(plain, [str(weights)], tmp_path / "v", queries=3, arch="osnet_x0_25", simulate=True,
                   size=(64, 32), progress=False, log=lambda s: None)


def test_confirmed_matches_become_labeled_groups_and_the_rest_cannot_links(network, tmp_path):
    paths, weights = network
    out = tmp_path / "v"
    session = api.verify(paths["target"], [str(weights)], out, queries=6, arch="osnet_x0_25", size=(64, 32),
                         progress=False, log=lambda s: None)  # unlabeled crops (the train split): a person would answer
    q0, q1 = session.queries[0], session.queries[1]
    append_answer(out, {"q": 0, "matches": q0.shown[:2], "none": False})
    append_answer(out, {"q": 1, "matches": [], "none": True})
    n = api.verify_labels(out, tmp_path / "labels.csv")
    rows = list(csv.DictReader(open(tmp_path / "labels.csv")))
    assert n == 1 and {r["path"] for r in rows} == {session.images[i] for i in [q0.query, *q0.shown[:2]]}
    assert len({r["pid"] for r in rows}) == 1
    pairs = api.verify_cannot_links(out, tmp_path / "cannot.csv")  # shown, not clicked: q0's rest, all of q1's
    rows = [(r["path_a"], r["path_b"]) for r in csv.DictReader(open(tmp_path / "cannot.csv"))]
    img = session.images
    assert pairs == len(rows) == len(q0.shown) - 2 + len(q1.shown)
    assert set(rows) == {(img[q0.query], img[c]) for c in q0.shown[2:]} | {(img[q1.query], img[c]) for c in q1.shown}
    with pytest.raises(ProgReIDError, match="cannot.csv"):
        api.verify_cannot_links(out, tmp_path / "cannot.csv")  # an existing file is kept unless --force


def find_browser():
    from test_report import find_browser as find

    return find()


def test_the_page_records_clicks_survives_a_reload_and_shows_the_score(network, tmp_path):
    chromium, driver_path = find_browser()
    pytest.importorskip("flask", reason="flask (the ui extra) is not installed")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait
    from werkzeug.serving import make_server

    from progreid.verify.server import create_app

    paths, weights = network
    out = tmp_path / "v"
    session = api.verify(paths["target"], [str(weights)], out, queries=9, top_k=4, arch="osnet_x0_25",
                         size=(64, 32), progress=False, log=lambda s: None)
    server = make_server("127.0.0.1", 0, create_app(session, out), threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_port}/"
    opts = webdriver.ChromeOptions()
    opts.binary_location = chromium
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                 f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1300,1000"):
        opts.add_argument(flag)
    browser = webdriver.Chrome(service=Service(driver_path), options=opts)

    def answered() -> int:
        return len(current_answers(out))

    def answer(k: int, how: str) -> None:
        before = answered()
        WebDriverWait(browser, 10).until(lambda b: b.find_elements(By.CSS_SELECTOR, "#candidates img.candidate"))
        if how == "first":
            browser.find_elements(By.CSS_SELECTOR, "#candidates img.candidate")[0].click()
            browser.find_element(By.ID, "submit").click()
        else:
            browser.find_element(By.ID, how).click()
        WebDriverWait(browser, 10).until(lambda b: answered() == before + 1 and
                                         f"({before + 1} of" in b.find_element(By.ID, "progress").text)

    try:
        browser.get(url)
        for k, how in enumerate(["first", "none", "first", "first", "none"]):
            answer(k, how)
        browser.refresh()  # a reload loses nothing and continues at query 5
        WebDriverWait(browser, 10).until(lambda b: "(5 of 9" in b.find_element(By.ID, "progress").text)
        answer(5, "first")
        answer(6, "none")
        shot = browser.get_screenshot_as_png()
        text = browser.find_element(By.ID, "estimate-text").text
    finally:
        browser.quit()
        server.shutdown()
    assert sum("q" in e for e in read_log(out)) == 7 and answered() == 7
    assert text == api.verify_score(out)["text"] and "7 queries answered" in text
    assert len(shot) > 10_000


def test_simulated_clicks_on_the_train_crops_become_labels_of_true_groups(network, tmp_path):
    """--train-crops asks about what adapt trains on; every group of simulated clicks is one person."""
    from progreid.data.layouts import load_dataset

    paths, weights = network
    out = tmp_path / "v"
    session = api.verify(paths["source"], [str(weights)], out, queries=12, arch="osnet_x0_25", size=(64, 32),
                         simulate=True, train_crops=True, progress=False, log=lambda s: None)
    train = {r.path: r.pid for r in load_dataset(paths["source"]).train}
    assert session.mode == "crops" and all(session.images[q.query] in train for q in session.queries)
    assert api.verify_labels(out, tmp_path / "labels.csv") >= 1
    rows = list(csv.DictReader(open(tmp_path / "labels.csv")))
    for pid in {r["pid"] for r in rows}:
        assert len({train[r["path"]] for r in rows if r["pid"] == pid}) == 1
