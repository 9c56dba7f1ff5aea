"""Static HTML reports (``egokit search --html``, ``egokit summarize --html``): every card shows the right moment's
frame, links to its clip with a media fragment relative to the page, scores match the results, and a real headless
browser renders the page with the thumbnails visible (skipped where no Chromium/Chrome is installed)."""

from __future__ import annotations

import base64
import io
import json
import os
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote

import numpy as np
import pytest
import torch
from PIL import Image

from egokit.embed import FeatureRecipe, collect_items
from egokit.search import SearchIndex, index_videos, write_search_results
from egokit.synth.clips import COLOUR_RGB, colour_segments_video
from egokit.testing import tiny_model

SEGMENTS = [("red", 2.0), ("green", 2.0), ("blue", 2.0)]


class Page(HTMLParser):
    """Collects figures (their link, image, classes), links, svg rects and the text."""

    def __init__(self) -> None:
        super().__init__()
        self.figures: list[dict] = []
        self.rects: list[dict] = []
        self.videos: list[str] = []
        self.scripts = 0
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "figure":
            self.figures.append({"class": attrs.get("class", "")})
        elif tag == "a" and self.figures and "href" not in self.figures[-1]:
            self.figures[-1]["href"] = attrs["href"]
        elif tag == "img" and self.figures:
            self.figures[-1]["img"] = attrs["src"]
        elif tag == "rect":
            self.rects.append(attrs)
        elif tag == "video":
            self.videos.append(attrs["src"])
        elif tag == "script":
            self.scripts += 1

    def handle_data(self, data):
        self.text.append(data)


def parse(path: Path) -> Page:
    page = Page()
    page.feed(path.read_text())
    return page


def decode_image(src: str) -> np.ndarray:
    assert src.startswith("data:image/jpeg;base64,")
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1]))).convert("RGB"))


def colour_at(t: float) -> str:
    edge = 0.0
    for name, seconds in SEGMENTS:
        edge += seconds
        if t < edge:
            return name
    return SEGMENTS[-1][0]


def nearest_colour(pixel: np.ndarray) -> str:
    return min(COLOUR_RGB, key=lambda n: float(np.abs(np.asarray(COLOUR_RGB[n], float) - pixel).sum()))


def browser() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        if shutil.which(name):
            return shutil.which(name)
    return None


def screenshot(page: Path, out: Path, size=(1100, 900)) -> np.ndarray:
    exe = browser()
    if exe is None:
        pytest.skip("no Chromium/Chrome installed (apt-get install chromium) to render the report")
    cmd = [exe, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--mute-audio",
           f"--window-size={size[0]},{size[1]}", f"--screenshot={out}", page.resolve().as_uri()]
    subprocess.run(cmd, check=True, capture_output=True, timeout=120, env={**os.environ, "HOME": str(out.parent)})
    return np.asarray(Image.open(out).convert("RGB"))


@pytest.fixture(scope="module")
def searched(tmp_path_factory):
    root = tmp_path_factory.mktemp("report")
    video = colour_segments_video(root / "videos" / "colours.mp4",
                                  [(COLOUR_RGB[c], s) for c, s in SEGMENTS], fps=10, size=(64, 48))
    model = tiny_model(0).eval()
    recipe = FeatureRecipe(mode="projected", frames_per_window=2, windows_per_second=1.0)
    index_videos(model, collect_items(root / "videos"), recipe, root / "idx", show_progress=False)
    index = SearchIndex(root / "idx")
    rng = np.random.default_rng(0)
    queries = rng.standard_normal((2, index.dim)).astype(np.float32)
    results = []
    for name, q in zip(("first query", "second query"), queries):
        hits = index.hits(*index.search_vectors(q, 4))
        hits[0].vtm = 0.875  # as a re-ranked hit would carry
        results.append((name, hits))
    out = root / "out"
    paths = write_search_results(index, results, out, html=True)
    return root, video, index, results, paths


def test_search_report_cards_show_link_and_score_the_right_moments(searched):
    root, video, index, results, paths = searched
    page = parse(paths["html"])
    assert page.scripts == 0
    assert len(page.figures) == sum(len(h) for _, h in results) == 8
    hits = [h for _, hs in results for h in hs]
    text = " ".join(page.text)
    assert "first query" in text and "second query" in text and "VTM 0.875" in text
    for fig, hit, src in zip(page.figures, hits, page.videos):
        target, _, fragment = fig["href"].partition("#")
        assert (paths["html"].parent / unquote(target)).resolve() == video.resolve()
        assert fragment == f"t={hit.start:.3f},{hit.end:.3f}" and src == fig["href"]
        image = decode_image(fig["img"])
        assert image.shape == (108, 192, 3)
        centre = image[40:68, 80:112].reshape(-1, 3).mean(0)
        assert nearest_colour(centre) == colour_at((hit.start + hit.end) / 2), (hit, centre)
        assert f"{hit.score:.4f}" in text
    sheet = Image.open(paths["contact_sheet-1.png"])
    assert sheet.size[0] > 4 * 192
    saved = json.loads(paths["json"].read_text())
    assert [h["row"] for h in saved["queries"][1]["hits"]] == [h.row for h in results[1][1]]


def test_summary_report_has_a_timeline_bar_per_shot_and_cards_of_the_selected(tmp_path):
    from egokit.summarize import summarize_video, write_summary
    from egokit.tokenizer import train_bpe_tokenizer

    video = colour_segments_video(tmp_path / "v.mp4", [(COLOUR_RGB[c], s) for c, s in SEGMENTS], fps=10,
                                  size=(64, 48))
    tok = train_bpe_tokenizer(["a red cup", "a blue box"] * 5, tmp_path / "tok", vocab_size=300, min_frequency=1)
    model = tiny_model(0, vocab_size=len(tok)).eval()
    with torch.no_grad():
        for gate in model.gates():
            gate.fill_(0.5)
    summary = summarize_video(model, tok, video, "a red cup", budget_shots=2, shot_seconds=1.0)
    paths = write_summary(summary, tmp_path / "out", html=True)
    page = parse(paths["html"])
    assert page.scripts == 0
    assert len(page.rects) == len(summary.shots) == 6
    yellow = [r for r in page.rects if r["fill"] == "#f2b134"]
    assert len(yellow) == len(summary.selected) == 2 == len(page.figures)
    heights = [float(r["height"]) for r in page.rects]
    scores = summary.scores
    assert heights[int(np.argmax(scores))] == max(heights)
    assert heights[int(np.argmin(scores))] == min(heights) < max(heights)
    assert all(heights[i] >= heights[j] for i in range(6) for j in range(6) if scores[i] > scores[j])
    for fig, i in zip(page.figures, summary.selected):
        shot = summary.shots[i]
        assert fig["href"].endswith(f"#t={shot.start:.3f},{shot.end:.3f}") and "sel" in fig["class"]
        assert nearest_colour(decode_image(fig["img"])[40:68, 80:112].reshape(-1, 3).mean(0)) == colour_at(shot.middle)


def test_reports_render_in_a_headless_browser(searched, tmp_path):
    root, video, index, results, paths = searched
    shot = screenshot(paths["html"], tmp_path / "search.png")
    assert shot.shape[0] >= 800 and shot.shape[1] >= 1000
    # the page is drawn (dark background, light text) and the thumbnails of the first query are visible
    colours = {nearest_colour(p) for p in shot.reshape(-1, 3)[::7] if p.max() - p.min() > 80}
    expected = {colour_at((h.start + h.end) / 2) for h in results[0][1]}
    assert expected <= colours, (expected, colours)
    assert (shot.reshape(-1, 3).mean(1) < 40).mean() > 0.3  # mostly the dark background: CSS applied
