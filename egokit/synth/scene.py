"""Scenes and action timelines of synthetic egocentric videos (what happens, not how it looks).

World coordinates are in units of the frame height: ``x`` in ``[0, aspect]`` left to right, ``y`` in ``[0, 1]`` top
to bottom. An object's pose is an :class:`ObjectState`; an :class:`Action` moves one object from one state to its
opposite over ``[t0, t1]``. Actions respect the object's state (only a lifted object can be put down, only an
open one closed), so paired verbs share poses: 'picks up' starts where 'puts down' ends, 'pushes' and 'pulls'
start from the same pose.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from egokit.synth.taxonomy import COLOURS, SHAPES, VERB_INDEX, VERBS, noun_index

__all__ = ["Action", "ObjectState", "Scene", "SceneObject", "apply_verb", "plan_actions", "random_scene", "valid_verbs"]

SLIDE_STEP = 0.15  # x change of a slide, in frame heights
MAX_SLIDE = 1  # slide offset stays in -1..1 steps
MAX_DEPTH = 1  # depth level stays in -1..1
_SKINS = ((224, 172, 138), (198, 134, 96), (141, 85, 60), (241, 194, 160))


@dataclass(frozen=True)
class ObjectState:
    """Pose of an object: slide offset (steps), depth level (-1 far .. 1 near), lift and open amount (0..1)."""

    slide: float = 0.0
    depth: float = 0.0
    lift: float = 0.0
    open: float = 0.0

    def lerp(self, other: ObjectState, p: float) -> ObjectState:
        return ObjectState(*(a + (b - a) * p for a, b in zip(self.astuple(), other.astuple(), strict=True)))

    def astuple(self) -> tuple[float, float, float, float]:
        return (self.slide, self.depth, self.lift, self.open)


@dataclass(frozen=True)
class SceneObject:
    shape: str
    colour: str
    x: float  # home position (centre), frame heights
    y: float  # resting base line, frame heights
    size: float  # height of the object at depth 0, frame heights

    @property
    def noun(self) -> int:
        return noun_index(self.colour, self.shape)

    @property
    def name(self) -> str:
        return f"{self.colour} {self.shape}"


@dataclass(frozen=True)
class Scene:
    """Everything static about one video: look of the room, the objects and the camera drift."""

    aspect: float
    wall: tuple[int, int, int]
    table: tuple[int, int, int]
    table_top: float  # y of the table's far edge
    texture: str  # 'plain' | 'stripes' | 'checker' | 'noise'
    texture_scale: float
    texture_seed: int
    skin: tuple[int, int, int]
    hand_side: float  # +1 right hand, -1 left hand
    objects: tuple[SceneObject, ...]
    drift: tuple[float, float, float, float]  # amplitude x, amplitude y (px at 128), period (s), phase
    shake: float  # high-frequency jitter amplitude (px at 128)


@dataclass(frozen=True)
class Action:
    verb: int
    obj: int
    t0: float
    t1: float
    before: ObjectState
    after: ObjectState

    @property
    def verb_name(self) -> str:
        return VERBS[self.verb].name


def _muted(rng: np.random.Generator, lo: float, hi: float) -> tuple[int, int, int]:
    """A desaturated colour (saturation <= 0.3) so saturated objects always stand out."""
    hue, sat, val = rng.random(), rng.uniform(0.05, 0.3), rng.uniform(lo, hi)
    k = (np.array([5.0, 3.0, 1.0]) + hue * 6) % 6
    rgb = val - val * sat * np.clip(np.minimum(k, 4 - k), 0, 1)
    return tuple(int(round(c * 255)) for c in rgb)  # type: ignore[return-value]


def random_scene(rng: np.random.Generator, aspect: float, num_objects: int = 3) -> Scene:
    """Draw a scene: muted room colours, a textured table and ``num_objects`` distinct shape x colour objects."""
    combos = [(c, s) for c in range(len(COLOURS)) for s in range(len(SHAPES))]
    picked = rng.choice(len(combos), size=num_objects, replace=False)
    # objects stand on a row of evenly spaced homes; a slide moves one by half the spacing (3 objects, square)
    margin = 0.2
    homes = np.linspace(margin, aspect - margin, num_objects) if num_objects > 1 else np.array([aspect / 2])
    homes = homes[rng.permutation(num_objects)]
    objects = tuple(
        SceneObject(
            shape=SHAPES[combos[k][1]],
            colour=COLOURS[combos[k][0]][0],
            x=float(homes[i] + rng.uniform(-0.02, 0.02)),
            y=float(rng.uniform(0.72, 0.76)),
            size=float(rng.uniform(0.24, 0.28)),
        )
        for i, k in enumerate(picked)
    )
    return Scene(
        aspect=aspect,
        wall=_muted(rng, 0.55, 0.9),
        table=_muted(rng, 0.25, 0.6),
        table_top=float(rng.uniform(0.3, 0.38)),
        texture=str(rng.choice(["plain", "stripes", "checker", "noise"])),
        texture_scale=float(rng.uniform(0.05, 0.12)),
        texture_seed=int(rng.integers(2**31)),
        skin=_SKINS[int(rng.integers(len(_SKINS)))],
        hand_side=float(rng.choice([-1.0, 1.0], p=[0.2, 0.8])),
        objects=objects,
        drift=tuple(float(rng.uniform(lo, hi)) for lo, hi in ((1, 4), (0.5, 2), (6, 14), (0, 6.3))),  # type: ignore[arg-type]
        shake=float(rng.uniform(0.0, 0.6)),
    )


def valid_verbs(state: ObjectState) -> list[int]:
    """Verb indices whose precondition holds in ``state`` (each verb moves to a pose its opposite accepts)."""
    ok = {
        "pick_up": state.lift == 0,
        "put_down": state.lift == 1,
        "push": state.depth > -MAX_DEPTH and state.lift == 0,
        "pull": state.depth < MAX_DEPTH and state.lift == 0,
        "open": state.open == 0,
        "close": state.open == 1,
        "slide_left": state.slide > -MAX_SLIDE and state.lift == 0,
        "slide_right": state.slide < MAX_SLIDE and state.lift == 0,
    }
    return [VERB_INDEX[name] for name, allowed in ok.items() if allowed]


def apply_verb(state: ObjectState, verb: int) -> ObjectState:
    """The state a verb ends in; raises ``ValueError`` when its precondition does not hold."""
    if verb not in valid_verbs(state):
        raise ValueError(f"verb {VERBS[verb].name} is not possible in {state}")
    name = VERBS[verb].name
    changes = {
        "pick_up": {"lift": 1.0},
        "put_down": {"lift": 0.0},
        "push": {"depth": state.depth - 1},
        "pull": {"depth": state.depth + 1},
        "open": {"open": 1.0},
        "close": {"open": 0.0},
        "slide_left": {"slide": state.slide - 1},
        "slide_right": {"slide": state.slide + 1},
    }[name]
    return replace(state, **changes)


def plan_actions(
    rng: np.random.Generator,
    scene: Scene,
    duration: float,
    min_len: float = 1.0,
    max_len: float = 2.2,
    min_gap: float = 0.2,
    max_gap: float = 0.6,
) -> list[Action]:
    """A back-to-back sequence of actions filling ``duration`` seconds (a gap for the hand to travel between)."""
    states = [ObjectState() for _ in scene.objects]
    actions: list[Action] = []
    t = float(rng.uniform(0.3, 0.8))
    previous = -1
    while True:
        length = float(rng.uniform(min_len, max_len))
        if t + length > duration - 0.3:
            return actions
        choices = [i for i in range(len(states)) if i != previous] or [0]
        obj = int(rng.choice(choices))
        verb = int(rng.choice(valid_verbs(states[obj])))
        after = apply_verb(states[obj], verb)
        actions.append(Action(verb, obj, t, t + length, states[obj], after))
        states[obj] = after
        previous = obj
        t += length + float(rng.uniform(min_gap, max_gap))
