"""``egokit embed``: features equal a direct forward, reruns are identical, interrupted runs resume, metadata."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import typer
from typer.testing import CliRunner

from egokit.checkpoint import file_sha256, save_pretrained
from egokit.data.transforms import EvalTransform
from egokit.data.video import probe_video, read_frames_at
from egokit.embed import (META_NAME, FeatureRecipe, collect_items, embed_to_folder, embed_video, load_features,
                          plan_windows)
from egokit.engine.features import prepare_video, tokenize_texts
from egokit.models import EgoVLPv2
from egokit.tokenizer import train_bpe_tokenizer
from tests.conftest import micro_config
from tests.data.videos import make_index_video

RECIPE = FeatureRecipe(frames_per_window=2, windows_per_second=2.0)


@pytest.fixture(scope="module")
def videos(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("embed_videos")
    make_index_video(root / "a.mp4", 60, 20, size=(48, 40), gop=10)  # 3 s
    make_index_video(root / "b.mp4", 30, 20, size=(48, 40), gop=10, first_index=100)  # 1.5 s
    make_index_video(root / "c.mp4", 50, 25, size=(48, 40), gop=10, first_index=200)  # 2 s
    return root


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    model = EgoVLPv2(micro_config(vocab_size=300, max_text_positions=40)).eval()
    with torch.no_grad():
        for gate in model.gates():  # zero-initialised gates would make fusion ignore the query
            gate.fill_(0.5)
    return model


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    texts = ["when did i see the red cup", "where is the blue box", "a green ball"] * 5
    return train_bpe_tokenizer(texts, tmp_path_factory.mktemp("tok") / "t", vocab_size=300, min_frequency=1)


def _direct(model, path: Path, recipe: FeatureRecipe) -> torch.Tensor:
    """Independent path: read each window's frames on their own, transform, one forward per window."""
    info = probe_video(path)
    plan = plan_windows(recipe, info)
    rows = []
    for frames in plan.frames:
        clip = EvalTransform(model.config.image_size)(read_frames_at(path, [(int(i) + 0.5) / info.fps for i in frames]))
        rows.append(model.encode_video(prepare_video(clip[None], model, "cpu"))[0])
    return torch.stack(rows)


def test_folder_features_equal_per_window_forward_and_are_batched_across_videos(model, videos, tmp_path):
    items = collect_items(videos)
    assert [it.uid for it in items] == ["a", "b", "c"]
    stats = embed_to_folder(model, items, RECIPE, tmp_path, batch_size=4, show_progress=False)
    assert stats.computed == ["a", "b", "c"] and stats.windows == 6 + 3 + 4
    for uid in "abc":
        feats = torch.load(tmp_path / f"{uid}.pt", weights_only=True)
        assert type(feats) is torch.Tensor and feats.dtype == torch.float32
        torch.testing.assert_close(feats, _direct(model, videos / f"{uid}.mp4", RECIPE), atol=1e-5, rtol=1e-4)


def test_rerun_gives_identical_files_and_metadata_records_the_recipe(model, videos, tmp_path):
    folder = tmp_path / "ckpt"
    save_pretrained(model, folder)
    from egokit.checkpoint import load_model

    loaded = load_model(folder, num_frames=2)
    items = collect_items(videos)
    embed_to_folder(loaded, items, RECIPE, tmp_path / "one", show_progress=False, fmt="safetensors")
    embed_to_folder(loaded, items, RECIPE, tmp_path / "two", show_progress=False, fmt="safetensors")
    for uid in "abc":
        assert (tmp_path / "one" / f"{uid}.safetensors").read_bytes() == \
            (tmp_path / "two" / f"{uid}.safetensors").read_bytes()
    meta = json.loads((tmp_path / "one" / META_NAME).read_text())
    assert meta["recipe"]["frames_per_window"] == 2 and meta["recipe"]["mode"] == "projected"
    assert meta["checkpoint_sha256"] == file_sha256(folder / "model.safetensors") == loaded.load_report.sha256
    assert meta["model"]["image_size"] == 32 and meta["model"]["feature_dim"] == 24
    assert meta["decoder"]["library"] == "PyAV" and meta["decoder"]["version"]
    assert meta["environment"]["packages"]["torch"] and "egokit_git" in meta["environment"]
    entry = meta["videos"]["a"]
    # 3 s at 2 windows/s, 2 frames: M = int(3*2*2+1) = 13, edges int(linspace(0, 60, 14)) = 0 4 9 ...: window 1
    # starts at frame 9 = 0.45 s
    assert entry["num_windows"] == 6 and entry["window_starts"][:2] == [0.0, 0.45] and entry["window_ends"][0] == 0.45
    assert load_features(tmp_path / "one" / "b.safetensors").shape == (3, 24)


def test_interrupted_run_resumes_without_recomputing_and_leaves_no_partial_files(model, videos, tmp_path):
    items = collect_items(videos)

    def crash_after_first(uid: str) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        embed_to_folder(model, items, RECIPE, tmp_path, batch_size=2, show_progress=False,
                        on_item_done=crash_after_first)
    assert sorted(p.name for p in tmp_path.glob("*.pt")) == ["a.pt"]
    assert not [p for p in tmp_path.rglob("*") if p.name.endswith(".tmp")]
    mtime = (tmp_path / "a.pt").stat().st_mtime_ns
    stats = embed_to_folder(model, items, RECIPE, tmp_path, batch_size=2, show_progress=False)
    assert stats.skipped == ["a"] and stats.computed == ["b", "c"]
    assert (tmp_path / "a.pt").stat().st_mtime_ns == mtime
    assert sorted(json.loads((tmp_path / META_NAME).read_text())["videos"]) == ["a", "b", "c"]
    # a third run has nothing left to do; a different recipe refuses to mix into the folder
    assert embed_to_folder(model, items, RECIPE, tmp_path, show_progress=False).computed == []
    with pytest.raises(Exception, match="another recipe"):
        embed_to_folder(model, items, RECIPE.replace(mode="backbone"), tmp_path, show_progress=False)


def test_sharding_across_processes_covers_every_video_once(model, videos, tmp_path):
    class FakeState:
        def __init__(self, rank: int) -> None:
            self.process_index, self.num_processes = rank, 2

        def wait_for_everyone(self) -> None:
            pass

    items = collect_items(videos)
    done = [embed_to_folder(model, items, RECIPE, tmp_path, state=FakeState(r), show_progress=False).computed
            for r in (0, 1)]
    assert done == [["a", "c"], ["b"]]


def test_fusion_features_equal_the_full_fusion_forward(model, tokenizer, videos):
    recipe = FeatureRecipe(mode="fusion", frames_per_window=2, windows_per_second=2.0, query_max_length=12)
    query = "Where is the RED cup "
    out = embed_video(model, videos / "a.mp4", recipe, query=query, tokenizer=tokenizer, batch_size=4)
    info = probe_video(videos / "a.mp4")
    ids, mask = tokenize_texts(tokenizer, ["where is the red cup"], 12)
    rows = []
    for frames in out.frames:
        clip = EvalTransform(32)(read_frames_at(videos / "a.mp4", [(int(i) + 0.5) / info.fps for i in frames]))
        rows.append(model.fusion(prepare_video(clip[None], model, "cpu"), ids, mask).video_cls[0])
    assert out.features.shape == (6, 32)
    torch.testing.assert_close(out.features, torch.stack(rows), atol=1e-5, rtol=1e-4)
    two = embed_video(model, videos / "a.mp4", recipe, query=[query, "a green ball"], tokenizer=tokenizer)
    assert two.features.shape == (2, 6, 32)
    torch.testing.assert_close(two.features[0], out.features, atol=1e-5, rtol=1e-4)
    assert not torch.allclose(two.features[0], two.features[1])


def test_cli_embed_with_clip_list_and_texts(model, tokenizer, videos, tmp_path):
    from egokit.cli.embed import embed

    folder = tmp_path / "ckpt"
    save_pretrained(model, folder, tokenizer=tokenizer)
    clips = tmp_path / "clips.csv"
    clips.write_text(f"video,start,end,clip_uid\n{videos / 'a.mp4'},0.5,2.5,clip1\n{videos / 'c.mp4'},0,,clip2\n")
    sentences = tmp_path / "s.txt"
    sentences.write_text("where is the red cup\na green ball\n")
    app = typer.Typer()
    app.command()(embed)
    result = CliRunner().invoke(app, [str(clips), str(tmp_path / "out"), "--ckpt", str(folder), "--frames", "2",
                                      "--windowing", "sliding", "--window-frames", "4", "--stride", "0.5",
                                      "--texts", str(sentences), "--format", "npy"])
    assert result.exit_code == 0, result.output
    meta = json.loads((tmp_path / "out" / META_NAME).read_text())
    assert meta["recipe"]["windowing"] == "sliding" and meta["recipe"]["stride"] == 0.5
    # clip1: frames 10..49 of a 20-fps video, 4-frame windows every 10 frames -> starts 10, 20, 30, 40 (rel. 0..1.5 s)
    assert meta["videos"]["clip1"]["window_starts"] == [0.0, 0.5, 1.0, 1.5]
    assert load_features(tmp_path / "out" / "clip1.npy").shape == (4, 24)
    assert torch.load(tmp_path / "out" / "texts.pt", weights_only=True).shape == (2, 24)
