"""Where an export goes and what it is called, so that trackers load it as what it is.

BoxMOT (read from its ReID backend's rules, v25) picks the backend by suffix (``.pt`` PyTorch state
dict, ``.torchscript``, ``.onnx``; ``.pth`` and ``.ts`` are refused), the network by the architecture
named in the file name, and downloads or uses its own copy of a file named like one of its stock
models (``osnet_x0_25_msmt17.pt``). So: the suffix follows the format, the name carries the arch,
and a stock name is refused (a name given) or renamed (a name chosen here), saying why.
"""

from __future__ import annotations

import re
from pathlib import Path

from progreid.errors import ProgReIDError

FORMAT_SUFFIX = {"torchreid": ".pt", "torchscript": ".torchscript", "onnx": ".onnx"}
# the architectures and training sets of the models BoxMOT downloads by file name
STOCK_ARCHS = ("resnet50", "resnet50_fc512", "resnet101", "mlfn", "hacnn", "mobilenetv2_x1_0", "mobilenetv2_x1_4",
               "osnet_x1_0", "osnet_x0_75", "osnet_x0_5", "osnet_x0_25", "osnet_ibn_x1_0", "osnet_ain_x1_0",
               "lmbn_n", "clip")
STOCK_DATASETS = ("market1501", "dukemtmcreid", "msmt17", "market", "duke", "cuhk03_d", "veri", "vehicleid")
STOCK_RE = re.compile(rf"({'|'.join(STOCK_ARCHS)})_({'|'.join(STOCK_DATASETS)})", re.IGNORECASE)
RENAMED = "_adapted"


def is_stock_name(path: str | Path) -> bool:
    """True for a file named like a model a tracker ships (``osnet_x0_25_msmt17.pt``, any suffix)."""
    return STOCK_RE.fullmatch(Path(path).name.split(".")[0]) is not None


def export_path(fmt: str, out: str | Path, arch: str, stem: str) -> tuple[Path, str]:
    """(the file to write, a note to show or ""). ``out``: a file name, or a folder (no suffix, or one
    that exists) into which ``<stem><suffix>`` is written."""
    suffix = FORMAT_SUFFIX[fmt]
    out = Path(out)
    if out.is_dir() or not out.suffix:
        name = f"{stem}{suffix}"
        if is_stock_name(name):
            renamed = f"{stem}{RENAMED}{suffix}"
            return out / renamed, (f"named {renamed}, not {name}: {name} is the name of a stock model that trackers "
                                   "(BoxMOT) download or use their own copy of")
        return out / name, ""
    if out.suffix.lower() != suffix:
        raise ProgReIDError(f"--out {out}: a {fmt} export is a {suffix} file (trackers such as BoxMOT choose how to "
                            f"load a file by its suffix). Fix: --out {out.with_suffix(suffix)}.")
    if arch not in out.name:
        raise ProgReIDError(f"--out {out}: the file name must contain the architecture {arch!r}: trackers such as "
                            f"BoxMOT pick the network from it. Fix: e.g. --out {out.with_name(f'{arch}_{out.name}')}.")
    if is_stock_name(out):
        fixed = out.with_name(f"{out.name.split('.')[0]}{RENAMED}{suffix}")
        raise ProgReIDError(f"--out {out}: that is the name of a stock model trackers (BoxMOT) download or use their "
                            f"own copy of, so the tracker might not run these weights. Fix: --out {fixed}.")
    return out, ""
