"""Procedural synthetic camera networks in Market-1501 layout, for the demo and the tests.

What it models (and why):
- identities: shirt/trouser colours drawn from a shared palette (so people are confusable),
  shirt patterns, bags, hair, body width, and a logo seen only from the front (front/back views);
- cameras: viewpoint (scale, offset), illumination, colour cast, blur, noise, their own background
  and occluders, detector-like crop jitter;
- two domains: source and target draw clothing and camera styles from different distributions, so
  a model trained on the source only partly transfers;
- a timeline: each person crosses several cameras; in each camera their crops form one short
  contiguous run of frames, interleaved with other people's (TCUL's assumption).
Seeded; writes a few thousand images per second.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

PALETTE = np.array([  # clothing colours shared by everybody: identities collide on colour
    [200, 30, 30], [30, 60, 200], [30, 150, 40], [230, 210, 40], [240, 240, 240], [25, 25, 25],
    [120, 120, 120], [150, 80, 30], [240, 130, 30], [130, 40, 160], [60, 190, 200], [240, 150, 190],
    [20, 40, 90], [90, 110, 40], [190, 170, 130], [110, 20, 40]], np.float32)


@dataclass
class DomainStyle:
    palette_weights: np.ndarray   # preference over PALETTE
    cast_spread: float            # how strongly cameras tint colours
    light_range: tuple[float, float]
    blur_max: int
    noise: float
    occlusion: float              # probability of an occluder
    background_dark: bool


def domain_style(name: str) -> DomainStyle:
    """Source: clean cameras, brighter clothing. Target: the same kinds of clothing with other
    preferences, stronger casts and lighting changes, more blur, noise and occlusion."""
    w = np.ones(len(PALETTE))
    if name == "source":
        w[[0, 1, 2, 3, 8, 10, 11]] *= 1.8
        return DomainStyle(w / w.sum(), 0.06, (0.9, 1.1), 1, 3.0, 0.1, False)
    w[[5, 6, 7, 12, 13, 14, 15]] *= 1.5
    return DomainStyle(w / w.sum(), 0.12, (0.75, 1.1), 2, 5.0, 0.2, True)


@dataclass
class Person:
    shirt: np.ndarray
    trousers: np.ndarray
    pattern: int          # 0 solid, 1 horizontal stripes, 2 vertical stripes, 3 two-tone
    accent: np.ndarray
    bag: int              # 0 none, 1 backpack, 2 shoulder bag
    bag_colour: np.ndarray
    hair: np.ndarray
    width: float
    logo: np.ndarray
    shoes: np.ndarray


@dataclass
class Camera:
    cast: np.ndarray
    light: float
    blur: int
    noise: float
    background: np.ndarray  # (H, 4W, 3): a panorama; each crop sees a random window of it
    scale: float
    offset: float
    occluder: np.ndarray


def _colour(rng: np.random.Generator, style: DomainStyle) -> np.ndarray:
    c = PALETTE[rng.choice(len(PALETTE), p=style.palette_weights)]
    return np.clip(c + rng.normal(0, 18, 3), 0, 255)


def make_person(rng: np.random.Generator, style: DomainStyle) -> Person:
    return Person(shirt=_colour(rng, style), trousers=_colour(rng, style), pattern=int(rng.integers(4)),
                  accent=_colour(rng, style), bag=int(rng.choice(3, p=[0.5, 0.3, 0.2])), bag_colour=_colour(rng, style),
                  hair=np.array([[20, 15, 10], [90, 60, 30], [200, 170, 90], [130, 130, 130]][rng.integers(4)], np.float32),
                  width=float(rng.uniform(0.30, 0.46)), logo=_colour(rng, style), shoes=_colour(rng, style) * 0.5)


def make_camera(rng: np.random.Generator, style: DomainStyle, size: tuple[int, int]) -> Camera:
    h, w = size
    pw = 4 * w
    base = rng.uniform(60, 150, 3) if style.background_dark else rng.uniform(110, 210, 3)
    grad = np.linspace(-25, 25, h)[:, None, None] * rng.uniform(-1, 1)
    texture = rng.normal(0, 12, (h // 4 + 1, pw // 4 + 1, 3)).repeat(4, 0).repeat(4, 1)[:h, :pw]
    for _ in range(6):  # scene structures: doors, windows, benches, shop fronts
        x0, y0 = int(rng.integers(0, pw - 4)), int(rng.integers(0, h - 4))
        texture[y0:y0 + int(rng.integers(4, h // 2)), x0:x0 + int(rng.integers(4, w))] += rng.uniform(-70, 70, 3)
    return Camera(cast=np.clip(1 + rng.normal(0, style.cast_spread, 3), 0.5, 1.6),
                  light=float(rng.uniform(*style.light_range)), blur=int(rng.integers(0, style.blur_max + 1)),
                  noise=style.noise * float(rng.uniform(0.5, 1.5)),
                  background=np.clip(base + grad + texture, 0, 255).astype(np.float32),
                  scale=float(rng.uniform(0.85, 1.0)), offset=float(rng.uniform(-0.08, 0.08)),
                  occluder=rng.uniform(30, 200, 3))


def _box_blur(img: np.ndarray, r: int) -> np.ndarray:
    if r <= 0:
        return img
    k = 2 * r + 1
    pad = np.pad(img, ((r, r), (r, r), (0, 0)), mode="edge")
    c = pad.cumsum(0)
    v = np.concatenate([c[k - 1:k], c[k:] - c[:-k]], 0)
    c = v.cumsum(1)
    return np.concatenate([c[:, k - 1:k], c[:, k:] - c[:, :-k]], 1) / (k * k)


def render(person: Person, cam: Camera, rng: np.random.Generator, size: tuple[int, int], front: bool,
           occlusion: float = 0.2) -> np.ndarray:
    """One detected crop of ``person`` in ``cam``: uint8 (H, W, 3)."""
    h, w = size
    x0 = int(rng.integers(0, cam.background.shape[1] - w + 1))
    img = cam.background[:, x0:x0 + w].copy()
    for _ in range(int(rng.integers(0, 3))):  # clutter passing through the crop
        cy, cx0 = int(rng.integers(0, h)), int(rng.integers(0, w))
        img[cy:cy + int(rng.integers(2, h // 4)), cx0:cx0 + int(rng.integers(2, w // 3))] = rng.uniform(20, 235, 3)
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    yn, xn = ys / h, xs / w
    # viewpoint and detector jitter: scale and shift of the body inside the crop
    s = cam.scale * rng.uniform(0.92, 1.05)
    cx = 0.5 + cam.offset + rng.normal(0, 0.03)
    top = 0.04 + rng.uniform(0, 0.05) + (1 - s) * 0.5
    def body_y(a: float) -> float:
        return top + a * s * 0.92
    half = person.width * s / 2
    # legs and shoes
    legs = (yn > body_y(0.55)) & (yn < body_y(0.95)) & (np.abs(xn - cx) < half * 0.85) & (np.abs(xn - cx) > half * 0.08)
    img[legs] = person.trousers
    img[(yn >= body_y(0.95)) & (yn < body_y(1.0)) & (np.abs(xn - cx) < half * 0.85) & (np.abs(xn - cx) > half * 0.08)] = person.shoes
    # torso with pattern
    torso = (yn > body_y(0.17)) & (yn <= body_y(0.56)) & (np.abs(xn - cx) < half)
    img[torso] = person.shirt
    if person.pattern == 1:
        img[torso & ((ys // 3) % 2 == 0)] = person.accent
    elif person.pattern == 2:
        img[torso & ((xs // 3) % 2 == 0)] = person.accent
    elif person.pattern == 3:
        img[torso & (yn > body_y(0.36))] = person.accent
    if front:  # a chest logo only the front view shows
        img[(np.abs(yn - body_y(0.28)) < 0.035 * s) & (np.abs(xn - cx) < half * 0.3)] = person.logo
    # bag: backpack covers the back; seen from the front only as straps; shoulder bag on one side
    if person.bag == 1:
        if front:
            img[torso & (np.abs(np.abs(xn - cx) - half * 0.55) < 0.035)] = person.bag_colour
        else:
            img[(yn > body_y(0.2)) & (yn < body_y(0.48)) & (np.abs(xn - cx) < half * 0.75)] = person.bag_colour
    elif person.bag == 2:
        side = 1 if front else -1
        img[(yn > body_y(0.38)) & (yn < body_y(0.55)) & (np.abs(xn - (cx + side * half * 1.05)) < 0.07)] = person.bag_colour
    # head: skin face from the front, hair from the back
    head = ((xn - cx) / (0.10 * s)) ** 2 + ((yn - body_y(0.085)) / (0.075 * s)) ** 2 < 1
    img[head] = np.array([210, 160, 130], np.float32) if front else person.hair
    img[head & (yn < body_y(0.06))] = person.hair
    # occluder (a pole, a car, another person's shoulder)
    if rng.random() < occlusion:
        x0 = rng.uniform(0, 0.9)
        img[(xn > x0) & (xn < x0 + rng.uniform(0.08, 0.3)) & (yn > rng.uniform(0.4, 0.9))] = cam.occluder
    # camera: colour cast, illumination, blur, sensor noise
    img = img * cam.cast * cam.light * rng.uniform(0.9, 1.1)
    img = _box_blur(img, cam.blur)
    img = img + rng.normal(0, cam.noise, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def generate_domain(out: str | Path, domain: str = "target", num_ids: int = 100, num_cameras: int = 4,
                    images_per_visit: tuple[int, int] = (3, 7), seed: int = 0, size: tuple[int, int] = (64, 32),
                    test_fraction: float = 0.5) -> Path:
    """Write one domain in Market-1501 layout under ``out``; returns ``out``.

    Identities are split train/test (even/odd after a shuffle); of the test identities the first
    image of each (identity, camera) pair is a query, the rest gallery.
    """
    out = Path(out)
    rng = np.random.default_rng(seed + (0 if domain == "source" else 7919))
    style = domain_style(domain)
    cams = [make_camera(rng, style, size) for _ in range(num_cameras)]
    people = [make_person(rng, style) for _ in range(num_ids)]
    # timeline: each person walks through 2..num_cameras cameras; within a camera one contiguous run
    frame_of_cam = [0] * num_cameras
    shots: list[tuple[int, int, int]] = []  # (pid, cam, frame)
    arrival = np.sort(rng.uniform(0, 1000, num_ids))
    events = []
    for pid in range(num_ids):
        visits = rng.permutation(num_cameras)[: int(rng.integers(2, num_cameras + 1))]
        t = arrival[pid]
        for cam in visits:
            events.append((t, pid, int(cam)))
            t += rng.uniform(20, 200)
    for t, pid, cam in sorted(events):
        start = max(frame_of_cam[cam], int(t * 25)) + int(rng.integers(0, 40))
        n = int(rng.integers(images_per_visit[0], images_per_visit[1] + 1))
        frames = start + np.cumsum(rng.integers(2, 12, n))
        frame_of_cam[cam] = int(frames[-1]) - int(rng.integers(0, 30))  # runs of others interleave
        shots.extend((pid, cam, int(f)) for f in frames)
    order = rng.permutation(num_ids)
    test_ids = set(order[: int(round(num_ids * test_fraction))].tolist())
    seen_pair: set[tuple[int, int]] = set()
    for sub in ("bounding_box_train", "query", "bounding_box_test"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    for i, (pid, cam, frame) in enumerate(sorted(shots, key=lambda s: (s[0], s[1], s[2]))):
        front = bool(rng.random() < 0.5)
        img = render(people[pid], cams[cam], rng, size, front, style.occlusion)
        if pid in test_ids:
            sub = "query" if (pid, cam) not in seen_pair else "bounding_box_test"
            seen_pair.add((pid, cam))
        else:
            sub = "bounding_box_train"
        name = f"{pid + 1:04d}_c{cam + 1}s1_{frame:06d}_{i % 100:02d}.jpg"
        Image.fromarray(img).save(out / sub / name, quality=92)
    return out


def generate_network(out: str | Path, num_ids: int = 100, num_cameras: int = 4, seed: int = 0,
                     size: tuple[int, int] = (64, 32)) -> dict[str, Path]:
    """A source and a target domain side by side: ``out/source`` and ``out/target``."""
    out = Path(out)
    return {d: generate_domain(out / d, d, num_ids, num_cameras, seed=seed, size=size) for d in ("source", "target")}
