"""The modnet-edge TensorRT engine file: a length-prefixed JSON header, then TensorRT's serialized plan.

Why a header and not only the sidecar manifest: a TensorRT plan is not portable (it is tied to the
TensorRT version and the GPU it was built on) and deserialising a foreign plan fails with a terse log
line at best.  The header carries the artifact metadata (preprocessing, provenance, profile) *and* the
build environment, so a backend can refuse a mismatching engine with a clear message before handing
the bytes to TensorRT, even when the manifest was not copied along.  The manifest is still written
beside the file, as for every artifact.

Layout::

    MAGIC (16 bytes) | header length (uint64, little endian) | header (UTF-8 JSON) | plan bytes

A file without the magic is treated as a raw plan (e.g. written by ``trtexec --saveEngine``); it has
no embedded metadata.  :func:`plan_bytes` gives the raw plan of either, for tools like ``trtexec
--loadEngine`` that do not know the header.

Nothing here imports TensorRT: reading, writing and the compatibility verdict are plain Python, so
they are tested on every machine.
"""

from __future__ import annotations

import hashlib
import struct
from pathlib import Path
from typing import Any

from modnet_edge.core.files import atomic_output
from modnet_edge.core.metadata import ArtifactMetadata
from modnet_edge.core.errors import ArtifactError, MetadataError

MAGIC = b"MODNETEDGE-TRT\x00\x01"
_LEN = struct.Struct("<Q")
MAX_HEADER_BYTES = 16 << 20  # a header this large means a corrupt length field


class EngineMismatchError(ArtifactError):
    """An engine was built for another TensorRT version or GPU (TensorRT plans are not portable)."""


TEMP_SUFFIX = None


def write(plan: bytes, meta: ArtifactMetadata, path: Path) -> None:
    """Write header + plan to ``path``; ``meta.extra['tensorrt']`` gets the plan's size and sha256."""
    if not plan:
        raise ArtifactError("refusing to write an empty TensorRT plan", path)
    info = dict(meta.extra.get("tensorrt") or {})
    info.update(plan_bytes=len(plan), plan_sha256=hashlib.sha256(plan).hexdigest())
    meta.extra["tensorrt"] = info
    header = meta.to_json().encode("utf-8")
    with open(path, "wb") as fh:
        fh.write(MAGIC)
        fh.write(_LEN.pack(len(header)))
        fh.write(header)
        fh.write(plan)


def write_engine_file(path: str | Path, plan: bytes, meta: ArtifactMetadata) -> Path:
    """Write header + plan and the manifest beside, as one atomic pair."""
    if not plan:
        raise ArtifactError("refusing to write an empty TensorRT plan", path)
    with atomic_output(path, manifest=lambda: meta) as tmp:
        write(plan, meta, tmp)
    return Path(path)


def read(path: Path) -> ArtifactMetadata | None:
    return read_engine_file(path)[0]


def read_engine_file(path: str | Path) -> tuple[ArtifactMetadata | None, bytes]:
    """(embedded metadata or None for a raw plan, plan bytes); truncation and tampering are refused."""
    path = Path(path)
    if not path.is_file():
        raise ArtifactError("TensorRT engine file does not exist", path)
    data = path.read_bytes()
    if not data:
        raise ArtifactError("TensorRT engine file is empty (0 bytes)", path)
    if not data.startswith(MAGIC):
        return None, data
    start = len(MAGIC) + _LEN.size
    if len(data) < start:
        raise ArtifactError("engine header is truncated", path)
    (length,) = _LEN.unpack_from(data, len(MAGIC))
    if length > MAX_HEADER_BYTES or start + length > len(data):
        raise ArtifactError(f"engine header claims {length} bytes but the file has {len(data) - start} after "
                            "the length field (truncated or corrupt)", path)
    try:
        meta = ArtifactMetadata.from_json(data[start:start + length], path)
    except MetadataError as exc:
        raise MetadataError(f"engine header is not valid modnet-edge metadata: {exc}", path) from None
    plan = data[start + length:]
    info = meta.extra.get("tensorrt") or {}
    if not plan:
        raise ArtifactError("engine file has a header but no TensorRT plan (truncated)", path)
    if "plan_bytes" in info and info["plan_bytes"] != len(plan):
        raise ArtifactError(f"TensorRT plan is {len(plan)} bytes, the header says {info['plan_bytes']} "
                            "(truncated or modified)", path)
    if "plan_sha256" in info and info["plan_sha256"] != hashlib.sha256(plan).hexdigest():
        raise ArtifactError("TensorRT plan does not match the sha256 in its header (modified)", path)
    return meta, plan


def plan_bytes(path: str | Path) -> bytes:
    """The raw TensorRT plan inside ``path`` (for ``trtexec --loadEngine`` or other TensorRT tools)."""
    return read_engine_file(path)[1]


def export_raw_plan(path: str | Path, output: str | Path) -> Path:
    """Write the bare plan of a modnet-edge engine to ``output`` (atomically)."""
    plan = plan_bytes(path)
    with atomic_output(output) as tmp:
        Path(tmp).write_bytes(plan)
    return Path(output)


# --------------------------------------------------------------------------------------------------
# Build environment and the compatibility verdict
# --------------------------------------------------------------------------------------------------
def environment_record(tensorrt_version: str, gpu_name: str, compute_capability: tuple[int, int] | str,
                       **extra: Any) -> dict[str, Any]:
    """What an engine records about where it was built (and what a backend compares it with)."""
    cc = compute_capability if isinstance(compute_capability, str) else "{}.{}".format(*compute_capability)
    return {"tensorrt_version": str(tensorrt_version), "gpu_name": str(gpu_name), "compute_capability": cc,
            **extra}


def check_compatible(built: dict[str, Any], here: dict[str, Any], where: str | Path | None = None,
                     allow_other_gpu: bool = False) -> list[str]:
    """Refuse an engine built for another TensorRT version or GPU; returns warnings that do not refuse.

    ``built``: the engine's ``extra['tensorrt']`` record; ``here``: :func:`environment_record` of the
    running machine.  Rules (TensorRT's own portability rules, checked before TensorRT sees the plan):

    - TensorRT version must match exactly, unless the engine was built version-compatible (then the
      runtime must be the same major version or newer).
    - Compute capability must match, unless built hardware-compatible ('ampere+': any >= 8.0).
    - A different GPU model of the same compute capability is refused too (TensorRT documents it as
      unsupported and it can fail or run slowly) unless ``allow_other_gpu``; then it is a warning.
    """
    missing = [k for k in ("tensorrt_version", "gpu_name", "compute_capability") if not built.get(k)]
    if missing:
        raise MetadataError(f"engine metadata lacks its build environment {missing}; rebuild it with "
                            "modnet-edge", where)
    warnings: list[str] = []
    b_ver, h_ver = str(built["tensorrt_version"]), str(here["tensorrt_version"])
    if b_ver != h_ver:
        if built.get("version_compatible") and _version(h_ver) >= _version(b_ver) and \
                _version(h_ver)[0] == _version(b_ver)[0]:
            warnings.append(f"engine built with TensorRT {b_ver} (version-compatible) runs on {h_ver}")
        else:
            raise EngineMismatchError(
                f"engine was built with TensorRT {b_ver} but this machine has TensorRT {h_ver}; TensorRT "
                "engines only load in the version that built them. Rebuild it here from the TensorRT-ready "
                "ONNX (modnet-edge tensorrt-build MODEL.trt.onnx) or install TensorRT " + b_ver, where)
    b_cc, h_cc = str(built["compute_capability"]), str(here["compute_capability"])
    hw = str(built.get("hardware_compatibility") or "none").lower()
    if b_cc != h_cc:
        if hw in ("ampere+", "ampere_plus") and _version(h_cc) >= (8, 0):
            warnings.append(f"hardware-compatible engine built on sm_{b_cc} runs on sm_{h_cc}")
        else:
            raise EngineMismatchError(
                f"engine was built for {built['gpu_name']} (compute capability {b_cc}) but this GPU is "
                f"{here['gpu_name']} (compute capability {h_cc}); TensorRT engines are specific to the GPU "
                "architecture. Rebuild it on this machine from the TensorRT-ready ONNX", where)
    elif built["gpu_name"] != here["gpu_name"]:
        msg = (f"engine was built on {built['gpu_name']} and this GPU is {here['gpu_name']} (same compute "
               f"capability {h_cc}); TensorRT does not support moving engines between GPU models")
        if not allow_other_gpu:
            raise EngineMismatchError(msg + "; rebuild here, or pass allow_other_gpu=True to try anyway", where)
        warnings.append(msg)
    return warnings


def _version(text: str) -> tuple[int, ...]:
    out = []
    for part in str(text).split("."):
        digits = "".join(ch for ch in part if ch.isdigit())
        out.append(int(digits) if digits else 0)
    return tuple(out)
