"""``summarize_video``: split a video into shots, score them against a query, keep the best under a budget."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from egokit.data.transforms import EvalTransform, normalize_video
from egokit.data.video import probe_video, read_frames_at
from egokit.errors import ConfigError
from egokit.results import write_json_atomic
from egokit.summarize.scoring import encode_query, fuse_with_query, shot_features, vtm_probability
from egokit.summarize.select import select_shots
from egokit.summarize.sheet import contact_sheet, format_time, save_png
from egokit.summarize.shots import Shot, fixed_shots, frame_times


@dataclass
class Summary:
    """Shots of a video, their scores against ``query`` and the selected (time-ordered) shot indices."""

    video: str
    query: str
    scorer: str  # 'vtm' or 'qfvs-head'
    shots: list[Shot]
    scores: list[float]
    selected: list[int]
    budget: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        chosen = set(self.selected)
        return {
            "video": self.video, "query": self.query, "scorer": self.scorer, "budget": self.budget,
            "selected": self.selected,
            "selected_seconds": round(sum(self.shots[i].duration for i in self.selected), 3),
            "shots": [{"index": s.index, "start": round(s.start, 3), "end": round(s.end, 3),
                       "score": float(sc), "selected": s.index in chosen} for s, sc in zip(self.shots, self.scores)],
        }


def load_shot_clips(path: str | Path, shots: list[Shot], num_frames: int, size: int) -> torch.Tensor:
    """uint8 (len(shots), num_frames, 3, size, size): evenly spaced frames of each shot, centre-cropped."""
    times = [t for shot in shots for t in frame_times(shot, num_frames)]
    frames = EvalTransform(size)(read_frames_at(path, times, short_side=size))
    return frames.reshape(len(shots), num_frames, *frames.shape[1:])


@torch.no_grad()
def summarize_video(model, tokenizer, path: str | Path, query: str, *, budget_shots: int | None = None,
                    budget_seconds: float | None = None, shot_seconds: float = 2.0, head=None, batch_size: int = 8,
                    progress=None) -> Summary:
    """Score every ``shot_seconds`` shot of ``path`` against ``query`` and select a summary.

    Scores are the QFVS head's probabilities when ``head`` (a :class:`~egokit.summarize.head.SummaryHead`) is
    given, else the VTM match probability. Without a budget, 20 % of the shots are kept. ``progress`` is an object
    with ``advance(n)`` (a task progress bar), advanced once per scored shot.
    """
    if not isinstance(query, str) or not query.strip():
        raise ConfigError(f"the summary query is empty ({query!r}): say what the summary should show, e.g. 'a red cup'")
    model.eval()
    info = probe_video(path)
    shots = fixed_shots(info.duration, shot_seconds)
    pre = model.config.preprocess
    device = next(model.parameters()).device
    dtype = next(model.parameters()).dtype
    query_prefix = encode_query(model, tokenizer, query)
    outputs = []
    for first in range(0, len(shots), batch_size):
        batch = shots[first:first + batch_size]
        clips = load_shot_clips(path, batch, model.config.num_frames, pre.image_size)
        video = normalize_video(clips.to(device), pre.mean, pre.std, dtype=dtype)
        fused = fuse_with_query(model, model.fusion_video_prefix(video), query_prefix)
        outputs.append((shot_features(model, fused) if head is not None else vtm_probability(model, fused)).float().cpu())
        if progress is not None:
            progress.advance(len(batch))
    if head is not None:
        head = head.to(device).eval()
        scores = torch.sigmoid(head.score_sequence(torch.cat(outputs).to(device)).float()).cpu()
    else:
        scores = torch.cat(outputs)
    selected = select_shots(scores.tolist(), shots, budget_shots=budget_shots, budget_seconds=budget_seconds)
    return Summary(video=str(path), query=query, scorer="qfvs-head" if head is not None else "vtm", shots=shots,
                   scores=[float(s) for s in scores], selected=selected,
                   budget={"shots": budget_shots, "seconds": budget_seconds, "shot_seconds": shot_seconds})


def write_summary(summary: Summary, out_dir: str | Path, *, mp4: bool = False, thumb_size: int = 160,
                  columns: int | None = None, html: bool = False) -> dict[str, Path]:
    """Write ``summary.json``, ``contact_sheet.png`` (middle frame of each selected shot), with ``mp4``
    ``summary.mp4`` and with ``html`` ``report.html`` (static: score timeline, thumbnails, clip links). Returns the
    written paths by kind."""
    out_dir = Path(out_dir)
    paths = {"json": write_json_atomic(out_dir / "summary.json", summary.to_dict())}
    chosen = [summary.shots[i] for i in summary.selected]
    if chosen:
        frames = read_frames_at(summary.video, [s.middle for s in chosen], short_side=thumb_size)
        images = [f.permute(1, 2, 0).contiguous().numpy() for f in frames]
        labels = [f"{format_time(s.start)}-{format_time(s.end)}  {summary.scores[s.index]:.2f}" for s in chosen]
        paths["png"] = save_png(contact_sheet(images, labels, columns), out_dir / "contact_sheet.png")
        if mp4:
            from egokit.summarize.mp4 import write_summary_mp4

            paths["mp4"] = write_summary_mp4(summary.video, chosen, out_dir / "summary.mp4")
        if html:
            from egokit.htmlreport import Moment, summary_page, write_page
            from egokit.summarize.sheet import fit_frame

            cards = [Moment(image=fit_frame(image, 192, 108), video=Path(summary.video).name, href_file=summary.video,
                            start=s.start, end=s.end, label_start=s.start, label_end=s.end,
                            score=float(summary.scores[s.index]), rank=None, selected=True)
                     for s, image in zip(chosen, images)]
            paths["html"] = write_page(summary_page(summary, cards, out_dir), out_dir / "report.html")
    return paths
