"""Generate a synthetic egocentric video-language dataset in the official EgoClip/EgoMCQ formats.

Layout of ``OUT``::

    videos/<video_uid>/<k>.mp4   H.264 chunks of chunk_seconds each (official chunked layout)
    egoclip.csv                  narrations of the training videos (official tab-separated columns)
    egomcq.json                  5-choice questions on held-out videos (types 1 = inter, 2 = intra)
    taxonomy.json                verb and noun classes used in tag_verb / tag_noun
    tokenizer/                   RoBERTa-style byte-level BPE trained on all narrations
    synth.json, README.md        the options and seed that reproduce the dataset

Every video is drawn from ``numpy.random.default_rng([seed, video_number])``, so the output does not depend on
the number of workers; the same seed gives byte-identical annotations and identical frames.
"""

from __future__ import annotations

import multiprocessing
import uuid
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from egokit.errors import ConfigError
from egokit.synth.render import Renderer
from egokit.synth.scene import Action, plan_actions, random_scene
from egokit.synth.taxonomy import VERBS, taxonomy_json
from egokit.synth.writer import encode_chunks, write_csv, write_json, write_text

__all__ = ["SynthConfig", "SynthSummary", "VideoPlan", "generate", "plan_video", "render_video"]

FORMAT_VERSION = 2  # 2: gaze camera (zoom)
EGOCLIP_HEADER = (
    "clip_idx", "video_uid", "video_dur", "narration_source", "narration_ind", "narration_time",
    "clip_start", "clip_end", "clip_text", "tag_verb", "tag_noun",
)  # fmt: skip


@dataclass(frozen=True)
class SynthConfig:
    """Options of ``egokit synth``; stored in ``synth.json`` so a dataset can be regenerated exactly."""

    videos: int = 120  # training videos (egoclip.csv)
    val_videos: int = 12  # held-out videos (egomcq.json only)
    duration: float = 30.0  # seconds per video
    size: int = 128  # frame height (short side) in pixels
    aspect: float = 1.0  # width / height
    fps: int = 15
    chunk_seconds: float = 20.0
    questions: int = 300  # half inter-video, half intra-video
    objects: int = 3  # objects per scene
    zoom: float = 1.6  # head-camera zoom onto the handled object (1 = fixed whole-table view)
    seed: int = 0
    crf: int = 23
    preset: str = "veryfast"
    vocab_size: int = 1000

    @property
    def width(self) -> int:
        return max(2, int(round(self.size * self.aspect / 2)) * 2)  # yuv420p needs even sizes

    @property
    def chunk_frames(self) -> int:
        return int(round(self.chunk_seconds * self.fps))

    def validate(self) -> None:
        problems = []
        if self.videos < 1:
            problems.append("--videos must be >= 1")
        if self.val_videos < 0:
            problems.append("--val-videos must be >= 0")
        if self.questions > 0 and self.val_videos < 5:
            problems.append("inter-video questions need --val-videos >= 5 (or --questions 0)")
        if self.duration < 5:
            problems.append("--duration must be >= 5 seconds")
        if self.size < 32 or self.size % 2:
            problems.append("--size must be an even number >= 32")
        if not 0.5 <= self.aspect <= 2.5:
            problems.append("--aspect must be in [0.5, 2.5]")
        if not 1 <= self.fps <= 60:
            problems.append("--fps must be in [1, 60]")
        if self.chunk_seconds <= 0 or abs(self.chunk_seconds * self.fps - self.chunk_frames) > 1e-6:
            problems.append("--chunk-seconds x --fps must be a whole number of frames")
        if self.seed < 0:
            problems.append("--seed must be >= 0")
        if not 1.0 <= self.zoom <= 3.0:
            problems.append("--zoom must be in [1, 3]")
        if not 2 <= self.objects <= 5:
            problems.append("--objects must be in [2, 5]")
        if problems:
            raise ConfigError("invalid synth options: " + "; ".join(problems))


@dataclass(frozen=True)
class Clip:
    """One narrated action of a video, in EgoClip terms."""

    video_uid: str
    narration_ind: int
    narration_time: float
    clip_start: float
    clip_end: float
    text: str
    verb: int
    noun: int


@dataclass(frozen=True)
class VideoPlan:
    number: int
    video_uid: str
    duration: float
    clips: tuple[Clip, ...]


@dataclass
class SynthSummary:
    out: Path
    train_videos: int = 0
    val_videos: int = 0
    clips: int = 0
    straddling_clips: int = 0
    questions: dict[str, int] = field(default_factory=dict)
    vocab_size: int = 0
    chunks: int = 0


def _video_rng(config: SynthConfig, number: int) -> np.random.Generator:
    return np.random.default_rng([config.seed, number])


def _scene_and_actions(config: SynthConfig, number: int) -> tuple[str, Any, list[Action], np.random.Generator]:
    rng = _video_rng(config, number)
    uid = str(uuid.UUID(bytes=rng.bytes(16), version=4))
    scene = random_scene(rng, config.aspect, config.objects)
    return uid, scene, plan_actions(rng, scene, config.duration), rng


def plan_video(config: SynthConfig, number: int) -> VideoPlan:
    """The narrations of video ``number`` (cheap: no rendering)."""
    uid, scene, actions, rng = _scene_and_actions(config, number)
    clips = []
    for i, a in enumerate(actions):
        obj = scene.objects[a.obj]
        start = max(a.t0 - float(rng.uniform(0.0, 0.2)), 0.0)
        end = min(a.t1 + float(rng.uniform(0.0, 0.2)), config.duration)
        narration = a.t0 + (a.t1 - a.t0) * float(rng.uniform(0.3, 0.7))
        text = "#C C " + VERBS[a.verb].phrase.format(obj=f"the {obj.name}")
        clips.append(Clip(uid, i, round(narration, 4), round(start, 4), round(end, 4), text, a.verb, obj.noun))
    return VideoPlan(number, uid, float(config.duration), tuple(clips))


def render_video(config: SynthConfig, number: int, video_root: Path) -> tuple[VideoPlan, int]:
    """Render and encode video ``number`` under ``video_root/<uid>/``; returns its plan and chunk count."""
    uid, scene, actions, _ = _scene_and_actions(config, number)
    renderer = Renderer(scene, actions, config.width, config.size, zoom=config.zoom)
    num_frames = int(round(config.duration * config.fps))
    paths = encode_chunks(
        lambda i: renderer.frame(i / config.fps),
        num_frames,
        video_root / uid,
        config.fps,
        config.chunk_frames,
        crf=config.crf,
        preset=config.preset,
    )
    return plan_video(config, number), len(paths)


def _clip_record(clip: Clip, duration: float) -> dict[str, Any]:
    return {
        "video_uid": clip.video_uid,
        "video_dur": duration,
        "narration_source": "narration_pass_1",
        "narration_ind": clip.narration_ind,
        "narration_time": clip.narration_time,
        "clip_start": clip.clip_start,
        "clip_end": clip.clip_end,
        "clip_text": clip.text,
        "tag_verb": f"[{clip.verb}]",
        "tag_noun": f"[{clip.noun}]",
    }


def build_questions(plans: list[VideoPlan], count: int, seed: int) -> dict[str, dict[str, Any]]:
    """EgoMCQ questions over held-out videos: half inter-video (types 1), half intra-video (types 2).

    Choices of a question never repeat a (verb, noun) pair, so exactly one matches the query text. Intra-video
    questions prefer distractors acting on the same object (same noun, other verb), which need the motion.
    """
    rng = np.random.default_rng([seed, 0x6D6371])  # "mcq"
    durations = {p.video_uid: p.duration for p in plans}
    pool = [(v, c) for v, p in enumerate(plans) for c in range(len(p.clips))]
    questions: dict[str, dict[str, Any]] = {}
    n_inter = count // 2
    attempts = 0
    while len(questions) < count:
        attempts += 1
        if attempts > 50 * count + 100:
            raise ConfigError(
                f"could only build {len(questions)} of {count} questions; use longer or more --val-videos"
            )
        qtype = 1 if len(questions) < n_inter else 2
        v, c = pool[int(rng.integers(len(pool)))]
        query = plans[v].clips[c]
        key = (query.verb, query.noun)
        if qtype == 1:
            others = [w for w in range(len(plans)) if w != v]
            if len(others) < 4:
                continue
            distractors = []
            for w in rng.permutation(others):
                options = [d for d in plans[w].clips if (d.verb, d.noun) != key]
                if options:
                    distractors.append(options[int(rng.integers(len(options)))])
                if len(distractors) == 4:
                    break
        else:
            seen = {key}
            same_noun, other = [], []
            for d in (plans[v].clips[i] for i in rng.permutation(len(plans[v].clips))):
                if (d.verb, d.noun) in seen:
                    continue
                seen.add((d.verb, d.noun))
                (same_noun if d.noun == query.noun else other).append(d)
            hard = same_noun[: int(rng.integers(1, 3))]
            distractors = (hard + other + same_noun[len(hard) :])[:4]
        if len(distractors) < 4:
            continue
        choices = [query, *distractors]
        order = rng.permutation(5)
        questions[str(len(questions))] = {
            "query": _clip_record(query, durations[query.video_uid]),
            "choices": {str(k): _clip_record(choices[j], durations[choices[j].video_uid]) for k, j in enumerate(order)},
            "answer": int(np.flatnonzero(order == 0)[0]),
            "types": qtype,
        }
    return questions


def generate(
    out: Path,
    config: SynthConfig,
    workers: int = 2,
    on_video: Callable[[int, int], None] | None = None,
) -> SynthSummary:
    """Write the dataset to ``out`` (which must be empty or absent). ``on_video(done, total)`` reports progress."""
    from egokit.tokenizer import train_bpe_tokenizer

    config.validate()
    if workers < 1:
        raise ConfigError(f"--workers must be >= 1, got {workers}")
    out = Path(out)
    video_root = out / "videos"
    video_root.mkdir(parents=True, exist_ok=True)
    total = config.videos + config.val_videos
    results: dict[int, tuple[VideoPlan, int]] = {}
    if workers == 1:
        for n in range(total):
            results[n] = render_video(config, n, video_root)
            if on_video:
                on_video(len(results), total)
    else:
        context = multiprocessing.get_context("spawn")  # no fork of a process holding torch/threads
        with ProcessPoolExecutor(max_workers=min(workers, total), mp_context=context) as pool:
            futures = {pool.submit(render_video, config, n, video_root): n for n in range(total)}
            for future in as_completed(futures):
                results[futures[future]] = future.result()
                if on_video:
                    on_video(len(results), total)
    plans = [results[n][0] for n in range(total)]
    train, val = plans[: config.videos], plans[config.videos :]

    rows, straddling = [], 0
    for plan in train:
        for clip in plan.clips:
            record = _clip_record(clip, plan.duration)
            straddling += int(clip.clip_start // config.chunk_seconds != clip.clip_end // config.chunk_seconds)
            rows.append([len(rows), *(record[name] for name in EGOCLIP_HEADER[1:])])
    write_csv(out / "egoclip.csv", EGOCLIP_HEADER, rows)
    questions = build_questions(val, config.questions, config.seed) if config.questions else {}
    write_json(out / "egomcq.json", questions)
    write_json(out / "taxonomy.json", taxonomy_json())
    texts = [c.text for p in plans for c in p.clips]
    tokenizer = train_bpe_tokenizer(texts, out / "tokenizer", vocab_size=config.vocab_size, min_frequency=2)

    summary = SynthSummary(
        out=out,
        train_videos=len(train),
        val_videos=len(val),
        clips=len(rows),
        straddling_clips=straddling,
        questions={name: sum(q["types"] == t for q in questions.values()) for name, t in (("inter", 1), ("intra", 2))},
        vocab_size=len(tokenizer),
        chunks=sum(results[n][1] for n in range(total)),
    )
    record = {
        "format": "egokit-synth",
        "version": FORMAT_VERSION,
        "options": asdict(config),
        "width": config.width,
        "height": config.size,
        "train_video_uids": [p.video_uid for p in train],
        "val_video_uids": [p.video_uid for p in val],
        "counts": {k: v for k, v in asdict(summary).items() if k != "out"},
    }
    write_json(out / "synth.json", record)
    write_text(out / "README.md", _readme(config, summary))
    return summary


def _readme(config: SynthConfig, summary: SynthSummary) -> str:
    verbs = ", ".join(v.phrase.format(obj="X") for v in VERBS)
    return f"""# Synthetic egocentric video-language dataset (egokit synth)

Regenerate with `egokit synth OUT --videos {config.videos} --val-videos {config.val_videos} --duration {config.duration:g} \
--size {config.size} --aspect {config.aspect:g} --fps {config.fps} --chunk-seconds {config.chunk_seconds:g} \
--questions {config.questions} --objects {config.objects} --zoom {config.zoom:g} --seed {config.seed}` (all options are in `synth.json`).

A hand acts on one of {config.objects} coloured objects on a table, and the head camera zooms {config.zoom:g}x onto the
object being handled; each narration names the verb and the object (`#C C picks up the red cup`). Verbs come in opposite pairs ({verbs}) that start from shared poses, so telling them
apart needs motion across frames; intra-video questions (types 2) choose between actions of one scene.

| file | content |
|---|---|
| `videos/<video_uid>/<k>.mp4` | H.264 yuv420p, {config.width}x{config.size}, {config.fps} fps, key frame every second, chunks of {config.chunk_seconds:g} s |
| `egoclip.csv` | {summary.clips} narrated clips of {summary.train_videos} training videos, official tab-separated EgoClip columns ({summary.straddling_clips} straddle a chunk boundary) |
| `egomcq.json` | {summary.questions.get('inter', 0)} inter-video + {summary.questions.get('intra', 0)} intra-video questions on {summary.val_videos} held-out videos |
| `taxonomy.json` | verb and noun class indices used in `tag_verb` / `tag_noun` |
| `tokenizer/` | byte-level BPE with RoBERTa special tokens, {summary.vocab_size} entries |
"""
