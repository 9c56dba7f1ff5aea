"""Bad input, bad places and interruptions a new user runs into: every case is one clear line (no traceback unless
asked), the documented exit code, and nothing lost or half-written. One test per case; add one per new bug.

Tests run as root, which ignores file modes: a read-only or full disk is simulated by making the system calls
fail (the reporting path is the real one), and the real-world case is an output path below a regular file.
"""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from egokit.cli.main import main
from egokit.errors import CheckpointError, DataError
from egokit.testing import make_index_video, tiny_model, tiny_tokenizer
from tests.conftest import MICRO_MODEL_OVERRIDES

REPO = Path(__file__).parents[2]
PARITY = REPO / "tests" / "fixtures" / "egovlpv2-parity" / "checkpoint.pth"  # width 64, 4 heads, vocab 1000


def _cli(monkeypatch, capsys, *args) -> tuple[int, str, str]:
    """``egokit ARGS`` in-process through ``main()`` (the error reporting under test): (exit code, stdout, stderr)."""
    monkeypatch.setattr(sys, "argv", ["egokit", *map(str, args)])
    monkeypatch.setenv("COLUMNS", "200")
    monkeypatch.delenv("EGOKIT_DEBUG", raising=False)
    with pytest.raises(SystemExit) as info:
        main()
    out, err = capsys.readouterr()
    return info.value.code, out, err


def _one_error_line(err: str) -> str:
    """The single ``error: ...`` line of stderr (fails if there is a traceback or more than one line)."""
    assert "Traceback" not in err and "Caught" not in err, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


def _egokit(*args, cwd: Path = REPO, env: dict | None = None) -> subprocess.CompletedProcess:
    environ = {k: v for k, v in os.environ.items() if k != "EGOKIT_DEBUG"}
    environ.update({"OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "COLUMNS": "200", **(env or {})})
    return subprocess.run([sys.executable, "-m", "egokit", *map(str, args)], capture_output=True, text=True,
                          timeout=300, cwd=cwd, env=environ)


def _pretrain_args(data: Path | str, out: Path, *extra: str) -> list[str]:
    return [*MICRO_MODEL_OVERRIDES, f"data.root={data}", f"output_dir={out}", "data.chunk_seconds=4",
            "data.num_workers=0", "data.batch_size=4", "train.precision=fp32", "train.max_steps=1",
            "eval.egomcq=null", *extra]


@pytest.fixture
def small_tokenizer(tmp_path):
    folder = tmp_path / "tokenizer"
    tiny_tokenizer(["a red cup on the table", "a blue box in the sink", "the person opens the door"] * 5, folder)
    return folder


def _official_file(path: Path, model, **extra) -> Path:
    state = {f"module.{k}": v for k, v in model.state_dict().items()}
    torch.save({"arch": "DistributedDataParallel", "epoch": 1, "state_dict": state, **extra}, path)
    return path


# ------------------------------------------------------------------------------------ 1. paths of a recipe
def test_stray_egoclip_csv_and_videos_in_the_working_directory_do_not_replace_the_recipe_dataset(tiny_synth, tmp_path):
    stray = tmp_path / "where-the-user-stands"
    (stray / "videos").mkdir(parents=True)
    (stray / "egoclip.csv").write_text("not\tthe\trecipe's\tdataset\n")
    experiment = tmp_path / "experiment"
    experiment.mkdir()
    recipe = (REPO / "recipes" / "demo.yaml").read_text().replace(
        "root: ../runs/demo/data", f"root: {os.path.relpath(tiny_synth, experiment)}")
    assert os.path.relpath(tiny_synth, experiment) in recipe
    (experiment / "recipe.yaml").write_text(recipe)
    overrides = _pretrain_args(tiny_synth, tmp_path / "run")
    overrides = [o for o in overrides if not o.startswith("data.root=")]  # data.root from the recipe file
    proc = _egokit("pretrain", experiment / "recipe.yaml", *overrides, cwd=stray)
    assert proc.returncode == 0, proc.stderr[-3000:]
    saved = json.loads((tmp_path / "run" / "recipe.json").read_text())["recipe"]["data"]
    assert saved["root"] == str(tiny_synth)
    assert json.loads((tmp_path / "run" / "results.json").read_text())["summary"]["steps"] == 1


def test_relative_paths_in_a_recipe_file_resolve_against_its_folder(tmp_path, monkeypatch):
    from egokit.engine.pretrain_recipe import load_pretrain_recipe

    folder = tmp_path / "recipes"
    folder.mkdir()
    (folder / "r.yaml").write_text(
        "output_dir: runs/x\n"
        "model: {checkpoint: ckpt/model, vit: weights/vit.pth, roberta: roberta-base}\n"
        "data: {root: ../data, egoclip: egoclip.csv}\n"
        "eval: {tasks: [{name: egomcq, options: {data: mcq}}]}\n")
    monkeypatch.chdir(tmp_path / "recipes")  # wherever the user stands
    recipe = load_pretrain_recipe(folder / "r.yaml")
    assert recipe.data.root == str(tmp_path / "data")
    assert recipe.model.checkpoint == str(folder / "ckpt" / "model")
    assert recipe.model.vit == str(folder / "weights" / "vit.pth")
    assert recipe.model.roberta == "roberta-base"  # a hub name, not a path
    assert recipe.eval.tasks[0].options["data"] == str(folder / "mcq")
    assert recipe.output_dir == "runs/x"  # outputs go where the command runs
    assert recipe.data.egoclip == "egoclip.csv"  # under data.root, resolved when read


def test_paths_given_on_the_command_line_resolve_against_the_working_directory(tmp_path):
    from egokit.engine.pretrain_recipe import load_pretrain_recipe

    (tmp_path / "r.yaml").write_text("data: {root: /somewhere/else}\n")
    recipe = load_pretrain_recipe(tmp_path / "r.yaml", ["data.root=mydata", "model.checkpoint=ckpt"])
    assert recipe.data.root == "mydata" and recipe.model.checkpoint == "ckpt"


def test_data_files_are_read_under_data_root_even_when_the_working_directory_has_them(tmp_path, monkeypatch):
    from egokit.engine.pretrain_recipe import DataSection, data_path, data_tokenizer

    (tmp_path / "egoclip.csv").write_text("stray")
    (tmp_path / "videos").mkdir()
    (tmp_path / "tok").mkdir()
    monkeypatch.chdir(tmp_path)
    data = DataSection(root="/data/egoclip", tokenizer="tok")
    assert data_path(data, "egoclip.csv") == Path("/data/egoclip/egoclip.csv")
    assert data_path(data, "videos") == Path("/data/egoclip/videos")
    assert data_path(data, "/abs/videos") == Path("/abs/videos")
    assert data_tokenizer(data) == "tok"  # no folder under data.root: a hub name, never ./tok
    root = tmp_path / "root"
    (root / "tok").mkdir(parents=True)
    assert data_tokenizer(DataSection(root=str(root), tokenizer="tok")) == root / "tok"


# ------------------------------------------------------------------------------------ 2. operating-system errors
@pytest.mark.parametrize("command", ["convert", "embed", "summarize", "prepare", "eval", "train", "pretrain"])
def test_output_location_below_a_file_is_one_line_naming_it(command, tmp_path, monkeypatch, capsys):
    blocker = tmp_path / "results.txt"
    blocker.write_text("a file where a folder was meant")
    out = blocker / "out"
    video = tmp_path / "clip.mp4"
    if command == "prepare":
        (tmp_path / "src").mkdir()
        make_index_video(tmp_path / "src" / "clip.mp4", 10, 10, size=(32, 32))
    else:
        video.write_bytes(b"")  # only its existence is checked before the output location
    args = {
        "convert": ["convert", PARITY, out, "--num-heads", "4"],
        "embed": ["embed", video, out, "--ckpt", tmp_path / "no-model"],
        "summarize": ["summarize", video, "--query", "a cup", "--ckpt", tmp_path / "no-model", "-o", out],
        "prepare": ["prepare", tmp_path / "src", out],
        "eval": ["eval", "egomcq", "--ckpt", tmp_path / "no-model", "-o", out],
        "train": ["train", "egomcq", "--ckpt", tmp_path / "no-model", "-o", out],
        "pretrain": ["pretrain", REPO / "recipes" / "demo.yaml", *_pretrain_args(tmp_path, out)],
    }[command]
    code, _, err = _cli(monkeypatch, capsys, *args)
    line = _one_error_line(err)
    assert code == 2
    assert str(blocker) in line and "not a folder" in line, line
    assert blocker.read_text() == "a file where a folder was meant"


def test_read_only_output_location_is_one_line_naming_it(tmp_path, monkeypatch, capsys):
    import egokit.io

    class ReadOnly:
        f_flag = os.ST_RDONLY
        f_bfree = f_bavail = f_frsize = 1 << 20

    real_access = os.access
    monkeypatch.setattr(egokit.io.os, "access", lambda p, mode: False if Path(p) == tmp_path else real_access(p, mode))
    monkeypatch.setattr(egokit.io.os, "statvfs", lambda p: ReadOnly())
    code, _, err = _cli(monkeypatch, capsys, "convert", PARITY, tmp_path / "out", "--num-heads", "4")
    line = _one_error_line(err)
    assert code == 2 and f"{tmp_path}: Read-only file system" in line and "writable disk" in line, line
    assert not (tmp_path / "out").exists()


def test_permission_denied_while_writing_names_the_file_not_a_temporary(tmp_path, monkeypatch, capsys,
                                                                         small_tokenizer):
    import egokit.io

    def denied(prefix="", suffix="", dir=None):
        raise PermissionError(errno.EACCES, "Permission denied", os.path.join(dir, f"{prefix}x1y2{suffix}"))

    monkeypatch.setattr(egokit.io.tempfile, "mkstemp", denied)
    code, _, err = _cli(monkeypatch, capsys, "convert", PARITY, tmp_path / "out", "--num-heads", "4",
                        "--tokenizer", small_tokenizer)
    line = _one_error_line(err)
    assert code == 2 and "Permission denied" in line and "permissions" in line, line
    assert f"{tmp_path / 'out' / 'model.safetensors'}:" in line and "x1y2" not in line, line
    assert not (tmp_path / "out" / "config.json").exists()


def test_full_disk_while_writing_names_the_file(tmp_path, monkeypatch, capsys, small_tokenizer):
    import safetensors.torch

    def full(tensors, filename, metadata=None):
        raise OSError(errno.ENOSPC, "No space left on device")  # as a writer reports it: no file name

    monkeypatch.setattr(safetensors.torch, "save_file", full)
    code, _, err = _cli(monkeypatch, capsys, "convert", PARITY, tmp_path / "out", "--num-heads", "4",
                        "--tokenizer", small_tokenizer)
    line = _one_error_line(err)
    assert code == 2 and line.startswith(f"error: {tmp_path / 'out' / 'model.safetensors'}: No space left"), line
    assert "free some space" in line
    assert [p.name for p in (tmp_path / "out").iterdir()] == []  # no temporary left behind


def test_full_disk_reported_by_a_library_as_a_runtime_error_is_still_a_full_disk(tmp_path, monkeypatch, capsys,
                                                                                 small_tokenizer):
    import safetensors.torch

    import egokit.io

    def torch_like(tensors, filename, metadata=None):
        Path(filename).write_bytes(b"partial")
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 704 vs 598")

    monkeypatch.setattr(safetensors.torch, "save_file", torch_like)
    monkeypatch.setattr(egokit.io, "_disk_full", lambda folder: True)
    code, _, err = _cli(monkeypatch, capsys, "convert", PARITY, tmp_path / "out", "--num-heads", "4",
                        "--tokenizer", small_tokenizer)
    line = _one_error_line(err)
    assert code == 2 and f"{tmp_path / 'out' / 'model.safetensors'}: No space left on device" in line, line
    assert [p.name for p in (tmp_path / "out").iterdir()] == []


def test_a_real_bug_keeps_its_traceback():
    from egokit.cli.failures import report_failure

    printed = []
    assert report_failure(ZeroDivisionError("division by zero"), False, printed.append) is None
    assert report_failure(KeyError("x"), False, printed.append) is None and printed == []


def test_prepare_on_a_full_disk_prints_its_failure_table_then_one_line(tmp_path, monkeypatch, capsys):
    import egokit.prepare.runner as runner

    (tmp_path / "src").mkdir()
    for name in ("a", "b"):
        make_index_video(tmp_path / "src" / f"{name}.mp4", 10, 10, size=(32, 32))

    def encode(job, dst, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(dst / job.uid / "0.mp4"))

    def manifest(dst, entries):
        raise OSError(errno.ENOSPC, "No space left on device", str(Path(dst) / "manifest.json"))

    monkeypatch.setattr(runner, "encode_video", encode)
    monkeypatch.setattr(runner, "write_manifest", manifest)
    code, out, err = _cli(monkeypatch, capsys, "prepare", tmp_path / "src", tmp_path / "dst")
    assert code == 2
    assert "0 / 0 / 2" in out  # the summary table
    assert "2 video(s) failed" in err and "a.mp4" in err and "b.mp4" in err and "No space left" in err
    assert "Traceback" not in err
    last = err.strip().splitlines()[-1]
    assert last.startswith(f"error: {tmp_path / 'dst' / 'manifest.json'}: No space left on device"), err


def test_non_utf8_recipe_is_one_line_naming_it(tmp_path, monkeypatch, capsys):
    recipe = tmp_path / "recipe.yaml"
    recipe.write_bytes("data:\n  root: /données\n".encode("latin-1"))
    code, _, err = _cli(monkeypatch, capsys, "pretrain", recipe)
    line = _one_error_line(err)
    assert code == 2 and str(recipe) in line and "UTF-8" in line, line


def test_non_utf8_egoclip_csv_names_the_line(tmp_path):
    from egokit.data.egoclip import read_egoclip_csv

    path = tmp_path / "egoclip.csv"
    path.write_bytes(b"video_uid\tclip_text\nabc\t#C C opens the door\nabd\t#C C caf\xe9\n")
    with pytest.raises(DataError, match=rf"{re.escape(str(path))}:3: not UTF-8 text .*save egoclip.csv as UTF-8"):
        read_egoclip_csv(path)


def test_non_utf8_clip_list_names_the_file(tmp_path):
    from egokit.embed import collect_items

    path = tmp_path / "clips.csv"
    path.write_bytes(b"video,start,end,clip_uid\ncaf\xe9.mp4,0,1,x\n")
    with pytest.raises(DataError, match=re.escape(f"{path}: not UTF-8 text")):
        collect_items(path)


def test_worker_error_is_the_same_line_as_in_the_main_process(tiny_synth, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(tiny_synth, data)
    for chunk in (data / "videos").rglob("*.mp4"):
        chunk.write_bytes(b"not a video")
    lines = {}
    for workers in (0, 1):
        proc = _egokit("pretrain", REPO / "recipes" / "demo.yaml",
                       *_pretrain_args(data, tmp_path / f"run{workers}", "data.policy=strict",
                                       f"data.num_workers={workers}"))
        assert proc.returncode == 2, proc.stderr[-3000:]
        lines[workers] = _one_error_line(proc.stderr)
    assert lines[1] == lines[0]
    assert str(data / "videos") in lines[1] and "not a video" in lines[1], lines[1]


def test_worker_os_error_keeps_its_type_errno_and_file_name():
    from torch.utils.data import DataLoader, Dataset

    from egokit.cli.failures import unwrap_worker_error, user_message

    class Broken(Dataset):
        def __len__(self):
            return 2

        def __getitem__(self, index):
            if index == 0:
                raise PermissionError(errno.EACCES, "Permission denied", "/data/videos/a b'c.mp4")
            raise DataError("clip x: first line\nsecond line")

    for index, expected in ((0, PermissionError), (1, DataError)):
        loader = DataLoader(Broken(), sampler=[index], num_workers=1)
        with pytest.raises(expected) as info:
            next(iter(loader))
        assert "Caught" in str(info.value)  # what PyTorch re-raises
        original = unwrap_worker_error(info.value)
        assert type(original) is expected
        if expected is PermissionError:
            assert original.errno == errno.EACCES and original.filename == "/data/videos/a b'c.mp4"
            assert user_message(info.value) == ("/data/videos/a b'c.mp4: Permission denied; fix its permissions "
                                                "or choose another location")
        else:
            assert str(original) == "clip x: first line\nsecond line"


def test_traceback_option_and_debug_variable_show_the_traceback(tmp_path):
    plain = _egokit("convert", tmp_path / "missing.pth", tmp_path / "out")
    assert plain.returncode == 2 and "Traceback" not in plain.stderr
    for args, env in ((["--traceback"], None), ([], {"EGOKIT_DEBUG": "1"})):
        proc = _egokit(*args, "convert", tmp_path / "missing.pth", tmp_path / "out", env=env)
        assert proc.returncode == 2
        assert "Traceback (most recent call last)" in proc.stderr and "CheckpointError" in proc.stderr
        assert proc.stderr.strip().splitlines()[-1] == plain.stderr.strip()


def test_help_documents_errors_and_the_traceback_option(monkeypatch, capsys):
    code, out, _ = _cli(monkeypatch, capsys, "--help")
    assert code == 0
    text = " ".join(out.split())
    assert "--traceback" in text and "EGOKIT_DEBUG=1" in text and "exit code 2" in text


# ------------------------------------------------------------------------------------ 3. validation
@pytest.mark.parametrize("query", ["", "   "])
def test_summarize_with_an_empty_query_is_an_error(query, tmp_path, monkeypatch, capsys):
    video = tmp_path / "v.mp4"
    make_index_video(video, 10, 10, size=(32, 32))
    code, _, err = _cli(monkeypatch, capsys, "summarize", video, "--query", query, "--ckpt", tmp_path / "no-model",
                        "-o", tmp_path / "out")
    line = _one_error_line(err)
    assert code == 2 and "--query is empty" in line, line
    assert not (tmp_path / "out").exists()


def test_summarize_api_rejects_an_empty_query(tmp_path):
    from egokit.errors import ConfigError
    from egokit.summarize import summarize_video

    with pytest.raises(ConfigError, match="query is empty"):
        summarize_video(tiny_model(), None, tmp_path / "v.mp4", " \t")


@pytest.fixture
def saved_folder(tmp_path, small_tokenizer):
    from egokit.checkpoint import save_pretrained
    from egokit.tokenizer import load_tokenizer

    return save_pretrained(tiny_model(vocab_size=300), tmp_path / "model", tokenizer=load_tokenizer(small_tokenizer))


@pytest.mark.parametrize("field", ["width", "num_heads", "projection", "preprocess.mean"])
def test_config_json_missing_an_architecture_field_is_an_error_naming_it(field, saved_folder):
    import egokit

    path = saved_folder / "config.json"
    meta = json.loads(path.read_text())
    section = meta["model"]
    *parents, key = field.split(".")
    for parent in parents:
        section = section[parent]
    del section[key]
    path.write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match=re.escape(f"{path}: architecture field model.{field} is missing")):
        egokit.load_model(saved_folder)


def test_config_json_without_the_architecture_name_is_an_error(saved_folder, tmp_path, monkeypatch, capsys):
    path = saved_folder / "config.json"
    meta = json.loads(path.read_text())
    del meta["architecture"]
    path.write_text(json.dumps(meta))
    code, _, err = _cli(monkeypatch, capsys, "convert", saved_folder, tmp_path / "copy")
    line = _one_error_line(err)
    assert code == 2 and f"{path}: field 'architecture' is missing" in line, line


def test_convert_requires_num_heads_when_the_width_is_not_a_standard_vit_width(tmp_path, monkeypatch, capsys):
    code, _, err = _cli(monkeypatch, capsys, "convert", PARITY, tmp_path / "out")
    line = _one_error_line(err)
    assert code == 2 and "width 64" in line and "--num-heads N" in line, line
    assert not (tmp_path / "out").exists()


def test_official_head_count_comes_from_the_file_or_a_standard_width_never_a_guess(tmp_path, monkeypatch):
    import types

    import egokit

    module = types.ModuleType("parse_config")  # the official repo's class, pickled by reference

    class ConfigParser:
        def __init__(self, config):
            self._config = config

    ConfigParser.__module__, ConfigParser.__qualname__ = "parse_config", "ConfigParser"
    module.ConfigParser = ConfigParser
    monkeypatch.setitem(sys.modules, "parse_config", module)
    arch = {"arch": {"type": "FrozenInTime", "args": {"video_params": {"arch_config": "tiny_patch16_224"}}}}
    recorded = _official_file(tmp_path / "recorded.pth", tiny_model(width=192, num_heads=3),
                              config=ConfigParser(arch))
    wrong_size = _official_file(tmp_path / "wrong.pth", tiny_model(width=96, num_heads=3), config=ConfigParser(arch))
    monkeypatch.delitem(sys.modules, "parse_config")

    model = egokit.load_model(recorded)
    assert model.config.num_heads == 3 and "tiny_patch16_224" in model.load_report.num_heads
    with pytest.raises(CheckpointError, match="width 96 is not a standard ViT width.*--num-heads"):
        egokit.load_model(wrong_size)  # a recorded size that does not match the shapes is not trusted
    assert egokit.load_model(wrong_size, num_heads=3).config.num_heads == 3


def test_convert_without_a_tokenizer_offline_refuses_with_the_option_to_pass(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    code, _, err = _cli(monkeypatch, capsys, "convert", PARITY, tmp_path / "out", "--num-heads", "4")
    line = _one_error_line(err)
    assert code == 2 and "--tokenizer FOLDER" in line and "roberta-base" in line, line
    assert not (tmp_path / "out").exists()


def test_convert_bundles_the_tokenizer_so_the_folder_loads_offline(tmp_path, monkeypatch, capsys, small_tokenizer):
    import egokit
    from egokit.tokenizer import load_tokenizer

    code, out, _ = _cli(monkeypatch, capsys, "convert", PARITY, tmp_path / "out", "--num-heads", "4",
                        "--tokenizer", small_tokenizer)
    assert code in (0, None)
    assert "attention heads" in out and "given (num_heads)" in out
    shutil.rmtree(small_tokenizer)  # the converted folder must not need it any more
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    config = json.loads((tmp_path / "out" / "config.json").read_text())["model"]
    assert config["num_heads"] == 4 and config["preprocess"]["tokenizer"] == "bundled"
    tok = load_tokenizer(tmp_path / "out" / "tokenizer")
    assert tok("a red cup")["input_ids"][0] == 0
    assert egokit.load_model(tmp_path / "out").config.num_heads == 4


def test_convert_refuses_a_tokenizer_larger_than_the_vocabulary(tmp_path, monkeypatch, capsys, small_tokenizer):
    path = _official_file(tmp_path / "small-vocab.pth", tiny_model(vocab_size=40))
    code, _, err = _cli(monkeypatch, capsys, "convert", path, tmp_path / "out", "--num-heads", "4",
                        "--tokenizer", small_tokenizer)
    line = _one_error_line(err)
    assert code == 2 and "vocabulary has 40" in line and "--tokenizer" in line, line
    assert not (tmp_path / "out").exists()
