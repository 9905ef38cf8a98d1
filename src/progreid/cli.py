"""Command line: parse, call :mod:`progreid.api`, print. No logic lives here."""

from __future__ import annotations

import argparse
import sys

from progreid.data.layouts import LAYOUTS
from progreid.errors import ProgReIDError
from progreid.models import ARCHS


def _add_data(p: argparse.ArgumentParser, flag: str = "--data") -> None:
    p.add_argument(flag, required=True, help="dataset folder (Market-1501/Duke/CUHK03/MSMT17 layout or manifest.csv)")
    p.add_argument("--layout", default="auto", choices=["auto", *sorted(LAYOUTS)], help="dataset layout (default: detect)")


def _add_model(p: argparse.ArgumentParser) -> None:
    p.add_argument("--arch", default="osnet_x0_25", choices=ARCHS, help="backbone (default: osnet_x0_25)")
    p.add_argument("--weights", help="weights file: .pth / .pth.tar / .safetensors (torchreid or torchvision keys)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1 ...")
    p.add_argument("--batch-size", type=int, default=0, help="images per forward pass (0: 32 on CPU, 256 on GPU)")
    p.add_argument("--height", type=int, default=256)
    p.add_argument("--width", type=int, default=128)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="progreid", description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("datasets", help="print a dataset's statistics table (checks the layout)")
    _add_data(p)

    p = sub.add_parser("evaluate", help="rank query vs gallery and print R1/R5/R10/R20/mAP/mINP")
    _add_data(p)
    _add_model(p)
    p.add_argument("--metric", default="cosine", choices=["cosine", "euclidean"])
    p.add_argument("--rerank", action="store_true", help="k-reciprocal re-ranking")
    p.add_argument("--flip", action="store_true", help="average features with the mirrored image")
    p.add_argument("--json", dest="json_out", help="also write the metrics (percent) to this JSON file")

    p = sub.add_parser("extract", help="write features (.npy) and records (.csv) per split")
    _add_data(p)
    _add_model(p)
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--parts", default="train,query,gallery", help="comma-separated subsets")
    return parser


def run(args: argparse.Namespace) -> int:
    from progreid import api

    progress = not args.quiet
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
    elif args.command == "extract":
        parts = tuple(p.strip() for p in args.parts.split(",") if p.strip())
        written = api.extract(args.data, args.arch, args.weights, args.out, parts, args.layout, args.batch_size,
                              (args.height, args.width), args.device, progress)
        for part, path in written.items():
            print(f"{part}: {path}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return run(args)
    except ProgReIDError as exc:
        print(f"progreid: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("progreid: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
