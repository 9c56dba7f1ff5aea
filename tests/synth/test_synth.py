from __future__ import annotations

import csv
import dataclasses
import json
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from egokit.data.egoclip import EGOCLIP_COLUMNS, NUM_NOUNS, NUM_VERBS, EgoClipDataset, read_egoclip_csv
from egokit.data.egomcq import EgoMCQDataset, read_egomcq_json
from egokit.data.text import PretrainCollator
from egokit.errors import ConfigError
from egokit.synth import SynthConfig, generate
from egokit.synth.render import Renderer
from egokit.synth.scene import Action, ObjectState, apply_verb, random_scene
from egokit.synth.taxonomy import VERB_INDEX
from egokit.tokenizer import load_tokenizer

CONFIG = SynthConfig(videos=3, val_videos=5, duration=16, size=64, fps=10, chunk_seconds=4, questions=8, seed=7)


@pytest.fixture(scope="module")
def datasets(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    base = tmp_path_factory.mktemp("synth")
    generate(base / "a", CONFIG, workers=1)
    generate(base / "b", CONFIG, workers=2)  # other worker count: same bytes
    return base / "a", base / "b"


def _frames(path: Path) -> np.ndarray:
    with av.open(str(path)) as c:
        return np.stack([f.to_ndarray(format="rgb24") for f in c.decode(video=0)])


def test_deterministic_by_seed(datasets: tuple[Path, Path], tmp_path: Path) -> None:
    a, b = datasets
    for name in ("egoclip.csv", "egomcq.json", "taxonomy.json", "synth.json", "README.md", "tokenizer/tokenizer.json"):
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
    chunks = sorted(p.relative_to(a) for p in (a / "videos").rglob("*.mp4"))
    assert chunks == sorted(p.relative_to(b) for p in (b / "videos").rglob("*.mp4"))
    for rel in chunks:
        assert np.array_equal(_frames(a / rel), _frames(b / rel))
    other = dataclasses.replace(CONFIG, seed=8, videos=1, val_videos=0, questions=0)
    generate(tmp_path / "c", other, workers=1)
    assert (tmp_path / "c" / "egoclip.csv").read_bytes() != (a / "egoclip.csv").read_bytes()


def test_official_formats(datasets: tuple[Path, Path]) -> None:
    out = datasets[0]
    with (out / "egoclip.csv").open(newline="") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    assert list(rows[0]) == list(EGOCLIP_COLUMNS)
    table = read_egoclip_csv(out / "egoclip.csv")
    assert len(table) == len(rows) > 10
    assert all(len(v) == 1 and 0 <= v[0] < NUM_VERBS for v in table.tag_verb)
    assert all(len(n) == 1 and 0 <= n[0] < NUM_NOUNS for n in table.tag_noun)
    lengths = table.clip_end - table.clip_start
    assert lengths.min() >= 1.0 and lengths.max() <= 3.0
    assert ((table.clip_start <= table.narration_time) & (table.narration_time <= table.clip_end)).all()
    assert all(t.startswith("#C C ") for t in table.clip_text)
    assert (table.clip_start // 4 != table.clip_end // 4).any()  # some clips straddle a chunk boundary
    for uid in set(table.video_uid):  # consecutive narrations per video
        starts = table.clip_start[[i for i, u in enumerate(table.video_uid) if u == uid]]
        assert (np.diff(starts) > 0).all()

    meta = json.loads((out / "synth.json").read_text())
    assert meta["options"]["seed"] == 7 and set(meta["train_video_uids"]) == set(table.video_uid)
    questions = read_egomcq_json(out / "egomcq.json")
    assert len(questions) == 8 and {q.type for q in questions} == {1, 2}
    val = set(meta["val_video_uids"])
    for q in questions:
        uids = [c.video_uid for c in q.choices]
        assert set(uids) <= val and q.choices[q.answer] == q.query
        assert len({(c.tag_verb, c.tag_noun) for c in q.choices}) == 5  # one choice matches the text
        assert len(set(uids)) == (5 if q.type == 1 else 1)
    intra = [q for q in questions if q.type == 2]
    assert any(c.tag_noun == q.query.tag_noun and c.tag_verb != q.query.tag_verb for q in intra for c in q.choices)

    taxonomy = json.loads((out / "taxonomy.json").read_text())
    verbs = {v["index"]: v["name"] for v in taxonomy["verbs"]}
    assert len(verbs) >= 6 and all(verbs[VERB_INDEX[verbs[i]]] == verbs[i] for i in verbs)
    tok = load_tokenizer(out / "tokenizer")
    assert tok.unk_token_id not in tok(table.clip_text[:20])["input_ids"][0]
    with av.open(str(out / "videos" / table.video_uid[0] / "0.mp4")) as c:
        s = c.streams.video[0]
        assert (s.codec_context.name, s.format.name, s.width, s.height) == ("h264", "yuv420p", 64, 64)
        keyframes = [round(float(p.pts * s.time_base), 3) for p in c.demux(s) if p.is_keyframe]
        assert keyframes == [0.0, 1.0, 2.0, 3.0]  # one key frame per second


def test_read_back_with_datasets_and_workers(datasets: tuple[Path, Path]) -> None:
    out = datasets[0]
    tok = load_tokenizer(out / "tokenizer")
    ds = EgoClipDataset(out / "egoclip.csv", out / "videos", num_frames=4, chunk_seconds=4, seed=1)
    loader = torch.utils.data.DataLoader(ds, batch_size=4, num_workers=2, collate_fn=PretrainCollator(tok, seed=1))
    batches = list(loader)
    assert sum(b["video"].shape[0] for b in batches) == 2 * len(ds)
    first = batches[0]
    assert first["video"].shape == (8, 4, 3, 64, 64) and first["mlm_labels"].shape == (8, 15)
    again = PretrainCollator(tok, seed=1)([ds[i] for i in range(4)])  # same as the workers' batch
    assert torch.equal(again["video"], first["video"]) and torch.equal(again["mlm_input_ids"], first["mlm_input_ids"])
    mcq = EgoMCQDataset(out / "egomcq.json", out / "videos", num_frames=4, chunk_seconds=4)
    item = mcq[0]
    assert item["videos"].shape == (5, 4, 3, 64, 64) and item["videos"].float().std() > 10


def _still_scene():
    scene = random_scene(np.random.default_rng(3), 1.0)
    return dataclasses.replace(scene, drift=(0.0, 0.0, 10.0, 0.0), shake=0.0)  # frames depend on poses only


def test_opposite_verbs_share_poses_but_not_motion() -> None:
    scene = _still_scene()
    rest = ObjectState()
    up = apply_verb(rest, VERB_INDEX["pick_up"])
    timeline = [Action(VERB_INDEX["pick_up"], 0, 1.0, 2.0, rest, up), Action(VERB_INDEX["put_down"], 0, 3.0, 4.0, up, rest)]
    r = Renderer(scene, timeline, 64, 64)
    # 'puts down' plays the frames of 'picks up' in reverse: any single frame fits both verbs
    for s in (0.0, 0.25, 0.5, 0.75, 1.0):
        assert np.array_equal(r.frame(1.0 + s), r.frame(4.0 - s))
    assert not np.array_equal(r.frame(1.25), r.frame(3.25))

    def clip(verb: str) -> list[np.ndarray]:
        action = Action(VERB_INDEX[verb], 1, 1.0, 2.0, rest, apply_verb(rest, VERB_INDEX[verb]))
        renderer = Renderer(scene, [action], 64, 64)
        return [renderer.frame(t) for t in (1.0, 1.5, 2.0)]

    for verb, opposite in (("push", "pull"), ("slide_left", "slide_right")):
        a, b = clip(verb), clip(opposite)
        assert np.array_equal(a[0], b[0])  # same first frame
        assert np.abs(a[2].astype(int) - b[2].astype(int)).sum() > 64 * 64  # clearly different motion
        assert not np.array_equal(a[1], a[0])  # the object moves during the clip


def test_config_validation_and_cli(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="val-videos"):
        dataclasses.replace(CONFIG, val_videos=2).validate()
    with pytest.raises(ConfigError, match="whole number of frames"):
        dataclasses.replace(CONFIG, chunk_seconds=0.25, fps=10).validate()
    import typer

    from egokit.cli.synth import synth

    app = typer.Typer()
    app.command()(synth)
    out = tmp_path / "cli"
    args = [str(out), "--videos", "1", "--val-videos", "0", "--questions", "0", "--duration", "6", "--size", "32", "--fps", "5", "--chunk-seconds", "3", "--workers", "1"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "EgoMCQ questions" in result.output and (out / "egoclip.csv").is_file()
    again = CliRunner().invoke(app, args)
    assert again.exit_code != 0 and "not empty" in str(again.exception)
    assert CliRunner().invoke(app, [*args, "--force"]).exit_code == 0
