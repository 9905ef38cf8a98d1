"""Synthetic camera footage with its ground-truth tracks: the crops -> adapt -> export chain, runnable
anywhere (tests, README) without real video.

Each camera films the same people, one after another, walking across the frame in their own lane
(entering and leaving through the frame's edges, so boxes get clipped); cameras differ in
background and light. The track file is MOTChallenge text with the true person as track id.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from progreid.footage.video import _av


def _person_colors(people: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(30, 226, (people, 3, 3))  # shirt, trousers, stripe colour per person


def _draw_person(frame: np.ndarray, x: int, y: int, h: int, colors: np.ndarray, light: float) -> None:
    w = h // 2
    fh, fw = frame.shape[:2]

    def fill(y0, y1, x0, x1, color):
        y0, y1, x0, x1 = max(y0, 0), min(y1, fh), max(x0, 0), min(x1, fw)
        if y1 > y0 and x1 > x0:
            frame[y0:y1, x0:x1] = np.clip(np.asarray(color) * light, 0, 255)

    fill(y, y + h // 5, x + w // 3, x + 2 * w // 3, (200, 160, 130))            # head
    fill(y + h // 5, y + 11 * h // 20, x, x + w, colors[0])                      # shirt
    for s in range(y + h // 4, y + h // 2, max(h // 12, 2) * 2):                 # stripes
        fill(s, s + max(h // 12, 2), x, x + w, colors[2])
    fill(y + 11 * h // 20, y + h, x + w // 8, x + 7 * w // 8, colors[1])         # trousers


def write_footage(out: str | Path, cameras: int = 2, people: int = 4, fps: int = 10, person_frames: int = 24,
                  size: tuple[int, int] = (240, 320), person_height: int = 96, seed: int = 0) -> Path:
    """Write ``cam{c}.mp4`` and ``cam{c}.txt`` per camera and ``cameras.yaml`` listing them; return the listing."""
    av = _av()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    colors = _person_colors(people, seed)
    height, width = size
    lanes = np.linspace(10, height - person_height - 10, people).astype(int)
    listing = []
    for cam in range(1, cameras + 1):
        rng = np.random.default_rng(seed * 100 + cam)
        base = np.linspace(60, 160, width)[None, :, None] * rng.uniform(0.6, 1.0, (1, 1, 3))
        background = np.broadcast_to(base, (height, width, 3)).astype(np.uint8)
        light = 0.8 + 0.15 * cam
        # person p enters at frame 1 + p * person_frames / 2 (overlapping in time) and crosses in person_frames
        starts = [1 + p * person_frames // 2 for p in range(people)]
        n_frames = starts[-1] + person_frames + 5
        lines = []
        video = out / f"cam{cam}.mp4"
        with av.open(str(video), "w") as container:
            stream = container.add_stream("mpeg4", rate=fps)
            stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
            stream.bit_rate = 4_000_000
            for f in range(1, n_frames + 1):
                frame = background.copy()
                for p in range(people):
                    t = f - starts[p]
                    if 0 <= t < person_frames:
                        direction = 1 if (p + cam) % 2 else -1
                        # from half out of the frame on one side to half out on the other: clipped, never outside
                        x = int(-person_height // 4 + width * t / (person_frames - 1))
                        x = x if direction == 1 else width - x - person_height // 2
                        _draw_person(frame, x, int(lanes[p]), person_height, colors[p], light)
                        lines.append(f"{f},{p + 1},{x},{lanes[p]},{person_height // 2},{person_height},1,-1,-1,-1")
                for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                    container.mux(packet)
            for packet in stream.encode():
                container.mux(packet)
        (out / f"cam{cam}.txt").write_text("\n".join(lines) + "\n")
        listing.append(f"- {{video: cam{cam}.mp4, tracks: cam{cam}.txt, camera: {cam}}}")
    (out / "cameras.yaml").write_text("\n".join(listing) + "\n")
    return out / "cameras.yaml"
