"""Why a fixed cosine threshold selects fewer samples after fine-tuning (BENCHMARKS.md, section 5).

    python benchmarks/feature_spread.py RUN [--rounds 1 5]
For the original model and the given rounds' checkpoints of a market1501-mini run: mean cosine between
images of different / the same identity (ground truth, diagnostics only) on a fixed 1,500-image sample
of the training split, and the fraction PUL's selection (lambda 0.85, K = 94) keeps on that sample.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run")
    p.add_argument("--rounds", type=int, nargs="+", default=[1, 5])
    args = p.parse_args()
    from safetensors.torch import load_file

    from progreid.api import load_model
    from progreid.cluster import kmeans
    from progreid.data import load_dataset
    from progreid.data.images import load_images
    from progreid.engine.extract import extract_features
    from progreid.select import l2n, select_similarity

    split = load_dataset(SHARED / "market1501-mini")
    idx = np.sort(np.random.default_rng(0).choice(len(split.train), 1500, replace=False))
    images = np.asarray(load_images([r.path for r in split.train], progress=False))[idx]
    truth = np.array([split.train[i].pid for i in idx])
    same = truth[:, None] == truth[None, :]
    off_diag = ~np.eye(len(idx), dtype=bool)
    model = load_model("osnet_x0_25", SHARED / "weights" / "osnet_x0_25_msmt17.pth")
    print("| model | cos, different ids | cos, same id | kept by PUL selection |\n|---|---|---|---|")
    for name in ["original", *[f"round_{r:02d}" for r in args.rounds]]:
        if name != "original":
            model.load_state_dict(load_file(str(Path(args.run) / "checkpoints" / f"{name}.safetensors")))
        f = extract_features(model, images, progress=False)
        cos = l2n(f) @ l2n(f).T
        km = kmeans(f, 94, seed=0)
        kept = select_similarity(f, km.labels, km.centers, 0.85).reliable.mean()
        print(f"| {name} | {cos[~same].mean():.3f} | {cos[same & off_diag].mean():.3f} | {100 * kept:.0f}% |")


if __name__ == "__main__":
    main()
