"""The synthetic world's vocabulary: verbs (paired opposite motions) and nouns (shape x colour objects).

Verb and noun indices are what ``tag_verb``/``tag_noun`` hold; they sit inside the official Ego4D ranges (118 verbs,
582 nouns) so the official multi-hot sizes apply unchanged. Every verb has an opposite that starts where it ends
(or from the same pose), so a single frame cannot tell the two apart; only the motion can.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["COLOURS", "SHAPES", "VERBS", "Noun", "Verb", "noun_index", "nouns", "taxonomy_json"]


@dataclass(frozen=True)
class Verb:
    name: str  # taxonomy name
    phrase: str  # narration template, "{obj}" is replaced by "the red cup"
    opposite: str


#: Index in this tuple is the verb class index.
VERBS: tuple[Verb, ...] = (
    Verb("pick_up", "picks up {obj}", "put_down"),
    Verb("put_down", "puts down {obj}", "pick_up"),
    Verb("push", "pushes {obj} away", "pull"),
    Verb("pull", "pulls {obj} closer", "push"),
    Verb("open", "opens {obj}", "close"),
    Verb("close", "closes {obj}", "open"),
    Verb("slide_left", "slides {obj} to the left", "slide_right"),
    Verb("slide_right", "slides {obj} to the right", "slide_left"),
)
VERB_INDEX = {v.name: i for i, v in enumerate(VERBS)}

#: Saturated, mutually distinct colours (RGB); backgrounds are drawn desaturated so objects always stand out.
COLOURS: tuple[tuple[str, tuple[int, int, int]], ...] = (
    ("red", (225, 35, 35)),
    ("green", (30, 185, 60)),
    ("blue", (35, 80, 235)),
    ("yellow", (240, 215, 30)),
    ("purple", (150, 50, 205)),
    ("orange", (250, 130, 20)),
    ("cyan", (20, 205, 215)),
    ("pink", (245, 105, 185)),
)

#: Object shapes; the renderer knows how to draw each.
SHAPES: tuple[str, ...] = ("ball", "box", "cup", "bottle", "cone", "ring")


@dataclass(frozen=True)
class Noun:
    index: int
    colour: str
    shape: str

    @property
    def name(self) -> str:
        return f"{self.colour} {self.shape}"


def nouns() -> tuple[Noun, ...]:
    """All shape x colour nouns; index = colour_index * len(SHAPES) + shape_index."""
    return tuple(
        Noun(c * len(SHAPES) + s, colour, shape) for c, (colour, _) in enumerate(COLOURS) for s, shape in enumerate(SHAPES)
    )


def noun_index(colour: str, shape: str) -> int:
    colour_ids = [name for name, _ in COLOURS]
    return colour_ids.index(colour) * len(SHAPES) + SHAPES.index(shape)


def taxonomy_json() -> dict:
    """The content of ``taxonomy.json``: verbs and nouns with their class indices."""
    return {
        "verbs": [
            {"index": i, "name": v.name, "phrase": v.phrase, "opposite": v.opposite} for i, v in enumerate(VERBS)
        ],
        "nouns": [{"index": n.index, "name": n.name, "colour": n.colour, "shape": n.shape} for n in nouns()],
        "colours": {name: list(rgb) for name, rgb in COLOURS},
    }
