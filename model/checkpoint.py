"""Checkpoints: the project's own format, the official MODNet files, and strict loading of both.

A checkpoint is data, never code: everything is read with ``torch.load(weights_only=True)`` and a file
that needs arbitrary unpickling is refused.  Loading is strict: a checkpoint of another architecture is
refused with its missing, unexpected and mis-shaped keys listed.

Own format (a plain dict, so ``weights_only`` can read it)::

    {"modnet_edge_checkpoint": 1, "model_config": {...}, "state_dict": {...},
     "preprocessing": {...}, "provenance": {"weights_sha256": ..., "created": ..., ...},
     "training_state": {...}  # optional: optimizer, scheduler, RNG, epoch, step (for exact resume)}
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import io
import pickle
import platform
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from modnet_edge.core import VERSION, PreprocessSpec, atomic_output, sha256_path
from modnet_edge.core.errors import CheckpointError

from modnet_edge.model.network import MODNet, ModelConfig, build_modnet, count_parameters

FORMAT_KEY = "modnet_edge_checkpoint"
FORMAT_VERSION = 1


@dataclass
class Checkpoint:
    """A checkpoint read from disk, already remapped to this implementation's keys."""

    path: Path | None
    kind: str  # "modnet-edge" | "official" | "random-init" | "builtin" (weights shipped in the package)
    model_config: ModelConfig
    state_dict: dict[str, torch.Tensor]
    preprocessing: PreprocessSpec
    provenance: dict[str, Any] = field(default_factory=dict)
    training_state: dict[str, Any] | None = None
    file_sha256: str | None = None

    def source_info(self) -> dict[str, Any]:
        """What an exported artifact records about where its weights came from."""
        info = {"kind": self.kind, "weights_sha256": weights_sha256(self.state_dict)}
        if self.path is not None:
            info.update(checkpoint=self.path.name, checkpoint_sha256=self.file_sha256,
                        checkpoint_path=str(self.path.resolve()))
        for key in ("weights", "trained_on", "synthetic", "seed", "note"):
            if key in self.provenance:
                info[key] = self.provenance[key]
        return info


def remap_official_state_dict(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Map official MODNet checkpoint keys onto this implementation (the one place foreign keys change).

    The official files were saved from ``nn.DataParallel`` (every key starts with ``module.``) and
    hold the backbone twice, as ``backbone.*`` and ``lr_branch.backbone.*`` (one module registered in
    two places).  The prefix is stripped and the twin folded into ``backbone.*``; a twin that differs
    from its original means the file is not what it claims to be, and is refused.
    """
    out: dict[str, torch.Tensor] = {}
    for key, value in state_dict.items():
        out[key[len("module."):] if key.startswith("module.") else key] = value
    twin_prefix = "lr_branch.backbone."
    for key in [k for k in out if k.startswith(twin_prefix)]:
        twin = out.pop(key)
        own = "backbone." + key[len(twin_prefix):]
        if own not in out:
            out[own] = twin
        elif out[own].shape != twin.shape or not torch.equal(out[own], twin):
            raise CheckpointError(f"'{key}' differs from '{own}': the two copies of the shared backbone "
                                  "must be identical")
    return out


def to_official_state_dict(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The inverse of :func:`remap_official_state_dict`: keys as the official code saves them."""
    out = {f"module.{k}": v for k, v in state_dict.items()}
    out.update({f"module.lr_branch.{k}": v for k, v in state_dict.items() if k.startswith("backbone.")})
    return out


# digests of state dicts hashed in this process: (the very tensors, each one's version counter, digest).
# Holding the tensors keeps their identities from being reused; a tensor changed in place moves its
# version counter on, so a changed weight is hashed again.
_DIGESTS: list[tuple[tuple[Any, ...], tuple[int, ...], str]] = []


def weights_sha256(state_dict: Mapping[str, torch.Tensor]) -> str:
    """A content hash of the weights (names, shapes, dtypes, values), independent of file encoding.

    Remembered for the same tensor objects at the same versions: a pipeline asks for it a few hundred
    times (every export records it, every parity call checks its reference) and each hash reads 26 MB.
    """
    keys = sorted(state_dict)
    tensors = tuple(state_dict[k] for k in keys)
    stamp: tuple[Any, ...] | None = None
    if all(isinstance(t, torch.Tensor) for t in tensors):
        stamp = (tuple(keys), *tensors)
        versions = tuple(t._version for t in tensors)
        for held, held_versions, digest in _DIGESTS:
            if len(held) == len(stamp) and held[0] == stamp[0] and held_versions == versions \
                    and all(a is b for a, b in zip(held[1:], stamp[1:])):
                return digest
    h = hashlib.sha256()
    for key in keys:
        t = state_dict[key].detach().cpu().contiguous()
        h.update(f"{key}|{tuple(t.shape)}|{t.dtype}".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    digest = h.hexdigest()
    if stamp is not None:
        if len(_DIGESTS) >= 4:
            _DIGESTS.pop(0)
        _DIGESTS.append((stamp, versions, digest))
    return digest


def check_finite(state_dict: Mapping[str, torch.Tensor], where: Any) -> None:
    """Refuse weights holding NaN or infinity (a diverged or corrupted network): every matte it makes is
    NaN, which becomes an all-zero matte after clipping, silently."""
    broken = [k for k, v in state_dict.items()
              if isinstance(v, torch.Tensor) and v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if broken:
        raise CheckpointError(f"weights hold NaN or infinity ({len(broken)} tensors, e.g. {broken[0]}): a diverged "
                              "or corrupted network, refused", where)


def check_state_dict(model: torch.nn.Module, state_dict: Mapping[str, torch.Tensor], where: Any) -> None:
    """Refuse (listing every problem) unless ``state_dict`` matches ``model`` key for key and shape for shape."""
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(expected))
    misshaped = sorted(f"{k}: checkpoint {tuple(state_dict[k].shape)} vs model {tuple(expected[k].shape)}"
                       for k in set(expected) & set(state_dict)
                       if tuple(expected[k].shape) != tuple(state_dict[k].shape))
    if missing or unexpected or misshaped:
        def _fmt(title: str, items: list[str]) -> str:
            shown = items[:12] + ([f"... and {len(items) - 12} more"] if len(items) > 12 else [])
            return f"; {title} ({len(items)}): " + ", ".join(shown) if items else ""
        raise CheckpointError("checkpoint does not match the MODNet architecture"
                              + _fmt("missing keys", missing) + _fmt("unexpected keys", unexpected)
                              + _fmt("mis-shaped keys", misshaped), where)


def read_checkpoint(path: str | Path) -> Checkpoint:
    """Read an own or official checkpoint safely and remap it; does not build a model."""
    path = Path(path)
    if path.is_dir():
        raise CheckpointError("checkpoint path is a folder, not a checkpoint file", path)
    if not path.is_file():
        raise CheckpointError("checkpoint file does not exist" if not path.exists() else
                              "checkpoint path is not a regular file", path)
    if path.stat().st_size == 0:
        raise CheckpointError("checkpoint file is empty (0 bytes)", path)
    with open(path, "rb") as fh:
        head = fh.read(4)
    if head[:2] != b"PK" and head[:1] != b"\x80":  # torch.save writes a zip; legacy files are a pickle
        kind = "text (JSON?)" if head.lstrip()[:1] in (b"{", b"[") else "another kind of file"
        raise CheckpointError(f"not a PyTorch checkpoint: the file is {kind}, not a zip or pickle written by "
                              "torch.save", path)
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        # torch's message advises weights_only=False ("will likely succeed"): never repeat that advice
        detail = next((ln.strip() for ln in str(exc).splitlines() if "unsupported global" in ln.lower()), None)
        if detail:
            raise CheckpointError("refusing to load: the file contains pickled Python objects or code, not "
                                  f"plain weights (only weights_only-loadable checkpoints are accepted): {detail}",
                                  path) from None
        reason = next((ln.strip() for ln in reversed(str(exc).splitlines())
                       if ln.strip() and "weights_only" not in ln and "torch.load" not in ln), "unreadable pickle")
        raise CheckpointError(f"not a readable PyTorch checkpoint (corrupt or truncated?): {reason}", path) from None
    except (RuntimeError, EOFError, OSError, ValueError, KeyError) as exc:
        raise CheckpointError(f"not a readable PyTorch checkpoint (corrupt or truncated?): {exc}", path) from None
    file_sha = sha256_path(path)
    if isinstance(obj, Mapping) and FORMAT_KEY in obj:
        return _from_own(obj, path, file_sha)
    state = obj
    if isinstance(obj, Mapping):  # common wrappers around a bare state_dict
        for key in ("state_dict", "model", "model_state_dict"):
            if key in obj and isinstance(obj[key], Mapping):
                state = obj[key]
                break
    if not isinstance(state, Mapping) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError("not a MODNet checkpoint: expected a state_dict of tensors or a modnet-edge "
                              "checkpoint", path)
    try:
        sd = remap_official_state_dict(state)
    except CheckpointError as exc:
        raise CheckpointError(str(exc), path) from None
    check_finite(sd, path)
    config = ModelConfig(lr_block="e-aspp") if any(k.startswith("lr_branch.e_aspp.") for k in sd) else ModelConfig()
    return Checkpoint(path, "official", config, sd, PreprocessSpec(),
                      {"note": "state_dict in the official MODNet layout"}, None, file_sha)


def _from_own(obj: Mapping[str, Any], path: Path, file_sha: str) -> Checkpoint:
    version = obj.get(FORMAT_KEY)
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise CheckpointError(f"checkpoint format version {version!r} is not supported by this toolkit "
                              f"(reads <= {FORMAT_VERSION})", path)
    for key in ("model_config", "state_dict", "preprocessing"):
        if key not in obj:
            raise CheckpointError(f"modnet-edge checkpoint lacks '{key}'", path)
    try:
        config = ModelConfig.from_dict(dict(obj["model_config"]))
        spec = PreprocessSpec.from_dict(dict(obj["preprocessing"]))
    except Exception as exc:  # ValueError / MetadataError: both mean a bad header
        raise CheckpointError(f"invalid checkpoint header: {exc}", path) from None
    sd = dict(obj["state_dict"])
    provenance = dict(obj.get("provenance") or {})
    recorded = provenance.get("weights_sha256")
    if recorded and recorded != weights_sha256(sd):
        raise CheckpointError("weights do not match the sha256 recorded in the checkpoint (corrupted)", path)
    check_finite(sd, path)
    return Checkpoint(path, "modnet-edge", config, sd, spec, provenance, obj.get("training_state"), file_sha)


def save_checkpoint(path: str | Path, model: MODNet, *, preprocessing: PreprocessSpec | None = None,
                    provenance: Mapping[str, Any] | None = None,
                    training_state: Mapping[str, Any] | None = None) -> Path:
    """Write a modnet-edge checkpoint atomically (a crash mid-write leaves the old file intact)."""
    path = Path(path)
    sd = {k: v.detach().cpu().contiguous().clone() for k, v in _unwrap(model).state_dict().items()}
    broken = [k for k, v in sd.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if broken:  # a diverged network never reaches a checkpoint (its mattes would be NaN everywhere)
        raise CheckpointError(f"refusing to save non-finite weights ({len(broken)} tensors, e.g. {broken[0]}): "
                              "training diverged (lower lr, or check the data)", path)
    prov = {
        "weights_sha256": weights_sha256(sd),
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "toolkit_version": VERSION,
        "torch_version": str(torch.__version__),
        "host": platform.node(),
        "parameters": count_parameters(_unwrap(model)),
    }
    prov.update(provenance or {})
    payload: dict[str, Any] = {
        FORMAT_KEY: FORMAT_VERSION,
        "model_config": _unwrap(model).config.to_dict(),
        "state_dict": sd,
        "preprocessing": (preprocessing or PreprocessSpec()).to_dict(),
        "provenance": prov,
    }
    if training_state is not None:
        payload["training_state"] = dict(training_state)
    buffer = io.BytesIO()  # torch.save to a file turns a full disk into a RuntimeError; a plain write says ENOSPC
    torch.save(payload, buffer)
    with atomic_output(path) as tmp:
        tmp.write_bytes(buffer.getbuffer())
    return path


def build_from_checkpoint(ckpt: Checkpoint) -> MODNet:
    """Build the network a checkpoint describes and load it strictly, in inference mode."""
    model = build_modnet(ckpt.model_config)
    check_state_dict(model, ckpt.state_dict, ckpt.path or "checkpoint")
    model.load_state_dict(ckpt.state_dict, strict=True)
    return model.eval()


def random_checkpoint(seed: int = 0, config: ModelConfig | None = None) -> Checkpoint:
    """A seeded, randomly initialised network, for runs with no checkpoint at all (labelled as such)."""
    gen_state = torch.random.get_rng_state()
    try:
        torch.manual_seed(seed)
        model = build_modnet(config)
    finally:
        torch.random.set_rng_state(gen_state)
    sd = model.state_dict()
    return Checkpoint(None, "random-init", model.config, sd, PreprocessSpec(),
                      {"note": f"randomly initialised network (seed {seed}), not trained", "seed": seed})


def _unwrap(model: torch.nn.Module) -> MODNet:
    return model.module if hasattr(model, "module") else model  # type: ignore[return-value]
