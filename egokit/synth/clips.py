"""Small synthetic clips for the task generators (``egokit synth --task``) and tests: single mp4 files whose
content a tiny model can learn quickly (a colour per class, one known object per shot, coloured events at known
times), written with the synthetic dataset's H.264 writer."""

from __future__ import annotations

import dataclasses
import shutil
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from egokit.synth.render import Renderer
from egokit.synth.scene import Scene, SceneObject, random_scene
from egokit.synth.taxonomy import COLOURS
from egokit.synth.writer import encode_chunks

__all__ = ["COLOUR_RGB", "colour_segments_video", "event_video", "one_object_scene", "render_scene",
           "write_video"]

#: ``name -> (r, g, b)`` of the synthetic world's colours.
COLOUR_RGB = {name: rgb for name, rgb in COLOURS}


def write_video(path: str | Path, frames: np.ndarray | Callable[[int], np.ndarray], fps: int, *,
                num_frames: int | None = None, crf: int = 18) -> Path:
    """One H.264 mp4 (a key frame every second) of RGB frames: an array (N, H, W, 3) or ``frame(i)`` for
    ``i < num_frames``. Written atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if callable(frames):
        frame_at, count = frames, num_frames
    else:
        frame_at, count = (lambda i: frames[i]), len(frames)
    if not count:
        raise ValueError("a video needs at least one frame")
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        (chunk,) = encode_chunks(frame_at, count, tmp, fps, chunk_frames=count, crf=crf)
        chunk.replace(path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return path


def colour_segments_video(path: str | Path, segments: Sequence[tuple[tuple[int, int, int], float]], *,
                          fps: int = 25, size: tuple[int, int] = (64, 48), seed: int = 0) -> Path:
    """Solid-colour segments ``[(rgb, seconds), ...]`` with mild noise (W x H = ``size``)."""
    rng = np.random.default_rng(seed)
    width, height = size
    colours = [rgb for rgb, seconds in segments for _ in range(round(seconds * fps))]

    def frame(i: int) -> np.ndarray:
        noise = rng.integers(-12, 13, (height, width, 3))
        return np.clip(np.array(colours[i], dtype=np.int16) + noise, 0, 255).astype(np.uint8)

    return write_video(path, frame, fps, num_frames=len(colours), crf=23)


def event_video(path: str | Path, events: Sequence[tuple[str, float, float]], duration: float, *, fps: int = 6,
                size: int = 48, seed: int = 0) -> Path:
    """A textured grey background with a large square of colour ``name`` visible during each
    ``(name, start, end)`` event (seconds)."""
    rng = np.random.default_rng(seed)
    background = (110 + rng.integers(0, 30, (size, size, 3))).astype(np.uint8)
    margin = size // 5

    def frame(i: int) -> np.ndarray:
        img = background.copy()
        t = (i + 0.5) / fps
        for name, start, end in events:
            if start <= t < end:
                img[margin:-margin, margin:-margin] = COLOUR_RGB[name]
        return img

    return write_video(path, frame, fps, num_frames=int(duration * fps), crf=23)


def one_object_scene(rng: np.random.Generator, colour: str, shape: str) -> Scene:
    """A random room (muted colours, textured table) with a single large ``colour shape`` in the middle."""
    scene = random_scene(rng, aspect=1.0, num_objects=1)
    obj = SceneObject(shape=shape, colour=colour, x=float(rng.uniform(0.4, 0.6)), y=0.8, size=0.45)
    return dataclasses.replace(scene, objects=(obj,))


def render_scene(scene: Scene, times: Sequence[float], size: int) -> np.ndarray:
    """uint8 (len(times), size, size, 3) frames of a still scene."""
    renderer = Renderer(scene, [], size, size)
    return np.stack([renderer.frame(float(t)) for t in times])
