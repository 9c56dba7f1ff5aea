"""Draw frames of a synthetic egocentric video with vectorised numpy (no graphics library needed).

Each shape is a signed-distance-like function evaluated only inside its bounding box; a one-pixel ramp on the
edge anti-aliases it. The background (wall, textured table) is drawn once on a canvas a little larger than the
frame and cropped per frame by the camera drift; objects, their shadows and the arm/hand are drawn per frame.

The camera *gazes* like a head-mounted one: while the hand acts on an object the view zooms onto that object's
home spot (``zoom`` times), and between actions it pans to the next object. The gaze depends only on which object
is handled, never on the verb, so opposite verbs still share their frames; the zoom is a crop of the rendered
frame resized back to full size (Pillow, bilinear).
"""

from __future__ import annotations

import bisect
import math

import numpy as np

from egokit.synth.taxonomy import COLOURS
from egokit.synth.scene import SLIDE_STEP, Action, ObjectState, Scene, SceneObject

__all__ = ["Renderer", "object_geometry"]

_WIDTH_RATIO = {"ball": 1.0, "box": 1.0, "cup": 0.85, "bottle": 0.6, "cone": 0.95, "ring": 1.0}
_LIFT = 0.3  # lift height, frame heights at depth 0
_DEPTH_SCALE = 0.33  # size change per depth level
_DEPTH_Y = 0.12  # a near object sits lower in the frame
_COLOURS = {name: np.array(rgb, dtype=np.float32) for name, rgb in COLOURS}


def _smoothstep(p: float) -> float:
    p = min(max(p, 0.0), 1.0)
    return p * p * (3 - 2 * p)


def object_geometry(obj: SceneObject, state: ObjectState) -> tuple[float, float, float, float, float]:
    """``(cx, cy, half_width, half_height, base_y)`` of an object in world units for a given pose."""
    scale = 1 + _DEPTH_SCALE * state.depth
    height = obj.size * scale
    base_y = obj.y + _DEPTH_Y * state.depth
    cx = obj.x + SLIDE_STEP * state.slide
    cy = base_y - _LIFT * state.lift * scale - height / 2
    return cx, cy, height * _WIDTH_RATIO[obj.shape] / 2, height / 2, base_y


def _shape_sd(shape: str, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Normalised signed distance (< 0 inside) of a shape spanning ``u, v`` in [-1, 1]."""
    if shape == "ball":
        return np.sqrt(u * u + v * v) - 1
    if shape == "box":
        return np.maximum(np.abs(u), np.abs(v)) - 1
    if shape == "cup":
        return np.maximum(np.abs(u) - (0.85 - 0.15 * v), np.abs(v) - 1)
    if shape == "bottle":
        body = np.maximum(np.abs(u) - 1, np.abs(v - 0.35) - 0.65)
        neck = np.maximum(np.abs(u) - 0.45, np.abs(v + 0.6) - 0.4)
        return np.minimum(body, neck)
    if shape == "cone":
        return np.maximum(np.abs(u) - (v + 1) / 2, np.abs(v) - 1)
    if shape == "ring":
        return np.abs(np.sqrt(u * u + v * v) - 0.68) - 0.32
    raise ValueError(f"unknown shape {shape!r}")


class Renderer:
    """Renders frame ``t`` (seconds) of a scene and its action timeline at ``width`` x ``height`` pixels."""

    def __init__(self, scene: Scene, actions: list[Action], width: int, height: int, zoom: float = 1.0) -> None:
        if zoom < 1.0:
            raise ValueError(f"zoom must be >= 1, got {zoom}")
        self.zoom = float(zoom)
        self.scene = scene
        self.actions = sorted(actions, key=lambda a: a.t0)
        self.width, self.height = width, height
        self.px = float(height)  # pixels per world unit
        k = height / 128.0
        self.margin = int(math.ceil((scene.drift[0] + scene.drift[1] + scene.shake) * k)) + 2
        self.background = self._background()
        self._starts = [a.t0 for a in self.actions]
        self.skin = np.array(scene.skin, dtype=np.float32)
        self.sleeve = np.array(scene.table, dtype=np.float32) * 0.45 + np.array([20, 20, 40], dtype=np.float32)
        self.arm_base = (scene.aspect / 2 + scene.hand_side * 0.3 * scene.aspect, 1.25)
        self.rest = (scene.aspect / 2 + scene.hand_side * 0.28 * scene.aspect, 1.02)
        self._static: np.ndarray = self.background
        self._static_key: tuple | None = None

    # ---------------------------------------------------------------- static layer
    def _background(self) -> np.ndarray:
        s, m = self.scene, self.margin
        h, w = self.height + 2 * m, self.width + 2 * m
        y = (np.arange(h, dtype=np.float32)[:, None] - m + 0.5) / self.px
        x = (np.arange(w, dtype=np.float32)[None, :] - m + 0.5) / self.px
        wall = np.array(s.wall, np.float32) * (0.85 + 0.15 * np.clip(y / max(s.table_top, 1e-3), 0, 1))[..., None]
        table = np.broadcast_to(np.array(s.table, np.float32), (h, w, 3)).copy()
        f = 1.0 / s.texture_scale
        if s.texture == "stripes":
            table *= (0.9 + 0.1 * np.sin(2 * np.pi * (x * f + 0.3 * np.sin(7 * y))))[..., None]
        elif s.texture == "checker":
            table *= (0.92 + 0.08 * ((np.floor(x * f) + np.floor(y * f)) % 2))[..., None]
        elif s.texture == "noise":
            noise = np.random.default_rng(s.texture_seed).random((h, w), dtype=np.float32)
            table *= (0.93 + 0.07 * noise)[..., None]
        img = np.where((y >= s.table_top)[..., None], table, wall)
        edge = np.abs(y - s.table_top) < 1.5 / self.px
        img[np.broadcast_to(edge, (h, w))] *= 0.6
        return np.clip(img, 0, 255).astype(np.float32)

    # ---------------------------------------------------------------- timeline
    def states_at(self, t: float) -> tuple[list[ObjectState], int | None]:
        """Pose of every object at time ``t`` and the index of the action running then (None between actions)."""
        states = [ObjectState() for _ in self.scene.objects]
        active = None
        for i, a in enumerate(self.actions):
            if a.t0 > t:
                break
            if t < a.t1:
                states[a.obj] = a.before.lerp(a.after, _smoothstep((t - a.t0) / (a.t1 - a.t0)))
                active = i
            else:
                states[a.obj] = a.after
        return states, active

    def _grip(self, obj: int, state: ObjectState) -> tuple[float, float]:
        cx, cy, hw, hh, _ = object_geometry(self.scene.objects[obj], state)
        return cx + self.scene.hand_side * 0.8 * hw, cy + 0.3 * hh

    def hand_at(self, t: float, states: list[ObjectState], active: int | None) -> tuple[float, float]:
        """Hand position: on the acted object during an action, travelling between objects in the gaps."""
        if active is not None:
            return self._grip(self.actions[active].obj, states[self.actions[active].obj])
        k = bisect.bisect_right(self._starts, t)  # next action index
        prev = self.actions[k - 1] if k > 0 else None
        nxt = self.actions[k] if k < len(self.actions) else None
        start = self._grip(prev.obj, prev.after) if prev else self.rest
        end = self._grip(nxt.obj, nxt.before) if nxt else self.rest
        t_from = prev.t1 if prev else 0.0
        t_to = nxt.t0 if nxt else t_from + 1.0
        p = _smoothstep((t - t_from) / max(t_to - t_from, 1e-6))
        return start[0] + (end[0] - start[0]) * p, start[1] + (end[1] - start[1]) * p

    def gaze_at(self, t: float) -> tuple[float, float, float]:
        """Camera gaze ``(x, y, zoom)`` in world units: on the handled object's home spot during an action,
        panning (smoothstep) between objects in the gaps, from the whole-scene view before the first action."""
        if self.zoom == 1.0:
            return self.scene.aspect / 2, 0.5, 1.0
        k = bisect.bisect_right(self._starts, t)  # next action index
        prev = self.actions[k - 1] if k > 0 else None
        if prev is not None and t < prev.t1:
            return self._gaze_on(prev.obj)
        nxt = self.actions[k] if k < len(self.actions) else None
        start = self._gaze_on(prev.obj) if prev else (self.scene.aspect / 2, 0.5, 1.0)
        if nxt is None:
            return start
        end = self._gaze_on(nxt.obj)
        t_from = prev.t1 if prev else 0.0
        p = _smoothstep((t - t_from) / max(nxt.t0 - t_from, 1e-6))
        return tuple(a + (b - a) * p for a, b in zip(start, end, strict=True))  # type: ignore[return-value]

    def _gaze_on(self, obj: int) -> tuple[float, float, float]:
        o = self.scene.objects[obj]
        return o.x, o.y - 0.9 * o.size, self.zoom

    def drift_at(self, t: float) -> tuple[int, int]:
        ax, ay, period, phase = self.scene.drift
        k = self.height / 128.0
        w = 2 * np.pi * t / period + phase
        shake = self.scene.shake * k
        dx = ax * k * math.sin(w) + shake * math.sin(41.0 * t + phase)
        dy = ay * k * math.cos(0.7 * w) + shake * math.sin(53.0 * t + 2 * phase)
        return int(round(dx)), int(round(dy))

    # ---------------------------------------------------------------- drawing
    def frame(self, t: float) -> np.ndarray:
        """RGB uint8 ``(height, width, 3)`` frame at time ``t``.

        Objects at rest are drawn on a cached static layer (rebuilt only when their poses change, i.e. at action
        boundaries); the moving object, drawn on top, and the arm are drawn per frame. The cache is keyed on the
        poses, so a frame never depends on which frames were rendered before it.
        """
        states, active = self.states_at(t)
        moving = self.actions[active].obj if active is not None else None
        key = tuple((i, s) for i, s in enumerate(states) if i != moving)
        if key != self._static_key:
            self._static, self._static_key = self._static_layer(key), key
        dx, dy = self.drift_at(t)
        m = self.margin
        img = self._static[m + dy : m + dy + self.height, m + dx : m + dx + self.width].copy()
        off = (-dx, -dy)
        if moving is not None:
            self._shadow(img, self.scene.objects[moving], states[moving], off)
            self._object(img, self.scene.objects[moving], states[moving], off)
        self._arm(img, self.hand_at(t, states, active), off)
        out = np.clip(img + 0.5, 0, 255).astype(np.uint8)
        return self._look(out, *self.gaze_at(t))

    def _look(self, img: np.ndarray, x: float, y: float, zoom: float) -> np.ndarray:
        """Crop ``1/zoom`` of the frame around world point ``(x, y)`` (kept inside the frame), resized back."""
        if zoom <= 1.0 + 1e-6:
            return img
        from PIL import Image

        w, h = self.width / zoom, self.height / zoom
        x0 = min(max(x * self.px - w / 2, 0.0), self.width - w)
        y0 = min(max(y * self.px - h / 2, 0.0), self.height - h)
        box = (x0, y0, x0 + w, y0 + h)
        return np.asarray(Image.fromarray(img).resize((self.width, self.height), Image.BILINEAR, box=box))

    def _static_layer(self, posed: tuple[tuple[int, ObjectState], ...]) -> np.ndarray:
        """Background plus the resting objects (far ones first) and their shadows, on the drift canvas."""
        img = self.background.copy()
        off = (self.margin, self.margin)
        order = sorted(posed, key=lambda item: object_geometry(self.scene.objects[item[0]], item[1])[4])
        for i, state in order:
            self._shadow(img, self.scene.objects[i], state, off)
        for i, state in order:
            self._object(img, self.scene.objects[i], state, off)
        return img

    def _window(self, cx: float, cy: float, rx: float, ry: float, off: tuple[int, int], shape: tuple[int, ...]):
        """Pixel slices and world coordinates of the box ``centre +- radius`` in an image of ``shape``."""
        x0 = max(int(math.floor((cx - rx) * self.px)) + off[0] - 1, 0)
        x1 = min(int(math.ceil((cx + rx) * self.px)) + off[0] + 1, shape[1])
        y0 = max(int(math.floor((cy - ry) * self.px)) + off[1] - 1, 0)
        y1 = min(int(math.ceil((cy + ry) * self.px)) + off[1] + 1, shape[0])
        if x0 >= x1 or y0 >= y1:
            return None
        xs = (np.arange(x0, x1, dtype=np.float32) - off[0] + 0.5) / self.px
        ys = (np.arange(y0, y1, dtype=np.float32) - off[1] + 0.5) / self.px
        return (slice(y0, y1), slice(x0, x1)), xs[None, :], ys[:, None]

    @staticmethod
    def _blend(img: np.ndarray, where: tuple[slice, slice], alpha: np.ndarray, colour: np.ndarray) -> None:
        a = alpha[..., None]
        img[where] = img[where] * (1 - a) + colour * a

    def _coverage(self, sd: np.ndarray, half: float) -> np.ndarray:
        return np.clip(0.5 - sd * half * self.px, 0.0, 1.0)  # one-pixel anti-aliased edge

    def _shadow(self, img: np.ndarray, obj: SceneObject, state: ObjectState, off: tuple[int, int]) -> None:
        cx, _, hw, hh, base = object_geometry(obj, state)
        shrink = 1 - 0.45 * state.lift
        rx, ry = 1.15 * hw * shrink, 0.22 * hh * shrink
        win = self._window(cx, base, rx, ry, off, img.shape)
        if win is None:
            return
        where, xs, ys = win
        sd = np.sqrt(((xs - cx) / rx) ** 2 + ((ys - base) / ry) ** 2) - 1
        alpha = self._coverage(sd, ry) * (0.45 - 0.2 * state.lift)
        self._blend(img, where, alpha, np.zeros(3, np.float32))

    def _object(self, img: np.ndarray, obj: SceneObject, state: ObjectState, off: tuple[int, int]) -> None:
        cx, cy, hw, hh, _ = object_geometry(obj, state)
        gap = 1.2 * state.open  # halves move apart by this much (in half-widths)
        win = self._window(cx, cy, hw * (1 + gap / 2), hh, off, img.shape)
        if win is None:
            return
        where, xs, ys = win
        u = (xs - cx) / hw
        v = np.broadcast_to((ys - cy) / hh, np.broadcast_shapes(xs.shape, ys.shape))
        u = np.broadcast_to(u, v.shape)
        if gap > 0:
            left = u < 0
            u = np.where(left, u + gap / 2, u - gap / 2)
            crossed = np.where(left, u >= 0, u < 0)
        sd = _shape_sd(obj.shape, u, v)
        if gap > 0:
            sd = np.where(crossed, 1.0, sd)
        alpha = self._coverage(sd, min(hw, hh))
        base = _COLOURS[obj.colour]
        shade = (1.08 - 0.28 * (v + 1) / 2)[..., None]
        colour = base * shade
        if gap > 0:  # the cut faces show a darker inside
            inner = (np.abs(u) < 0.18)[..., None]
            colour = np.where(inner, colour * 0.45, colour)
        self._blend(img, where, alpha, colour)

    def _capsule(
        self,
        img: np.ndarray,
        p: tuple[float, float],
        q: tuple[float, float],
        r: float,
        colour: np.ndarray,
        off: tuple[int, int],
    ) -> None:
        cx, cy = (p[0] + q[0]) / 2, (p[1] + q[1]) / 2
        win = self._window(cx, cy, abs(q[0] - p[0]) / 2 + r, abs(q[1] - p[1]) / 2 + r, off, img.shape)
        if win is None:
            return
        where, xs, ys = win
        dx, dy = q[0] - p[0], q[1] - p[1]
        length2 = max(dx * dx + dy * dy, 1e-9)
        h = np.clip(((xs - p[0]) * dx + (ys - p[1]) * dy) / length2, 0, 1)
        dist = np.sqrt((xs - p[0] - h * dx) ** 2 + (ys - p[1] - h * dy) ** 2)
        self._blend(img, where, self._coverage(dist / r - 1, r), colour)

    def _arm(self, img: np.ndarray, hand: tuple[float, float], off: tuple[int, int]) -> None:
        base = self.arm_base
        wrist = (base[0] + (hand[0] - base[0]) * 0.8, base[1] + (hand[1] - base[1]) * 0.8)
        self._capsule(img, base, wrist, 0.07, self.sleeve, off)
        self._capsule(img, wrist, hand, 0.045, self.skin, off)
        side = self.scene.hand_side
        palm = ((hand[0] + 0.02 * side, hand[1] + 0.01), (hand[0] - 0.03 * side, hand[1] - 0.02))
        self._capsule(img, *palm, 0.045, self.skin * 0.95, off)

