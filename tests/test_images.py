import os

import numpy as np
import pytest
import torch

from progreid.data.images import load_images
from progreid.data.transforms import AugmentConfig, augment, preprocess, rotate_and_shift
from progreid.errors import DatasetError

from conftest import write_image


def test_cache_is_reused_and_invalidated(tmp_path):
    paths = []
    for i in range(3):
        write_image(tmp_path / f"{i}.jpg", color=(40 * i, 100, 200))
        paths.append(str(tmp_path / f"{i}.jpg"))
    cache = tmp_path / "cache"
    a = load_images(paths, (32, 16), cache_dir=cache, progress=False)
    assert a.shape == (3, 32, 16, 3) and a.dtype == np.uint8
    assert len(list(cache.glob("*.npy"))) == 1
    b = load_images(paths, (32, 16), cache_dir=cache, progress=False)
    assert isinstance(b, np.memmap) and np.array_equal(a, b)
    write_image(tmp_path / "0.jpg", color=(255, 255, 255), size=(70, 130))  # file changed -> new entry
    c = load_images(paths, (32, 16), cache_dir=cache, progress=False)
    assert len(list(cache.glob("*.npy"))) == 2 and not np.array_equal(a[0], c[0])
    load_images(paths[:2], (32, 16), cache_dir=cache, progress=False)  # other file list -> new entry
    assert len(list(cache.glob("*.npy"))) == 3


def test_unreadable_and_missing_images_name_the_file(tmp_path):
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"not a jpeg")
    with pytest.raises(DatasetError, match="bad.jpg: cannot read image"):
        load_images([str(bad)], (32, 16), use_cache=False, progress=False)
    with pytest.raises(DatasetError, match="gone.jpg: image file is missing"):
        load_images([str(tmp_path / "gone.jpg")], (32, 16), cache_dir=tmp_path, progress=False)


def test_preprocess_matches_imagenet_normalisation():
    img = np.full((1, 4, 2, 3), 255, np.uint8)
    x = preprocess(img)
    assert x.shape == (1, 3, 4, 2)
    assert torch.allclose(x[0, :, 0, 0], torch.tensor([(1 - 0.485) / 0.229, (1 - 0.456) / 0.224, (1 - 0.406) / 0.225]))


def test_augment_is_seeded_and_does_what_it_says():
    rng = np.random.default_rng(0)
    imgs = rng.integers(0, 255, (16, 32, 16, 3), dtype=np.uint8)
    out1 = augment(imgs, AugmentConfig(), torch.Generator().manual_seed(1))
    out2 = augment(imgs, AugmentConfig(), torch.Generator().manual_seed(1))
    assert out1.shape == (16, 3, 32, 16) and torch.equal(out1, out2)
    off = augment(imgs, AugmentConfig(flip=0, pad=0, erase=0), torch.Generator().manual_seed(1))
    assert torch.allclose(off, preprocess(imgs))
    flipped = augment(imgs, AugmentConfig(flip=1, pad=0, erase=0), torch.Generator().manual_seed(1))
    assert torch.allclose(flipped, preprocess(imgs).flip(-1))
    erased = augment(imgs, AugmentConfig(flip=0, pad=0, erase=1), torch.Generator().manual_seed(1))
    zeros = (erased == 0).all(1).flatten(1).sum(1)  # erased pixels are 0 in every channel
    assert (zeros >= 0.02 * 32 * 16 * 0.5).all()


def test_rotate_and_shift_moves_a_point_as_a_pixel_space_rotation_and_shift():
    """PUL's augmentation: a bright point lands where rotating the *pixels* by the drawn angle
    (no shear on a 2:1 crop) and shifting by the drawn fraction of the size puts it."""
    h, w, n = 64, 32, 8
    x = torch.zeros(n, 1, h, w)
    row, col = 20, 22
    x[:, :, row - 1:row + 2, col - 1:col + 2] = 1.0
    out = rotate_and_shift(x, 30.0, 0.1, torch.Generator().manual_seed(3))
    g = torch.Generator().manual_seed(3)  # the same draws, in the function's order
    theta = (torch.rand(n, generator=g) * 2 - 1) * np.deg2rad(30.0)
    ty = (torch.rand(n, generator=g) * 2 - 1) * 0.1 * h
    tx = (torch.rand(n, generator=g) * 2 - 1) * 0.1 * w
    ys, xs = torch.meshgrid(torch.arange(h) + 0.5 - h / 2, torch.arange(w) + 0.5 - w / 2, indexing="ij")
    for i in range(n):
        m = out[i, 0]
        got = torch.stack([(m * xs).sum() / m.sum(), (m * ys).sum() / m.sum()])
        px, py = col + 0.5 - w / 2 - tx[i], row + 0.5 - h / 2 - ty[i]  # output = R^-1 (input - shift)
        c, s = torch.cos(theta[i]), torch.sin(theta[i])
        want = torch.stack([c * px + s * py, -s * px + c * py])
        assert torch.allclose(got, want, atol=0.3), (i, got, want)
    assert theta.abs().max() > np.deg2rad(10) and (tx.abs() + ty.abs()).max() > 2  # the draws did move it
    plain = augment(np.zeros((2, 8, 4, 3), np.uint8), AugmentConfig(flip=0, pad=0, erase=0, rotate=20, shift=0.2),
                    torch.Generator().manual_seed(0))
    assert torch.allclose(plain, preprocess(np.zeros((2, 8, 4, 3), np.uint8)))  # a flat image stays flat (edge fill)


def test_unreadable_images_are_skipped_and_counted_when_asked(tmp_path):
    paths = []
    for i in range(4):
        write_image(tmp_path / f"{i}.jpg", color=(60 * i, 100, 200))
        paths.append(str(tmp_path / f"{i}.jpg"))
    (tmp_path / "2.jpg").write_bytes(b"\xff\xd8 truncated")  # a corrupt crop among good ones
    cache = tmp_path / "cache"
    with pytest.raises(DatasetError, match=r"2\.jpg: cannot read image"):
        load_images(paths, (32, 16), cache_dir=cache, progress=False)  # default: error, naming the file
    bad: list[int] = []
    a = load_images(paths, (32, 16), cache_dir=cache, progress=False, bad=bad)
    assert bad == [2] and not a[2].any() and a[3].any()
    again: list[int] = []
    load_images(paths, (32, 16), cache_dir=cache, progress=False, bad=again)  # from the cache: still known
    assert again == [2]
    with pytest.raises(DatasetError, match=r"2\.jpg"):
        load_images(paths, (32, 16), cache_dir=cache, progress=False)
    assert not list(cache.glob(".*partial*"))  # no partial file left behind


def test_a_run_with_bad_images_skip_trains_without_them(tmp_path):
    from progreid.config import load_config
    from progreid.engine.context import build_context

    train = tmp_path / "d" / "bounding_box_train"
    for i in range(6):
        write_image(train / f"{i + 1:04d}_c{i % 2 + 1}s1_{i * 10:06d}_00.jpg", color=(40 * i, 90, 200))
    (train / "0003_c1s1_000020_00.jpg").write_bytes(b"not a jpeg")
    cfg = load_config("pul", "quick", overrides=[f"data.target={tmp_path / 'd'}", "data.height=32", "data.width=16"])
    with pytest.raises(DatasetError, match="0003_c1s1_000020_00.jpg"):
        build_context(cfg, progress=False)
    cfg.data.bad_images = "skip"
    ctx = build_context(cfg, progress=False)
    assert ctx.target.bad_train.tolist() == [2] and 2 not in ctx.pool and len(ctx.pool) == 5
