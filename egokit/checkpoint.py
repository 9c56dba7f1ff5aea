"""Reading and writing checkpoints.

Three sources, one entry point (:func:`load_model`):

* official EgoVLPv2 ``.pth`` files: a pickled dict whose ``config`` entry is an instance of the official repo's
  ``parse_config.ConfigParser``. egokit never executes pickled code: it loads with PyTorch's ``weights_only``
  unpickler and replaces the few known-harmless foreign classes (``parse_config``, ``pathlib``, ``logging``, numpy
  scalars...) by inert placeholders; any other global (``os.system``...) is refused with a clear error. The
  architecture (projection kind, frames, sizes) is read from tensor shapes; only the head count cannot be: it is
  taken from ``num_heads=``, else from the file's recorded ViT size (``video_params.arch_config``, e.g.
  ``base_patch16_224``: 12), else from a standard ViT width (192/384/768/1024: 64-dim heads); any other width is an
  error asking for ``num_heads`` (``egokit convert --num-heads``), never a guess.
* egokit folders: ``config.json`` (architecture + preprocessing) + ``model.safetensors`` + ``tokenizer/`` + a model
  card, written by :func:`save_pretrained`.
* ``hub:org/name[@revision]``: an egokit folder on the Hugging Face hub, resolved with ``huggingface_hub`` (works
  offline from the local cache with ``HF_HUB_OFFLINE=1``).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path
from typing import Any, Mapping

import torch

from egokit.errors import CheckpointError, ConfigError
from egokit.io import atomic_dir, atomic_path, write_text_atomic
from egokit.models.config import EgoVLPv2Config
from egokit.models.egovlpv2 import EgoVLPv2
from egokit.models.report import LoadReport
from egokit.models.video import inflate_temporal_embed

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
TOKENIZER_DIR = "tokenizer"
FORMAT_VERSION = 1

# Modules whose classes may appear in the pickled metadata of official checkpoints. They are never imported or
# called: each referenced class is replaced by an inert placeholder that only records its arguments.
_INERT_MODULES = ("parse_config", "pathlib", "logging", "argparse", "datetime", "numpy", "utils", "collections")
_MAX_PLACEHOLDERS = 64


class InertObject:
    """Stand-in for a class from pickled metadata; stores what the pickle passed, executes nothing."""

    _egokit_global = "?"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.args, self.kwargs = args, kwargs

    def __setstate__(self, state: Any) -> None:
        self.state = state

    def __repr__(self) -> str:
        return f"<inert {self._egokit_global}>"


# ---------------------------------------------------------------------------------------------- official files
def read_official_checkpoint(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], list[str]]:
    """Return (state_dict without the ``module.`` prefix, names of placeholder-replaced globals)."""
    state, placeholders, _ = _read_official(path)
    return state, placeholders


def _read_official(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], list[str], Any]:
    """:func:`read_official_checkpoint` and the whole unpickled object (with inert metadata placeholders)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint file not found: {path}")
    placeholders: dict[str, type] = {}
    while True:
        try:
            with torch.serialization.safe_globals([(cls, name) for name, cls in placeholders.items()]):
                obj = torch.load(path, map_location="cpu", weights_only=True)
            break
        except Exception as exc:  # torch raises UnpicklingError / RuntimeError with the reason in the message
            name = _unsupported_global(exc)
            if name is None:
                raise CheckpointError(
                    f"{path} is not a readable PyTorch checkpoint ({type(exc).__name__}: {_first_line(exc)}); "
                    "the file may be truncated or corrupt - download it again"
                ) from None
            if not name.startswith(tuple(m + "." for m in _INERT_MODULES)) or len(placeholders) >= _MAX_PLACEHOLDERS:
                raise CheckpointError(
                    f"{path} references {name!r}, which egokit refuses to load: checkpoints may only contain "
                    "tensors and plain metadata, and this one would run code when unpickled"
                ) from None
            if name in placeholders:
                raise CheckpointError(f"{path}: cannot load metadata object {name!r} ({_first_line(exc)})") from None
            placeholders[name] = type(name.rsplit(".", 1)[-1], (InertObject,), {"_egokit_global": name})
    state = obj.get("state_dict", obj.get("model_state_dict")) if isinstance(obj, Mapping) else None
    if state is None and isinstance(obj, Mapping) and obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
        state = obj
    if not isinstance(state, Mapping) or not state:
        keys = sorted(obj)[:10] if isinstance(obj, Mapping) else type(obj).__name__
        raise CheckpointError(f"{path} holds no 'state_dict' of tensors (found {keys})")
    bad = [k for k, v in state.items() if not isinstance(v, torch.Tensor)]
    if bad:
        raise CheckpointError(f"{path}: state_dict entries are not tensors: {bad[:5]}")
    return {_strip_prefix(k): v for k, v in state.items()}, sorted(placeholders), obj


def _strip_prefix(key: str) -> str:
    # Per key, unlike the official helper, which decides on the first key only.
    return key[len("module."):] if key.startswith("module.") else key


def _unsupported_global(exc: Exception) -> str | None:
    match = re.search(r"(?:Unsupported global: GLOBAL|unsupported GLOBAL) ([\w.]+)", str(exc))
    return match.group(1) if match else None


def _first_line(exc: Exception) -> str:
    return (str(exc).strip().splitlines() or [""])[0][:200]


#: Standard ViT widths and their head counts (64-dim heads): ViT-Ti, ViT-S, ViT-B (the released EgoVLPv2), ViT-L.
VIT_HEADS = {192: 3, 384: 6, 768: 12, 1024: 16}
_VIT_SIZES = {"tiny": 192, "small": 384, "base": 768, "large": 1024}


def recorded_arch_config(obj: Any) -> str | None:
    """``config['arch']['args']['video_params']['arch_config']`` (e.g. ``base_patch16_224``) of an official file,
    read from its inert metadata placeholder (the official ``ConfigParser`` keeps the JSON config as ``_config``)."""
    node = obj.get("config") if isinstance(obj, Mapping) else None
    for _ in range(3):  # placeholder -> its pickled state / arguments -> the config mapping
        if isinstance(node, InertObject):
            node = getattr(node, "state", None) or (node.kwargs or (node.args[0] if node.args else None))
        if isinstance(node, Mapping) and "_config" in node:
            node = node["_config"]
    for key in ("arch", "args", "video_params", "arch_config"):
        if not isinstance(node, Mapping):
            return None
        node = node.get(key)
    return node if isinstance(node, str) else None


def official_num_heads(width: int, num_heads: int | None = None, arch_config: str | None = None,
                       source: str = "the checkpoint") -> tuple[int, str]:
    """The head count of an official file and where it came from (see the module doc); an error when it would be
    a guess."""
    if num_heads is not None:
        return int(num_heads), "given (num_heads)"
    size = arch_config.split("_")[0] if arch_config else None
    if size in _VIT_SIZES and _VIT_SIZES[size] == width:
        return VIT_HEADS[width], f"recorded in the file (video_params.arch_config {arch_config!r})"
    if width in VIT_HEADS:
        return VIT_HEADS[width], f"standard ViT width {width} (64-dim heads)"
    hint = f" ({width // 64} if its heads are 64-dim)" if width % 64 == 0 and width >= 128 else ""
    raise CheckpointError(
        f"{source}: the number of attention heads cannot be read from the file (width {width} is not a standard "
        f"ViT width; shapes do not record heads): pass it explicitly{hint}, `egokit convert FILE OUT --num-heads N` "
        "(Python: load_model(FILE, num_heads=N); egokit eval/train: model.num_heads=N)"
    )


def config_from_state_dict(state: Mapping[str, torch.Tensor], num_heads: int | None = None, *,
                           arch_config: str | None = None, source: str = "the checkpoint") -> EgoVLPv2Config:
    """Infer the architecture from tensor shapes; the head count, which shapes cannot tell, comes from
    :func:`official_num_heads` (``num_heads``, the file's ``arch_config``, or a standard ViT width)."""

    def shape(key: str) -> tuple[int, ...]:
        if key not in state:
            raise CheckpointError(f"checkpoint lacks {key!r}; it does not look like an EgoVLPv2 model")
        return tuple(state[key].shape)

    width = shape("video_model.pos_embed")[2]
    n_patches = shape("video_model.pos_embed")[1] - 1
    patch = shape("video_model.patch_embed.proj.weight")[2]
    side = int(round(n_patches ** 0.5))
    if side * side != n_patches:
        raise CheckpointError(f"video_model.pos_embed has {n_patches} patch positions, not a square grid")
    depth = 1 + max(int(k.split(".")[2]) for k in state if k.startswith("video_model.blocks."))
    text_depth = 1 + max(int(k.split(".")[3]) for k in state if k.startswith("text_model.encoder.layer."))
    if text_depth != depth:
        raise CheckpointError(f"video depth {depth} != text depth {text_depth}; EgoVLPv2 needs equal depths")
    fused = sum(1 for k in state if k.startswith("text_model.encoder.layer.") and k.endswith(".alpha_t2i"))
    if "txt_proj.0.weight" in state:
        projection, proj_dim = "minimal", shape("txt_proj.0.weight")[0]
    elif "txt_proj.1.weight" in state:
        projection, proj_dim = "small", shape("txt_proj.1.weight")[0]
    else:
        raise CheckpointError("checkpoint has neither a 'minimal' (txt_proj.0) nor a 'small' (txt_proj.1) projection")
    frames = shape("video_model.temporal_embed")[1]
    vocab = shape("text_model.embeddings.word_embeddings.weight")[0]
    cfg = EgoVLPv2Config(
        width=width,
        num_heads=official_num_heads(width, num_heads, arch_config, source)[0],
        depth=depth,
        fused_layers=fused,
        mlp_ratio=shape("video_model.blocks.0.mlp.fc1.weight")[0] / width,
        image_size=side * patch,
        patch_size=patch,
        num_frames=frames,
        vocab_size=vocab,
        max_text_positions=shape("text_model.embeddings.position_embeddings.weight")[0],
        type_vocab_size=shape("text_model.embeddings.token_type_embeddings.weight")[0],
        text_intermediate_size=shape("text_model.encoder.layer.0.intermediate.dense.weight")[0],
        projection=projection,
        projection_dim=proj_dim,
        mlm_head="mlm_score.decoder.weight" in state,
        vtm_head="itm_score.fc.weight" in state,
    )
    return cfg.replace(num_frames=frames, image_size=side * patch)


# ---------------------------------------------------------------------------------------------- weights -> model
def load_state_dict_into(model: EgoVLPv2, state: Mapping[str, torch.Tensor], source: str,
                         fusion_only: frozenset[str] = frozenset()) -> LoadReport:
    """Load with temporal-embedding adaptation; shape mismatches are errors, missing/unexpected keys reported.

    ``fusion_only`` names the keys a dual-mode model leaves out on purpose: they are reported as ``dropped`` and
    kept (on the CPU) in ``model.detached_fusion``, so that :func:`save_pretrained` writes the complete model."""
    state = dict(state)
    report = LoadReport(source=source)
    if fusion_only:
        model.detached_fusion = {k: state.pop(k) for k in sorted(fusion_only & state.keys())}
        report.dropped = list(model.detached_fusion)
    key = "video_model.temporal_embed"
    if key in state and state[key].shape[1] != model.config.num_frames:
        before = state[key].shape[1]
        state[key] = inflate_temporal_embed(state[key], model.config.num_frames)
        report.inflated = f"temporal_embed {before} -> {model.config.num_frames} frames"
    own = model.state_dict()
    wrong = [f"{k}: checkpoint {tuple(v.shape)} vs model {tuple(own[k].shape)}"
             for k, v in state.items() if k in own and own[k].shape != v.shape]
    if wrong:
        raise CheckpointError(f"{source}: {len(wrong)} tensors do not fit the model, e.g. " + "; ".join(wrong[:4]))
    result = model.load_state_dict(state, strict=False)
    report.missing, report.unexpected = list(result.missing_keys), list(result.unexpected_keys)
    return report


def load_official(path: str | os.PathLike, *, mode: str = "full", **overrides: Any) -> EgoVLPv2:
    """Build an EgoVLPv2 from an official ``.pth`` (architecture read from shapes, ``overrides`` applied)."""
    state, placeholders, obj = _read_official(path)
    arch_config, num_heads = recorded_arch_config(obj), overrides.pop("num_heads", None)
    cfg = config_from_state_dict(state, num_heads, arch_config=arch_config, source=str(path))
    if overrides:
        cfg = cfg.replace(**overrides)
    model, fusion_only = _build(cfg, mode)
    report = load_state_dict_into(model, state, str(path), fusion_only)
    report.sha256, report.placeholders = file_sha256(path), placeholders
    report.num_heads = official_num_heads(cfg.width, num_heads, arch_config)[1]
    model.load_report = report
    return model


MODES = ("full", "dual")


def dual_config(cfg: EgoVLPv2Config) -> EgoVLPv2Config:
    """The same towers without what only fusion mode uses: no fused layers (their cross-attention and gates), no
    MLM/VTM heads. A dual-mode forward of this model equals the full model's exactly: fused layers skip their
    cross-attention when no other tower is passed, and the fusion CLS, norm, transforms and poolers are unused."""
    return cfg.replace(fused_layers=0, mlm_head=False, vtm_head=False)


def _build(cfg: EgoVLPv2Config, mode: str) -> tuple[EgoVLPv2, frozenset[str]]:
    """The model to load weights into, and the fusion-only key names it leaves out (empty in full mode)."""
    if mode not in MODES:
        raise CheckpointError(f"unknown model mode {mode!r}; expected one of {MODES}")
    if mode == "full":
        return EgoVLPv2(cfg), frozenset()
    with torch.device("meta"):  # key names only: no memory for the full model
        full_keys = set(EgoVLPv2(cfg).state_dict())
    model = EgoVLPv2(dual_config(cfg))
    model.full_config = cfg
    return model, frozenset(full_keys - set(model.state_dict()))


# ---------------------------------------------------------------------------------------------- egokit folders
def save_pretrained(model: EgoVLPv2, folder: str | os.PathLike, tokenizer: Any = None, card: str | None = None) -> Path:
    """Write ``config.json``, ``model.safetensors``, the tokenizer and a model card; each file atomically.

    A model loaded in dual mode is written complete: its fusion-only weights (kept on the CPU when it was loaded,
    never trained in dual mode) are written back and ``config.json`` describes the full architecture, so the
    folder still works in fusion mode."""
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    config = model.config
    detached = getattr(model, "detached_fusion", None)
    if detached is not None:
        full = model.full_config
        tensors.update({k: v.contiguous() for k, v in detached.items()})
        config = config.replace(fused_layers=full.fused_layers, mlm_head=full.mlm_head, vtm_head=full.vtm_head)
    with atomic_path(folder / WEIGHTS_NAME) as tmp:
        save_file(tensors, str(tmp), metadata={"format": "pt", "egokit_format": str(FORMAT_VERSION)})
    cfg = config.to_dict()
    if tokenizer is not None:
        cfg["preprocess"]["tokenizer"] = "bundled"
        with atomic_dir(folder / TOKENIZER_DIR) as tmp:
            tokenizer.save_pretrained(str(tmp))
    meta = {"architecture": "egovlpv2", "egokit_format": FORMAT_VERSION, "model": cfg}
    write_text_atomic(folder / CONFIG_NAME, json.dumps(meta, indent=2) + "\n")
    write_text_atomic(folder / "README.md", card or default_model_card(model))
    return folder


def save_pretrained_atomic(model: EgoVLPv2, folder: str | os.PathLike, tokenizer: Any = None,
                           card: str | None = None) -> Path:
    """:func:`save_pretrained` into a sibling temporary folder, then swap it in: ``folder`` is never half-written
    (use it for "best so far" checkpoints that are overwritten during training)."""
    with atomic_dir(folder) as tmp:
        save_pretrained(model, tmp, tokenizer=tokenizer, card=card)
    return Path(folder)


#: ``config.json`` fields that define the weights, the forward pass and the inputs. A file without one of them is
#: an error naming the field, never the base model's default. Options that only matter when training from scratch
#: (dropout, init scales, ``time_init``) or at run time (``attention``, ``gradient_checkpointing``) may be absent.
REQUIRED_CONFIG_FIELDS = ("width", "num_heads", "depth", "fused_layers", "mlp_ratio", "image_size", "patch_size",
                          "num_frames", "vocab_size", "max_text_positions", "type_vocab_size", "pad_token_id",
                          "text_intermediate_size", "video_ln_eps", "fusion_ln_eps", "text_ln_eps", "mlm_ln_eps",
                          "projection", "projection_dim", "vtm_head", "mlm_head", "preprocess")
REQUIRED_PREPROCESS_FIELDS = ("num_frames", "image_size", "mean", "std", "tokenizer", "max_text_length")


def read_config_json(path: str | os.PathLike) -> EgoVLPv2Config:
    """The model configuration of an egokit folder's ``config.json``; every error names the file and field."""
    path = Path(path)
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise CheckpointError(f"{path}: not UTF-8 text (byte {exc.start}); the file is damaged") from None
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{path}: invalid JSON ({exc}); the file is damaged") from None
    redo = "write the folder again with `egokit convert` or save_pretrained()"
    if not isinstance(meta, dict):
        raise CheckpointError(f"{path}: expected a JSON object with 'architecture' and 'model'; {redo}")
    if meta.get("architecture") != "egovlpv2":
        found = "is missing" if "architecture" not in meta else f"is {meta['architecture']!r}"
        raise CheckpointError(f"{path}: field 'architecture' {found}, expected 'egovlpv2'; {redo}")
    model = meta.get("model")
    if not isinstance(model, dict):
        raise CheckpointError(f"{path}: field 'model' (the architecture) is missing or not an object; {redo}")
    missing = [f"model.{k}" for k in REQUIRED_CONFIG_FIELDS if k not in model]
    if isinstance(model.get("preprocess"), dict):
        missing += [f"model.preprocess.{k}" for k in REQUIRED_PREPROCESS_FIELDS if k not in model["preprocess"]]
    elif "preprocess" in model:
        missing.append("model.preprocess (not an object)")
    if missing:
        more = f" (and {', '.join(missing[1:])})" if len(missing) > 1 else ""
        raise CheckpointError(f"{path}: architecture field {missing[0]} is missing{more}; egokit never fills it with a "
                              f"default: add the value the weights were trained with, or {redo}")
    try:
        return EgoVLPv2Config.from_dict(model)
    except (ConfigError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{path}: invalid model configuration ({exc})") from None


def load_pretrained(folder: str | os.PathLike, *, mode: str = "full", **overrides: Any) -> EgoVLPv2:
    from safetensors.torch import load_file

    folder = Path(folder)
    cfg_path, weights = folder / CONFIG_NAME, folder / WEIGHTS_NAME
    for needed in (cfg_path, weights):
        if not needed.is_file():
            raise CheckpointError(f"{folder} is not an egokit checkpoint folder: {needed.name} is missing")
    cfg = read_config_json(cfg_path)
    if overrides:
        cfg = cfg.replace(**overrides)
    try:
        state = load_file(str(weights))
    except Exception as exc:  # safetensors raises its own error types for truncated headers/data
        raise CheckpointError(f"{weights} cannot be read ({_first_line(exc)}); the file may be truncated") from None
    model, fusion_only = _build(cfg, mode)
    report = load_state_dict_into(model, state, str(folder), fusion_only)
    report.sha256 = file_sha256(weights)
    model.load_report = report
    return model


def default_model_card(model: EgoVLPv2) -> str:
    c = model.config
    n = sum(p.numel() for p in model.parameters())
    return (
        "---\nlibrary_name: egokit\ntags: [video-text, egocentric, egovlpv2]\n---\n\n"
        "# EgoVLPv2 checkpoint (egokit format)\n\n"
        f"- parameters: {n:,}\n- width {c.width}, depth {c.depth}, fused layers {c.fused_layers}, heads {c.num_heads}\n"
        f"- projection: {c.projection} ({c.projection_dim}-d)\n"
        f"- input: {c.preprocess.num_frames} frames at {c.preprocess.image_size} px, mean {c.preprocess.mean}, "
        f"std {c.preprocess.std}; text up to {c.preprocess.max_text_length} tokens ({c.preprocess.tokenizer})\n\n"
        "```python\nimport egokit\nmodel = egokit.load_model('PATH_OR_hub:ORG/NAME')\n```\n"
    )


# ---------------------------------------------------------------------------------------------- hub + dispatch
def resolve_source(source: str | os.PathLike) -> Path:
    """``hub:org/name[@rev]`` -> local snapshot folder; anything else -> an existing local path."""
    text = str(source)
    if text.startswith("hub:"):
        repo, _, revision = text[4:].partition("@")
        if not re.fullmatch(r"[\w.-]+/[\w.-]+", repo):
            raise CheckpointError(f"bad hub source {text!r}; expected hub:org/name or hub:org/name@revision")
        from huggingface_hub import snapshot_download
        from huggingface_hub.errors import LocalEntryNotFoundError

        try:
            return Path(snapshot_download(repo_id=repo, revision=revision or None))
        except LocalEntryNotFoundError:
            raise CheckpointError(
                f"{text}: not in the local Hugging Face cache and the hub cannot be reached "
                "(offline?); download it on a connected machine or pass a local folder"
            ) from None
        except Exception as exc:
            raise CheckpointError(f"{text}: cannot resolve on the hub ({_first_line(exc)})") from None
    path = Path(text).expanduser()
    if not path.exists():
        raise CheckpointError(f"checkpoint not found: {path}")
    return path


def load_model(source: str | os.PathLike, *, mode: str = "full", **overrides: Any) -> EgoVLPv2:
    """Load an EgoVLPv2 model from an official ``.pth``, an egokit folder or ``hub:org/name[@revision]``.

    ``overrides`` change the architecture on load, e.g. ``num_frames=16`` (temporal embeddings are interpolated as
    the official loader does), ``num_heads`` (official files cannot record it), ``attention='sdpa'``.
    ``mode="dual"`` builds only what dual mode runs (see :func:`dual_config`): the fusion-only weights stay on the
    CPU (``model.load_report.dropped``), so the model takes less memory and does no fusion work.
    The returned model is in eval mode; ``model.load_report`` says what was loaded.
    """
    path = resolve_source(source)
    load = load_pretrained if path.is_dir() else load_official
    model = load(path, mode=mode, **overrides)
    model.load_report.source = str(source)
    model.source_path = path
    return model.eval()


def file_sha256(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
