"""The run report: built from a run folder, self-contained, and rendered by a real browser."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from progreid.data.records import Record
from progreid.engine.rundir import RunDir
from progreid.report.artifacts import CLUSTERS_FILE, RANKED_FILE, save_cluster_samples, save_ranked_lists
from progreid.report.html import build_report

from conftest import write_image


@pytest.fixture
def run_folder(tmp_path) -> Path:
    """A run folder as the loop leaves it, with real images and artifacts."""
    run = tmp_path / "run"
    recs = []
    for i in range(12):
        p = tmp_path / "img" / f"{i}.jpg"
        write_image(p, color=(20 * i, 100, 200 - 10 * i))
        recs.append(Record(str(p), pid=i % 3, camid=i % 2, sequence=1, frame=10 * i))
    RunDir(run).write_metrics([
        {"round": 0, "rank1": 40.0, "rank5": 60.0, "mAP": 20.0, "mINP": 5.0, "seconds": {"evaluate": 3}},
        {"round": 1, "k": 3, "reliable": 6, "num_train": 12, "reliable_fraction": 0.5, "rank1": 45.0, "rank5": 62.0,
         "mAP": 24.0, "mINP": 6.0, "seconds": {"extract": 2, "train": 9, "evaluate": 3}},
    ])
    (run / "config.yaml").write_text("method: pul\n")
    rng = np.random.default_rng(0)
    save_ranked_lists(run / RANKED_FILE, 1, rng.standard_normal((4, 8)), rng.standard_normal((8, 8)), recs[:4], recs[4:])
    labels = np.arange(12) % 3
    save_cluster_samples(run / CLUSTERS_FILE, 1, recs, labels, np.arange(12) % 2 == 0)
    return run


def test_report_is_self_contained_and_shows_everything(run_folder):
    page = build_report(run_folder).read_text()
    assert 'id="rounds"' in page and "<td>45.0</td>" in page
    assert page.count("data:image/jpeg;base64,") >= 4 * 9 and 'id="curves"' in page  # 4 queries + 8 results
    assert 'class="row ranked"' in page and 'class="row cluster"' in page
    assert "http://" not in page and "https://" not in page and "<script" not in page
    ranked = json.loads((run_folder / RANKED_FILE).read_text())
    kinds = {g["kind"] for q in ranked["queries"] for g in q["gallery"]}
    assert kinds <= {"match", "wrong", "junk"} and "wrong" in kinds
    assert all(len(q["gallery"]) == 8 for q in ranked["queries"])  # top 10 of an 8-image gallery


def find_browser() -> tuple[str, str]:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if not chromium or not driver:
        pytest.skip("Chromium and chromedriver are not installed (Debian packages chromium, chromium-driver; "
                    ".ci/run installs them)")
    pytest.importorskip("selenium", reason="selenium (test extra) is not installed")
    return chromium, driver


def test_report_renders_in_headless_chromium(run_folder, tmp_path):
    chromium, driver_path = find_browser()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By

    opts = webdriver.ChromeOptions()
    opts.binary_location = chromium
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1200,900"):
        opts.add_argument(flag)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    browser = webdriver.Chrome(service=Service(driver_path), options=opts)
    try:
        browser.get(build_report(run_folder).as_uri())
        assert browser.find_element(By.ID, "rounds").find_elements(By.TAG_NAME, "tr")
        images = browser.find_elements(By.TAG_NAME, "img")
        assert len(images) > 10
        assert all(browser.execute_script("return arguments[0].complete && arguments[0].naturalWidth > 0", im)
                   for im in images)
        errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
        assert errors == []
        shot = browser.get_screenshot_as_png()
    finally:
        browser.quit()
    from io import BytesIO

    from PIL import Image

    pixels = np.asarray(Image.open(BytesIO(shot)).convert("L"))
    assert pixels.std() > 10  # not a blank page


def test_the_round_summary_line_shows_the_data_derived_choices():
    """K auto, eps and the calibrated frame windows (their range over cameras) are where people look."""
    from progreid.engine.hooks import summary_line

    row = {"round": 2, "k": 402, "k_auto": 402, "reliable": 10, "num_train": 40, "reliable_fraction": 0.25,
           "frame_window": {"1": 200, "2": 100, "3": 300}, "seconds": {"train": 3.0}}
    line = summary_line(row, 8)
    assert "K 402 (auto)" in line and "frame window 100-300" in line and "reliable 10/40 (25.0%)" in line
    row.update(frame_window={"1": 150}, eps=0.31)
    del row["k_auto"]
    line = summary_line(row, 8)
    assert "K 402  eps 0.31  frame window 150  reliable" in line
    row.update(split_camera_pairs=40, clusters_per_track=1.37)
    line = summary_line(row, 8, first_k=335)
    assert "split? 40 cluster pairs look like one person across cameras (10% of K), 1.37 clusters per track, " \
           "K 1.20x round 1's" in line
