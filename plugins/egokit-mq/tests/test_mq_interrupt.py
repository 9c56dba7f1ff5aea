"""A stop signal while `egokit train mq` extracts features stops after the current clip with the "continue with"
exit (finished clips stay cached), and `--resume latest` ends with the same head and metrics as an uninterrupted
run."""

from __future__ import annotations

import json
import os
import signal

import pytest

from egokit.tasks.api import load_features
from egokit.testing import run_cli, tiny_checkpoint
from egokit_mq.task import MQTask


def _train(tmp_path, data, ckpt, out, *extra):
    return run_cli("train", "mq", "--ckpt", ckpt, "--data", data, "-o", tmp_path / out, "finetune.epochs=3", *extra)


def test_sigterm_during_feature_extraction_stops_after_the_clip_and_resumes(tmp_path, monkeypatch):
    import egokit.embed.run as embed_run
    from egokit.engine.interrupt import TrainingInterrupted

    summary = MQTask().synth(tmp_path / "data", seed=1)
    data = summary["options"]["data"]
    ckpt = tiny_checkpoint(tmp_path / "ckpt", summary["texts"])
    _train(tmp_path, data, ckpt, "plain")

    real = embed_run.embed_items
    done = []

    def embed_then_signal(*args, on_item_done=None, **kwargs):
        def item_done(uid):
            done.append(uid)
            if len(done) == 2:
                os.kill(os.getpid(), signal.SIGTERM)  # as Slurm would, in the middle of the extraction
            on_item_done(uid)
        return real(*args, on_item_done=item_done, **kwargs)

    monkeypatch.setattr(embed_run, "embed_items", embed_then_signal)
    with pytest.raises(TrainingInterrupted) as info:
        _train(tmp_path, data, ckpt, "stopped")
    assert info.value.signum == signal.SIGTERM and info.value.resumable and info.value.exit_code == 143
    assert len(done) == 2  # stopped after the clip it was on
    cache = tmp_path / "stopped" / "features" / "egovlpv2-mq"
    assert sorted(p.stem for p in cache.glob("*.pt")) == sorted(done)  # the finished clips are kept
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # handlers restored

    resumed_clips = []

    def embed_and_count(*args, on_item_done=None, **kwargs):
        def item_done(uid):
            resumed_clips.append(uid)
            on_item_done(uid)
        return real(*args, on_item_done=item_done, **kwargs)

    monkeypatch.setattr(embed_run, "embed_items", embed_and_count)
    _train(tmp_path, data, ckpt, "stopped", "--resume", "latest")
    assert not set(done) & set(resumed_clips)  # cached clips are not embedded again
    plain = json.loads((tmp_path / "plain" / "mq_train_results.json").read_text())["metrics"]
    resumed = json.loads((tmp_path / "stopped" / "mq_train_results.json").read_text())["metrics"]
    assert resumed == plain
    head = "mq_head/head.safetensors"
    assert (tmp_path / "stopped" / head).read_bytes() == (tmp_path / "plain" / head).read_bytes()
    assert load_features(cache / f"{done[0]}.pt").shape[0] > 0
