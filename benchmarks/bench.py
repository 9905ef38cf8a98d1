"""Benchmark suites. Each measures the project against a reference *in the same run* and replaces its
own section of BENCHMARKS.md (between ``<!-- suite:NAME -->`` markers).

    python benchmarks/bench.py eval        # ranking + CMC/mAP vs a per-query reference
    python benchmarks/bench.py cluster     # k-means vs sklearn and faiss
    python benchmarks/bench.py train       # fine-tuning throughput vs the model-only limit
    python benchmarks/bench.py rounds RUN [RUN ...]     # seconds per stage of finished runs
    python benchmarks/bench.py accuracy RUN [RUN ...]   # direct / PUL / SUL / TCUL / cc / tcc table from runs
    python benchmarks/bench.py curve RUN [RUN ...]      # mAP against minutes, one figure
    python benchmarks/bench.py sweep NAME FOLDER --title T --command C   # publish a sweep.py result
    python benchmarks/bench.py scale --sizes 10000 100000 1000000   # k-means and 30-NN graph at scale
    python benchmarks/bench.py kreciprocal --sizes 100000 1000000  # the k-reciprocal encoding, loop vs arrays
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
BENCH_MD = ROOT / "BENCHMARKS.md"


def machine() -> str:
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    dev = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return f"{os.cpu_count()} cores ({cpu}), {dev}, torch {torch.__version__}, threads {torch.get_num_threads()}"


def write_section(name: str, body: str) -> None:
    text = BENCH_MD.read_text() if BENCH_MD.exists() else "# Benchmarks\n"
    block = f"<!-- suite:{name} -->\n{body.strip()}\n<!-- /suite:{name} -->"
    pattern = re.compile(rf"<!-- suite:{name} -->.*?<!-- /suite:{name} -->", re.S)
    text = pattern.sub(lambda _: block, text) if pattern.search(text) else text.rstrip() + "\n\n" + block + "\n"
    BENCH_MD.write_text(text)
    print(body)


def timed(fn, repeat: int = 1):
    best, out = float("inf"), None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return out, best


def extra_peak_mb(setup: str, work: str) -> float:
    """Peak resident memory that ``work`` adds on top of ``setup`` (MB), in a fresh interpreter.

    The kernel's peak counter (VmHWM) is reset after the setup (``/proc/self/clear_refs``), so the
    setup's own temporaries do not hide the work's peak.
    """
    probe = ("def _kb(key):\n    return int(next(l.split()[1] for l in open('/proc/self/status') if l.startswith(key)))\n"
             + setup + "\nopen('/proc/self/clear_refs', 'w').write('5')\nbase = _kb('VmRSS:')\n"
             + work + "\nprint((_kb('VmHWM:') - base) / 1024)")
    res = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=ROOT)
    return float(res.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------- evaluation
def synthetic_ranking(n_q: int, n_g: int, dim: int, ids: int, seed: int = 0):
    """Random features with some identity signal: realistic mAP, not a trivial ranking."""
    rng = np.random.default_rng(seed)
    q_pids, g_pids = rng.integers(0, ids, n_q), rng.integers(0, ids, n_g)
    q_cams, g_cams = rng.integers(0, 6, n_q), rng.integers(0, 6, n_g)
    centers = rng.standard_normal((ids, dim)).astype(np.float32)
    qf = rng.standard_normal((n_q, dim)).astype(np.float32) + 0.3 * centers[q_pids]
    gf = rng.standard_normal((n_g, dim)).astype(np.float32) + 0.3 * centers[g_pids]
    return qf, gf, q_pids, g_pids, q_cams, g_cams


def bench_eval(_args) -> None:
    from progreid.evaluation import evaluate_ranking, pairwise_distance
    from progreid.evaluation.reference import evaluate_reference

    rows = []
    for label, n_q, n_g in (("Market-size", 3368, 19732), ("100k gallery", 1000, 100000)):
        qf, gf, q_pids, g_pids, q_cams, g_cams = synthetic_ranking(n_q, n_g, 2048, 750 if n_g < 50000 else 5000)
        dist = pairwise_distance(qf, gf).numpy()
        ours, t_ours = timed(lambda: evaluate_ranking(dist, q_pids, g_pids, q_cams, g_cams), repeat=3)
        ref, t_ref = timed(lambda: evaluate_reference(dist, q_pids, g_pids, q_cams, g_cams))
        same = (np.array_equal(ours.cmc, ref.cmc) and abs(ours.mAP - ref.mAP) < 1e-9 and abs(ours.mINP - ref.mINP) < 1e-9)
        setup = (f"from benchmarks.bench import synthetic_ranking\nfrom progreid.evaluation import pairwise_distance\n"
                 f"qf,gf,qp,gp,qc,gc=synthetic_ranking({n_q},{n_g},2048,{750 if n_g < 50000 else 5000})\n"
                 f"d=pairwise_distance(qf,gf).numpy()\n")
        mem_ours = extra_peak_mb(setup, "from progreid.evaluation import evaluate_ranking\nevaluate_ranking(d,qp,gp,qc,gc)")
        mem_ref = extra_peak_mb(setup, "from progreid.evaluation.reference import evaluate_reference\n"
                                       "evaluate_reference(d,qp,gp,qc,gc)")
        rows.append(f"| {label} ({n_q} x {n_g}, 2048-d) | {100 * ours.mAP:.2f} / {100 * ref.mAP:.2f} | "
                    f"{'yes' if same else 'NO'} | {t_ours:.2f} | {t_ref:.2f} | **{t_ref / t_ours:.1f}x** | "
                    f"{mem_ours:.0f} / {mem_ref:.0f} |")
    write_section("eval", f"""## 1. Evaluation: ranking + CMC/mAP/mINP
Machine: {machine()}. Command: `python benchmarks/bench.py eval`.
Both start from the same precomputed distance matrix (cosine, random features with identity signal).
The reference sorts each query's full row (`progreid.evaluation.reference`); ours ranks only the true
matches (`progreid.evaluation.metrics`). Time = best of 3 (ours) / 1 (reference). Extra memory = peak
RSS above holding the distance matrix, each in a fresh process.

| input | mAP ours / reference | identical CMC, mAP, mINP | ours (s) | reference (s) | speed-up | extra memory MB ours / ref |
|---|---|---|---|---|---|---|
""" + "\n".join(rows))


# ---------------------------------------------------------------- clustering
def market_features() -> np.ndarray | None:
    """OSNet x0.25 (MSMT17 weights) features of all 12,936 market1501-mini images, cached."""
    cache = ROOT / ".cache" / "market1501-mini_osnet_x0_25_msmt17.npy"
    if cache.exists():
        return np.load(cache)
    data, weights = SHARED / "market1501-mini", SHARED / "weights" / "osnet_x0_25_msmt17.pth"
    if not data.exists() or not weights.exists():
        return None
    from progreid.api import load_model
    from progreid.data import load_dataset
    from progreid.data.images import load_images
    from progreid.engine.extract import extract_features

    split = load_dataset(data)
    model = load_model("osnet_x0_25", weights)
    paths = [r.path for part in (split.train, split.query, split.gallery) for r in part]
    feats = extract_features(model, load_images(paths, progress=False), progress=False)
    cache.parent.mkdir(exist_ok=True)
    np.save(cache, feats)
    return feats


def bench_cluster(_args) -> None:
    try:
        import faiss
    except ImportError:
        sys.exit("the clustering benchmark compares against faiss-cpu: pip install -e '.[bench]'")
    from sklearn.cluster import KMeans
    from sklearn.datasets import make_blobs

    from progreid.cluster import kmeans

    inputs = []
    x, _ = make_blobs(n_samples=13000, n_features=2048, centers=750, cluster_std=8.0, random_state=0)
    inputs.append(("blobs 13,000 x 2048", x.astype(np.float32)))
    real = market_features()
    if real is not None:
        inputs.append((f"market1501-mini OSNet features {real.shape[0]:,} x {real.shape[1]}", real))
    rows = []
    for label, x in inputs:
        sk, t_sk = timed(lambda: KMeans(750, init="k-means++", n_init=1, max_iter=300, random_state=0).fit(x))
        ours, t_ours = timed(lambda: kmeans(x, 750, seed=0))
        fk = faiss.Kmeans(x.shape[1], 750, niter=25, seed=1, verbose=False)
        _, t_fa = timed(lambda: fk.train(x))
        fa_inertia = float(fk.index.search(x, 1)[0].sum())
        rows.append(f"| {label} | {t_sk:.1f} s, {sk.n_iter_} it | {t_ours:.1f} s, {ours.n_iter} it | "
                    f"{t_fa:.1f} s | **{t_sk / t_ours:.1f}x** | **{ours.inertia / sk.inertia_:.4f}** | "
                    f"{fa_inertia / sk.inertia_:.4f} |")
    write_section("cluster", f"""## 2. Clustering: k-means, K = 750
Machine: {machine()}. Command: `python benchmarks/bench.py cluster`.
sklearn: `KMeans(750, init="k-means++", n_init=1, max_iter=300)`; faiss-cpu: `Kmeans(d, 750, niter=25)`
(its defaults: random init, fixed 25 iterations); ours: `progreid.cluster.kmeans(x, 750)` (greedy k-means++,
Lloyd until sklearn's tolerance or < 1e-4 relative inertia gain). Inertia ratios are against sklearn (lower is better).

| data | sklearn | ours | faiss | ours vs sklearn time | ours / sklearn inertia | faiss / sklearn inertia |
|---|---|---|---|---|---|---|
""" + "\n".join(rows))


# ---------------------------------------------------------------- training throughput
def bench_train(args) -> None:
    import torch

    from progreid.config import TrainConfig
    from progreid.data.transforms import AugmentConfig, augment
    from progreid.engine.fit import fit, make_classifier
    from progreid.losses import cross_entropy_smooth
    from progreid.models import build_model

    rows = []
    for arch, batch, n_batches in (("osnet_x0_25", 32, 24), ("resnet50", 16, 6)):
        images = np.random.default_rng(0).integers(0, 255, (batch * n_batches, 256, 128, 3), dtype=np.uint8)
        labels = np.arange(len(images)) % 50
        cfg = TrainConfig(epochs=1, batch_size=batch, lr=1e-3)
        model = build_model(arch)
        fit(model, images[: batch * 2], np.arange(batch * 2), labels[: batch * 2], cfg, torch.device("cpu"), 0,
            progress=False)  # warm-up
        stats = fit(model, images, np.arange(len(images)), labels, cfg, torch.device("cpu"), 0, progress=False)
        # model-only limit: the same steps on batches already augmented and in memory
        model = build_model(arch).train().to(memory_format=torch.channels_last)
        clf = make_classifier(model.feature_dim, 50, 0.5)
        opt = torch.optim.SGD(list(model.parameters()) + list(clf.parameters()), lr=1e-3, momentum=0.9)
        gen = torch.Generator().manual_seed(0)
        xs = [augment(images[i * batch:(i + 1) * batch], AugmentConfig(), gen) for i in range(n_batches)]
        ys = [torch.as_tensor(labels[i * batch:(i + 1) * batch]) for i in range(n_batches)]

        def steps():
            for x, y in zip(xs, ys):
                loss = cross_entropy_smooth(clf(model(x)), y)
                opt.zero_grad()
                loss.backward()
                opt.step()

        steps()  # warm-up
        _, t = timed(steps)
        limit = len(images) / t
        rows.append(f"| {arch} | 256x128 | {batch} | {stats.images_per_second:.1f} | {limit:.1f} | "
                    f"**{100 * stats.images_per_second / limit:.0f}%** |")
    write_section("train", f"""## 3. Training throughput (one fine-tuning round, data pipeline included)
Machine: {machine()}. Command: `python benchmarks/bench.py train`.
`fit` gathers uint8 crops from the image cache, augments (flip, pad+crop, erasing, normalisation) and
trains (softmax classifier, SGD); the limit runs the same steps on batches already augmented in memory.

| model | input | batch | fit (img/s) | model-only limit (img/s) | fit / limit |
|---|---|---|---|---|---|
""" + "\n".join(rows))


# ---------------------------------------------------------------- from finished runs
def load_runs(paths: list[str]) -> list[tuple[str, dict, list[dict]]]:
    import yaml

    out = []
    for p in paths:
        run = Path(p)
        cfg = yaml.safe_load((run / "config.yaml").read_text())
        rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]
        out.append((str(run), cfg, rows))
    return out


def bench_rounds(args) -> None:
    lines = []
    for path, cfg, rows in load_runs(args.runs):
        r = next((row for row in rows if row["round"] == 1), None)
        if r is None:
            continue
        s = r["seconds"]
        lines.append(f"| {cfg['method'].upper()} | {Path(cfg['data']['target']).name} | {r['reliable']} / {r['num_train']} | "
                     + " | ".join(f"{s.get(k, 0):.1f}" for k in ("extract", "cluster", "select", "train", "update", "evaluate"))
                     + f" | {sum(s.values()):.0f} |")
    write_section("rounds", f"""## 4. Round breakdown (seconds per stage, round 1)
Machine: {machine()}. Command: `python benchmarks/bench.py rounds RUN ...` over the accuracy runs below.

| method | target | reliable / train | extract | cluster | select | train | update centers | evaluate | total |
|---|---|---|---|---|---|---|---|---|---|
""" + "\n".join(lines))


def preset_changes(cfg: dict, preset: str = "quick") -> list[str]:
    """The command-line options that turn the method's preset into this run's config (the EXTRA column)."""
    import dataclasses

    from progreid.config import Config, StagesConfig, load_config, migrate
    from progreid.engine.stages import all_reads, unread_settings

    cfg = migrate(cfg)  # runs written before the stages section
    base = json.loads(json.dumps(load_config(cfg["method"], preset).to_dict()))  # tuples -> lists, as in YAML
    code_default = json.loads(json.dumps(Config().to_dict()))
    skip = {"data", "seed", "device"}
    stages = {k: v for k, v in cfg.get("stages", {}).items() if k in {f.name for f in dataclasses.fields(StagesConfig)}}
    stages["after_round"] = tuple(stages.get("after_round", ()))
    # settings no stage of the run reads are not differences that made its result
    unread = {tuple(key.split(".", 1)) for key in unread_settings(StagesConfig(**stages), all_reads())}
    changes = []
    for section, values in base.items():
        if section in skip or not isinstance(values, dict):
            continue
        # a key the run's config lacks was added to the code later, with the behaviour before it as its default
        ran = {**flatten(code_default.get(section, {})), **flatten(cfg.get(section, {}))}
        preset_values = flatten(values)
        for key, value in ran.items():
            if (section, key) in unread or (section, key) == ("model", "weights"):
                continue
            if str(preset_values.get(key)) != str(value):
                changes.append("--select all" if (section, key, value) == ("stages", "select", "all")
                               else f"--set {section}.{key}={value}")
    return changes


def flatten(values: dict, prefix: str = "") -> dict:
    """{"augment": {"flip": 0}} -> {"augment.flip": 0}: nested keys are compared one by one."""
    out = {}
    for key, value in values.items():
        if isinstance(value, dict):
            out.update(flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def closest_preset(cfg: dict) -> tuple[str, list[str]]:
    """The method's preset this run differs least from, and the options that make the difference
    (a run folder records the resolved config, not the preset it started from)."""
    from progreid.config import migrate, preset_file

    presets = preset_file(migrate(cfg)["method"]).get("presets", {}) or {"quick": {}}
    return min(((name, preset_changes(cfg, name)) for name in presets), key=lambda pc: (len(pc[1]), pc[0] != "quick"))


def bench_accuracy(args) -> None:
    lines = []
    seen_targets: set[str] = set()
    for path, cfg, rows in load_runs(args.runs):
        if args.at_round is not None:  # one budget for every row: each run read up to the same round
            rows = [r for r in rows if r["round"] <= args.at_round]
            if rows[-1]["round"] < args.at_round:
                print(f"{path}: skipped, it has {rows[-1]['round']} of the {args.at_round} rounds asked", file=sys.stderr)
                continue
        first, last = rows[0], rows[-1]
        target = Path(cfg["data"]["target"]).name
        if target not in seen_targets:  # round 0 of any run is the direct transfer of the source model
            seen_targets.add(target)
            lines.append(f"| direct transfer | {target} | {first.get('rank1', 0):.1f} / {first.get('mAP', 0):.1f} | "
                         f"{first.get('rank1', 0):.1f} / {first.get('rank5', 0):.1f} / {first.get('mAP', 0):.1f} | "
                         f"| | | | | {cfg['seed']} |")
        best = max((r for r in rows if "mAP" in r), key=lambda r: r["mAP"])
        per_round = " → ".join(f"{r['mAP']:.1f}" for r in rows if "mAP" in r)
        rel = " → ".join(f"{100 * r['reliable_fraction']:.0f}" for r in rows if "reliable_fraction" in r)
        prec = " → ".join(f"{100 * r['reliable_pair_precision']:.0f}" for r in rows if "reliable_pair_precision" in r)
        preset, changes = closest_preset(cfg)
        if args.at_round is not None:  # the row's budget is --at-round, whatever length the run had
            changes = [c for c in changes if not c.startswith("--set loop.max_rounds=")]
        method = cfg["method"].upper() + " " + " ".join(f"`{e}`" for e in
                                                        ([f"--preset {preset}"] if preset != "quick" else []) + changes)
        lines.append(f"| {method} | {Path(cfg['data']['target']).name} | {first.get('rank1', 0):.1f} / {first.get('mAP', 0):.1f} | "
                     f"{last.get('rank1', 0):.1f} / {last.get('rank5', 0):.1f} / {last.get('mAP', 0):.1f} | "
                     f"**{last.get('mAP', 0) - first.get('mAP', 0):+.1f}** | {best['mAP']:.1f} (round {best['round']}) | "
                     f"{per_round} | {rel} | {prec} | {cfg['seed']} |")
    write_section(args.section, f"""## {args.title}
Machine: {machine()}. Seed 0. Each row is one run of
`progreid adapt --method M --preset quick --target ../shared/data/T --weights ../shared/data/weights/osnet_x0_25_msmt17.pth --out runs/NAME [EXTRA]`
(EXTRA in the method column, with `--preset paper` in place of `quick` where it names one), then `python benchmarks/bench.py accuracy runs/NAME ...{'' if args.section == 'accuracy' else ' --section ' + args.section + ' --title "..."'}{'' if args.at_round is None else f' --at-round {args.at_round}'}`.{'' if args.at_round is None else f' Every row is read at round {args.at_round} (one budget), also where its run went on.'} mAP per round,
reliable fraction per round and reliable-set pair precision per round (a ground-truth diagnostic the method
never sees). TCUL needs frame ids, which cuhk03-mini does not have.

| method | target | direct R1 / mAP | final R1 / R5 / mAP | mAP gain | best mAP | mAP per round | reliable % per round | reliable precision % | seed |
|---|---|---|---|---|---|---|---|---|---|
""" + "\n".join(lines))


def bench_sweep(args) -> None:
    """Publish a finished benchmarks/sweep.py folder: its table, and its plot under benchmarks/figures/."""
    import shutil

    out = Path(args.folder)
    figure = ROOT / "benchmarks" / "figures" / f"sweep_{args.name}.png"
    figure.parent.mkdir(exist_ok=True)
    shutil.copyfile(out / "sweep.png", figure)
    write_section(f"sweep_{args.name}", f"""## Sweep: {args.title}
Machine: {machine()}. Command: `{args.command}`, then `python benchmarks/bench.py sweep {args.name} OUT`.

{(out / "sweep.md").read_text().strip()}

![{args.title}](benchmarks/figures/{figure.name})""")


def minutes_per_round(rows: list[dict]) -> list[float]:
    """Cumulative minutes of stage time at the end of each round (round 0: the direct evaluation)."""
    total, out = 0.0, []
    for r in rows:
        total += sum(r.get("seconds", {}).values())
        out.append(total / 60)
    return out


def bench_curve(args) -> None:
    """mAP against minutes for finished runs on one target, in one figure; who reaches +15 mAP first."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4))
    lines, first = [], None
    for path, cfg, rows in load_runs(args.runs):
        minutes = minutes_per_round(rows)
        pts = [(m, r["mAP"]) for m, r in zip(minutes, rows) if "mAP" in r]
        label = " ".join([cfg["method"].upper(), *(c.removeprefix("--set ") for c in closest_preset(cfg)[1])])
        ax.plot([p[0] for p in pts], [p[1] for p in pts], "o-", label=label, ms=3)
        base = rows[0]["mAP"]
        hit = next(((m, v) for m, v in pts if v >= base + 15), None)
        if hit and (first is None or hit[0] < first[1]):
            first = (label, hit[0], hit[1])
        lines.append(f"| {label} | {Path(cfg['data']['target']).name} | {len(rows) - 1} | {pts[-1][1]:.1f} | "
                     f"{max(v for _, v in pts):.1f} | {minutes[-1]:.1f} | "
                     + (f"{hit[0]:.1f} min ({hit[1]:.1f})" if hit else "not reached") + " |")
    ax.axhline(rows[0]["mAP"] + 15, color="grey", ls=":", label="direct + 15 mAP")
    ax.set(xlabel="minutes (stage time, this machine)", ylabel="mAP (%)", title="mAP against time")
    ax.legend(fontsize=8)
    fig.tight_layout()
    figure = ROOT / "benchmarks" / "figures" / "accuracy_per_time.png"
    figure.parent.mkdir(exist_ok=True)
    fig.savefig(figure, dpi=90)
    verdict = (f"First to +15 mAP: **{first[0]}**, after {first[1]:.1f} minutes ({first[2]:.1f} mAP)."
               if first else "No run reached +15 mAP.")
    write_section("curve", f"""## 6. Accuracy per time: mAP against minutes
Machine: {machine()}. Command: `python benchmarks/bench.py curve runs/NAME ...` over runs of sections 5 and 7
(minutes: the sum of the rounds' stage times, image decoding at start-up excluded). {verdict}

| method | target | rounds | final mAP | best mAP | minutes | +15 mAP reached after |
|---|---|---|---|---|---|---|
""" + "\n".join(lines) + "\n\n![mAP against minutes](benchmarks/figures/accuracy_per_time.png)")


def bench_scale(args) -> None:
    sys.path.insert(0, str(Path(__file__).parent))
    from scale import render, report

    if args.from_log:  # redraw the section from the JSON rows a run logged
        results = [json.loads(line) for line in Path(args.from_log).read_text().splitlines() if line.startswith("{")]
        args.sizes = sorted({r["n"] for r in results if r["op"] == "kmeans"})
        text = render(results)
    else:
        text, _ = report(sorted(args.sizes))
    sizes = " ".join(str(n) for n in args.sizes)
    write_section("scale", f"""## 9. Scaling: k-means (K = N/16) and the 30-NN graph, 512-d synthetic features
Machine: {machine()}. Command: `python benchmarks/bench.py scale --sizes {sizes}`.
One fresh process per row (peak RSS is that process's, the N x 512 features included: 2 GB at 1M).
k-means stops after at most 20 iterations (or sklearn's convergence rule); automatic choices: k-means++
seeding up to N x K = 2e8, exact assignment up to 2e9, exact k-NN up to 200k rows. Above them: an
inverted file in matrix products (`src/progreid/cluster/ivf.py`): k-means cells of ~64 centers, 8
probed; k-NN cells of ~256 rows, 32 probed.

""" + text)


def bench_kreciprocal(args) -> None:
    from benchmarks.kreciprocal import measure, render

    rows = []
    for n in args.sizes:
        rows.append(measure(n, reference=not args.no_reference))
        print(json.dumps(rows[-1]), flush=True)
    write_section("kreciprocal", render(rows, machine()))


def main() -> None:
    sys.path.insert(0, str(ROOT))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="suite", required=True)
    for name in ("eval", "cluster", "train"):
        sub.add_parser(name)
    for name in ("rounds", "accuracy", "curve"):
        sub.add_parser(name).add_argument("runs", nargs="+")
    acc = sub.choices["accuracy"]
    acc.add_argument("--section", default="accuracy", help="BENCHMARKS.md section to (re)write")
    acc.add_argument("--at-round", type=int, help="read every run up to this round (one budget per row)")
    acc.add_argument("--title", default="5. Accuracy: MSMT17 → target, OSNet x0.25 (`osnet_x0_25_msmt17.pth`)")
    sw = sub.add_parser("sweep")
    for a in ("name", "folder"):
        sw.add_argument(a)
    sw.add_argument("--title", required=True)
    sw.add_argument("--command", required=True, help="the sweep.py command that made the folder")
    sc = sub.add_parser("scale")
    sc.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    sc.add_argument("--from-log", help="redraw the section from a log of an earlier run's JSON rows")
    kr = sub.add_parser("kreciprocal")
    kr.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    kr.add_argument("--no-reference", action="store_true", help="time the array form alone")
    args = parser.parse_args()
    {"kreciprocal": bench_kreciprocal, "scale": bench_scale, "eval": bench_eval, "cluster": bench_cluster, "train": bench_train, "rounds": bench_rounds,
     "accuracy": bench_accuracy, "sweep": bench_sweep, "curve": bench_curve}[args.suite](args)


if __name__ == "__main__":
    main()
