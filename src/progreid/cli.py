"""Command line: parse, call :mod:`progreid.api`, print. No logic lives here."""

from __future__ import annotations

import argparse
import json
import os
import sys

from progreid.config import METHODS, Config, DataConfig, SemiConfig, LoopConfig
from progreid.data.layouts import LAYOUTS
from progreid.errors import ProgReIDError
from progreid.footage import DEFAULT_STRIDE
from progreid.models import ARCHS
from progreid.options import Check, check_of, flag

# numeric flags take the range of the config key they set, or one of their own: checked before any work
SIDE = check_of(DataConfig, "height")
AT_LEAST_1 = Check(integer=True, ge=1)
AT_LEAST_0 = Check(integer=True, ge=0)
PORT = Check(integer=True, ge=0, le=65535)


class Parser(argparse.ArgumentParser):
    """argparse with one-line errors (``progreid adapt: error: ...``), exit code 2, no usage dump."""

    def error(self, message: str):  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message}. See `{self.prog} --help`.\n")


def _round_or_best(text: str):
    """``--round`` of export: a round number, or ``best-estimate``."""
    return text if text == "best-estimate" else flag("--round", AT_LEAST_1)(text)


def _add_data(p: argparse.ArgumentParser, flag: str = "--data") -> None:
    p.add_argument(flag, required=True, help="dataset folder (Market-1501/Duke/CUHK03/MSMT17 layout or manifest.csv)")
    p.add_argument("--layout", default="auto", choices=["auto", *sorted(LAYOUTS)], help="dataset layout (default: detect)")


def _add_model(p: argparse.ArgumentParser) -> None:
    p.add_argument("--arch", default="osnet_x0_25", choices=ARCHS, help="backbone (default: osnet_x0_25)")
    p.add_argument("--weights", help="weights file: .pth / .pth.tar / .safetensors (torchreid or torchvision keys)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1 ...")
    p.add_argument("--batch-size", type=flag("--batch-size", AT_LEAST_0), default=0,
                   help="images per forward pass (0: 32 on CPU, 256 on GPU)")
    p.add_argument("--height", type=flag("--height", SIDE), default=256)
    p.add_argument("--width", type=flag("--width", SIDE), default=128)


def _add_common_run(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", help="YAML file merged over the preset")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override any config key, e.g. --set train.epochs=5 (repeatable)")
    p.add_argument("--seed", type=flag("--seed", AT_LEAST_0))
    p.add_argument("--device", help="auto, cpu, cuda ...")
    p.add_argument("--force", action="store_true", help="write into an --out folder that holds other files")


def _run_overrides(args: argparse.Namespace) -> list[str]:
    """Dedicated flags become dotted overrides, applied before --set ones."""
    flags = {"data.target": getattr(args, "target", None), "data.source": getattr(args, "source", None),
             "data.layout": args.layout, "model.arch": args.arch, "model.weights": args.weights,
             "stages.select": getattr(args, "select", None), "semi.labeled_csv": getattr(args, "labeled_csv", None),
             "semi.labeled_ids": getattr(args, "labeled_ids", None), "semi.labels_as": getattr(args, "labels_as", None),
             "semi.cannot_links_csv": getattr(args, "cannot_links", None), "seed": args.seed, "device": args.device}
    return [f"{k}={v}" for k, v in flags.items() if v is not None] + list(args.overrides)


def _note_unread_settings(cfg: Config, overrides: list[str]) -> None:
    """Say which --set settings no stage of this run reads (they would otherwise do nothing, silently)."""
    from progreid.engine.stages import unread_settings

    if os.environ.get("RANK", "0") != "0":
        return  # under torchrun, rank 0 says it once
    s = cfg.stages
    stages = f"pseudo_label={s.pseudo_label}, select={s.select}, fine_tune={s.fine_tune}"
    for key in unread_settings(s, [o.split("=", 1)[0].strip() for o in overrides]):
        print(f"note: --set {key} has no effect: no stage of this run reads it ({stages})", file=sys.stderr)


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="progreid", description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("-q", "--quiet", action="store_true",
                        help="no progress bars (also off when stderr is not a terminal); round summaries stay")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)

    p = sub.add_parser("datasets", help="print a dataset's statistics table (checks the layout)")
    _add_data(p)

    p = sub.add_parser("evaluate", help="rank query vs gallery and print R1/R5/R10/R20/mAP/mINP")
    _add_data(p)
    _add_model(p)
    p.add_argument("--metric", default="cosine", choices=["cosine", "euclidean"])
    p.add_argument("--rerank", action="store_true", help="k-reciprocal re-ranking")
    p.add_argument("--flip", action="store_true", help="average features with the mirrored image")
    p.add_argument("--json", dest="json_out", help="also write the metrics (percent) to this JSON file")

    p = sub.add_parser("adapt", help=f"adapt a model to an unlabeled target ({', '.join(METHODS)})")
    p.add_argument("--method", choices=list(METHODS), help="pul: PUL (Fan et al. 2018), k-means + reliable-sample "
                   "selection; sul: PUL without selection; tcul: TCUL (Ali et al. 2020), PUL with tracker time; "
                   "cc: cluster contrast, DBSCAN + camera-aware proxies; tcc: cc with tracker time; oracle: the "
                   "true training identities (a ceiling, labeled targets only). Default: pul (a resumed run keeps "
                   "its own)")
    p.add_argument("--preset", help="paper (the paper's settings; the default) or quick (CPU-sized)")
    p.add_argument("--target", help="target dataset folder (its train split is used without labels)")
    p.add_argument("--layout", default=None, choices=["auto", *sorted(LAYOUTS)])
    p.add_argument("--arch", choices=ARCHS)
    p.add_argument("--weights", help="the original (source) model's weights")
    p.add_argument("--out", required=True, help="run folder (config, metrics.jsonl, checkpoints, plots)")
    p.add_argument("--select", help="override stages.select: similarity, temporal, all (= no selection), ...")
    p.add_argument("--labeled-csv", help="semi-supervised: CSV 'path,pid' of labeled target images")
    p.add_argument("--labeled-ids", type=flag("--labeled-ids", check_of(SemiConfig, "labeled_ids")),
                   help="semi-supervised experiment: labels of N train identities")
    p.add_argument("--labels-as", choices=check_of(SemiConfig, "labels_as").allowed(),
                   help="classes: the labeled groups train as identities of their own (PUL's semi-supervised "
                   "setting); links: must-links inside cc/tcc's clustering, each group joining its person's "
                   "unlabeled crops; auto (default): links for cc/tcc, classes for pul/sul/tcul")
    p.add_argument("--cannot-links", help="cc/tcc (labels as links): CSV 'path_a,path_b' of crops shown to be "
                   "different people (verify --write-cannot-links), kept out of one cluster")
    _add_common_run(p)
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its last finished round "
                   "that verifies, with the config saved there (an option that differs from it is an error; "
                   "--max-rounds and --device may change)")
    p.add_argument("--max-rounds", type=flag("--max-rounds", check_of(LoopConfig, "max_rounds")), default=None,
                   help="with --resume: continue the run (even a finished one) up to this many rounds")

    p = sub.add_parser("train", help="supervised training on a labeled source dataset (the original model)")
    p.add_argument("--source", required=True, help="labeled source dataset folder")
    p.add_argument("--target", help="also evaluate on this dataset's query/gallery")
    p.add_argument("--layout", default=None, choices=["auto", *sorted(LAYOUTS)])
    p.add_argument("--arch", choices=ARCHS)
    p.add_argument("--weights", help="initial weights (e.g. ImageNet ResNet); default: random init")
    p.add_argument("--out", required=True, help="output folder (model.safetensors, metrics.json)")
    p.add_argument("--preset", default="paper", help="paper or quick")
    _add_common_run(p)

    p = sub.add_parser("demo", help="the whole job on embedded synthetic data (no dataset or weights needed)")
    p.add_argument("--out", default="progreid-demo", help="output folder (default: progreid-demo)")
    p.add_argument("--quick", action="store_true", help="smaller networks and fewer rounds (about 2 minutes)")
    p.add_argument("--seed", type=flag("--seed", AT_LEAST_0), default=0)

    p = sub.add_parser("synth", help="write a synthetic camera network (source/ and target/, Market-1501 layout)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--ids", type=flag("--ids", Check(integer=True, ge=2)), default=200, help="identities per domain")
    p.add_argument("--cameras", type=flag("--cameras", AT_LEAST_1), default=None,
                   help="cameras (default 6; 2 with --footage)")
    p.add_argument("--height", type=flag("--height", SIDE), default=64)
    p.add_argument("--width", type=flag("--width", SIDE), default=32)
    p.add_argument("--seed", type=flag("--seed", AT_LEAST_0), default=0)
    p.add_argument("--force", action="store_true", help="write into an --out folder that holds other files")
    p.add_argument("--footage", action="store_true",
                   help="instead: camera videos with tracker output (cam*.mp4, cam*.txt, cameras.yaml) for `progreid crops`")

    p = sub.add_parser("report", help="(re)write a run folder's report.html")
    p.add_argument("run", help="run folder")

    p = sub.add_parser("crops", help="cut person crops from camera videos along tracker tracks (MOTChallenge text)")
    p.add_argument("--video", help="one camera's video file")
    p.add_argument("--tracks", help="its tracker output: frame,id,left,top,width,height,conf,... per line")
    p.add_argument("--camera", type=flag("--camera", AT_LEAST_0), help="its camera id")
    p.add_argument("--list", dest="listing", help="several cameras: YAML list or CSV 'video,tracks,camera'")
    p.add_argument("--out", required=True, help="dataset folder (crops + manifest.csv); an existing one is appended to")
    p.add_argument("--stride", default=DEFAULT_STRIDE,
                   help=f"per track, one crop per this much time: seconds ({DEFAULT_STRIDE}, the default, converted "
                        "with each video's frame rate) or frames (10)")
    p.add_argument("--min-height", type=flag("--min-height", AT_LEAST_1), default=40,
                   help="drop boxes lower than this, in pixels (default 40)")
    p.add_argument("--force", action="store_true", help="write into an --out folder that holds other files "
                   "(a crops folder made before is appended to without it)")

    p = sub.add_parser("export", help="write a run's adapted model for trackers/deployment: torchreid, onnx, torchscript")
    p.add_argument("source", help="run folder (its last finished round) or a weights file (then --arch)")
    p.add_argument("--format", dest="fmt", required=True, choices=["torchreid", "onnx", "torchscript"])
    p.add_argument("--out", required=True, help="output file, or a folder (the file name then carries the arch)")
    p.add_argument("--arch", choices=ARCHS, help="architecture of bare weights")
    p.add_argument("--round", dest="round_", type=_round_or_best,
                   help="a run's round to export (default: its last), or best-estimate: the round with the highest "
                   "label_free_score")
    p.add_argument("--check-images", help="onnx: folder of crops to compare onnxruntime with torch on")
    p.add_argument("--force", action="store_true", help="replace an existing output file")

    p = sub.add_parser("rank", help="ranked lists for plain folders of crops, as an HTML page")
    p.add_argument("--weights", required=True, help="run folder or weights file (then --arch)")
    p.add_argument("--arch", choices=ARCHS)
    p.add_argument("--query", required=True, help="folder of query crops")
    p.add_argument("--gallery", required=True, help="folder of gallery crops")
    p.add_argument("--round", dest="round_", type=flag("--round", AT_LEAST_1),
                   help="a run's round (default: its last)")
    p.add_argument("--out", required=True, help="HTML page to write")
    p.add_argument("--top", type=flag("--top", AT_LEAST_1), default=10)
    p.add_argument("--max-queries", type=flag("--max-queries", AT_LEAST_1), default=50)
    p.add_argument("--device", default="auto")
    p.add_argument("--force", action="store_true", help="replace an existing page")

    p = sub.add_parser("verify", help="does it work on my cameras? confirm matches on a local page: R1/mAP "
                       "estimates with 95%% intervals, a blind comparison of models")
    p.add_argument("--data", help="folder of crops (any layout progreid reads)")
    p.add_argument("--layout", default="auto", choices=["auto", *sorted(LAYOUTS)])
    p.add_argument("--weights", action="append", default=[],
                   help="run folder (its last finished round) or weights file (then --arch); repeat to compare")
    p.add_argument("--arch", choices=ARCHS, help="architecture of bare weights files")
    p.add_argument("--round", dest="round_", type=flag("--round", AT_LEAST_1), help="a run's round (default: its last)")
    p.add_argument("--out", help="verify folder: session.json (the queries) and verify.jsonl (the answers); "
                   "the same --out continues where it stopped")
    p.add_argument("--queries", type=flag("--queries", AT_LEAST_1), default=50, help="queries to draw (default 50)")
    p.add_argument("--top", type=flag("--top", AT_LEAST_1), default=10, help="candidates per model (default 10)")
    p.add_argument("--seed", type=flag("--seed", AT_LEAST_0), default=0)
    p.add_argument("--port", type=flag("--port", PORT), default=8765, help="loopback port (0: any free one)")
    p.add_argument("--height", type=flag("--height", AT_LEAST_1), help="input height for bare weights (default 256)")
    p.add_argument("--width", type=flag("--width", AT_LEAST_1), help="input width for bare weights (default 128)")
    p.add_argument("--device", default="auto")
    p.add_argument("--simulate", action="store_true",
                   help="answer from ground-truth identities (benchmarks and tests; refused on unlabeled crops)")
    p.add_argument("--train-crops", action="store_true", help="ask about the train split's crops (what adapt "
                   "trains on) even where the folder has a labeled query/gallery split")
    p.add_argument("--score", metavar="DIR", help="print the estimate of a verify folder's answers and exit")
    p.add_argument("--json", action="store_true", help="with --score or --simulate: the estimate as JSON")
    p.add_argument("--write-labels", metavar="CSV", help="with --score: write the confirmed matches as 'path,pid' "
                   "groups for `adapt --labeled-csv`")
    p.add_argument("--write-cannot-links", metavar="CSV", help="with --score: write each answered query's shown, "
                   "unclicked crops as 'path_a,path_b' pairs for `adapt --labels-as links --cannot-links`")
    p.add_argument("--force", action="store_true", help="replace existing --write-labels/--write-cannot-links files")

    p = sub.add_parser("extract", help="write features (.npy) and records (.csv) per split")
    _add_data(p)
    _add_model(p)
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--parts", default="train,query,gallery", help="comma-separated subsets")
    p.add_argument("--onnx", help="compute features with onnxruntime from this exported model (instead of --weights)")
    p.add_argument("--force", action="store_true", help="replace features already in --out")
    return parser


def run(args: argparse.Namespace) -> int:
    from progreid import api

    # progress bars only for a person watching: in a log file every bar refresh would be a line
    progress = not args.quiet and sys.stderr.isatty()
    if args.command == "datasets":
        from progreid.data.layouts import load_dataset

        print(load_dataset(args.data, args.layout).format_statistics())
    elif args.command == "evaluate":
        from progreid.engine.evaluate import EvalOptions

        opts = EvalOptions(metric=args.metric, rerank=args.rerank, flip=args.flip, batch_size=args.batch_size,
                           size=(args.height, args.width))
        metrics = api.evaluate(args.data, args.arch, args.weights, args.layout, opts, args.device,
                               args.json_out, progress)
        print(metrics.summary())
        if args.json_out:
            print(f"wrote {args.json_out}")
    elif args.command == "adapt":
        from progreid import distributed
        from progreid.engine.adapt import adapt

        overrides = _run_overrides(args)
        cfg, max_rounds = api.adapt_config(args.out, args.method, args.preset, args.config, overrides, args.resume,
                                           args.max_rounds)
        _note_unread_settings(cfg, args.overrides)
        try:
            rows = adapt(cfg, args.out, resume=args.resume, progress=progress, max_rounds=max_rounds,
                         force=args.force)
        finally:
            main_rank = distributed.is_main()
            distributed.teardown()
        if not main_rank:
            return 0
        last = rows[-1]
        if "mAP" in last:
            print(f"final: R1 {last['rank1']:.1f}  mAP {last['mAP']:.1f}  (round 0: R1 {rows[0].get('rank1', float('nan')):.1f}"
                  f"  mAP {rows[0].get('mAP', float('nan')):.1f})")
        print(f"run folder: {args.out}")
    elif args.command == "train":
        from progreid.config import load_config
        from progreid.engine.source import train_source

        cfg = load_config("train", args.preset, args.config, _run_overrides(args))
        train_source(cfg, args.out, progress=progress, force=args.force)
    elif args.command == "demo":
        from progreid.engine.demo import run_demo

        run_demo(args.out, args.quick, args.seed, progress)
    elif args.command == "synth" and args.footage:
        from progreid.footage.synth import write_footage

        api.require_new_folder(args.out, args.force)
        print(f"cameras: {write_footage(args.out, cameras=args.cameras or 2, seed=args.seed)}")
    elif args.command == "synth":
        from progreid.data.synth import generate_network

        api.require_new_folder(args.out, args.force)
        for name, path in generate_network(args.out, args.ids, args.cameras or 6, args.seed, (args.height, args.width)).items():
            print(f"{name}: {path}")
    elif args.command == "report":
        from progreid.report.html import build_report

        print(build_report(args.run))
    elif args.command == "crops":
        result = api.crops(args.out, args.listing, args.video, args.tracks, args.camera, args.stride, args.min_height,
                           force=args.force)
        print(result.table())
        print(f"manifest: {result.manifest}")
    elif args.command == "export":
        done = api.export(args.source, args.fmt, args.out, args.arch, args.round_, args.check_images,
                          force=args.force)
        if done.get("note"):
            print(done["note"])
        print(f"wrote {done['path']}" + (f" (round {done['round']})" if done.get("round") else ""))
        if "sidecar" in done:
            print(f"wrote {done['sidecar']} (the preprocessing BoxMOT reads beside an ONNX model)")
        if "max_abs_difference" in done:
            print(f"onnxruntime vs torch: max abs feature difference {done['max_abs_difference']:.2e} "
                  f"on {done['checked_on']}")
    elif args.command == "verify":
        _verify(args, progress)
    elif args.command == "rank":
        page = api.rank(args.weights, args.query, args.gallery, args.out, args.arch, args.top, args.max_queries,
                        device=args.device, progress=progress, round_=args.round_, force=args.force)
        print(f"wrote {page}")
    elif args.command == "extract":
        parts = tuple(p.strip() for p in args.parts.split(",") if p.strip())
        written = api.extract(args.data, args.arch, args.weights, args.out, parts, args.layout, args.batch_size,
                              (args.height, args.width), args.device, progress, args.onnx, force=args.force)
        for part, path in written.items():
            print(f"{part}: {path}")
    return 0


def _verify(args: argparse.Namespace, progress: bool) -> None:
    from progreid import api

    def show(est: dict) -> None:
        keep = {k: v for k, v in est.items() if k not in ("text", "difference_text")}
        print(json.dumps(keep, indent=2) if args.json else est["text"])

    if args.score:
        if args.write_labels:
            groups = api.verify_labels(args.score, args.write_labels, args.force)
            print(f"wrote {args.write_labels}: {groups} groups of confirmed matches (use: adapt --labeled-csv)")
        if args.write_cannot_links:
            pairs = api.verify_cannot_links(args.score, args.write_cannot_links, args.force)
            print(f"wrote {args.write_cannot_links}: {pairs} pairs shown to differ "
                  "(use: adapt --labels-as links --cannot-links)")
        show(api.verify_score(args.score))
        return
    missing = [f for f, v in (("--data", args.data), ("--weights", args.weights), ("--out", args.out)) if not v]
    if missing:
        raise ProgReIDError(f"verify needs {', '.join(missing)} (or --score DIR to print a folder's estimate). "
                            "Fix: progreid verify --data CROPS --weights RUN_OR_WEIGHTS --out DIR.")
    from progreid.folder_lock import FolderLock

    with FolderLock(args.out, "verify"):
        session = api.verify(args.data, args.weights, args.out, args.queries, args.top, args.arch, args.round_,
                             args.seed, args.layout, args.simulate, args.device, progress,
                             log=(lambda s: None) if args.json else print,
                             size=(args.height, args.width) if args.height and args.width else None,
                             train_crops=args.train_crops)
        if args.simulate:
            show(api.verify_score(args.out))
            return
        from progreid.verify.server import serve

        serve(session, args.out, args.port)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if os.environ.get("PROGREID_FLOAT64") == "1":  # a check, not a mode: see docs/distributed.md
        import torch

        torch.set_default_dtype(torch.float64)
    try:
        return run(args)
    except ProgReIDError as exc:
        print(f"progreid: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # a full disk, a file that vanished, a permission: the file and the reason, no traceback
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"progreid: error: {where}{exc.strerror or exc}. Fix: free space or fix the path and permissions, "
              "then run the command again (a run folder resumes with --resume).", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("progreid: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
