"""Writing artifacts safely: temporary file then rename, artifact and manifest as one pair, stale
temporaries cleaned, nothing of the user's replaced; and reading a manifest back."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

from modnet_edge.core.errors import ArtifactError, MetadataError
from modnet_edge.core.metadata import METADATA_KEY, ArtifactMetadata, seal_artifact, verify_integrity

def manifest_path(artifact: str | Path) -> Path:
    """Where the manifest of ``artifact`` lives: ``model.onnx`` -> ``model.onnx.manifest.json``."""
    p = Path(artifact)
    return p.with_name(p.name + ".manifest.json")


# Fields that must agree between the embedded metadata and the manifest beside the file.
_CONSISTENT_FIELDS = ("format", "precision", "preprocessing", "model", "input_name", "output_name", "source")


def pending_manifest_path(artifact: str | Path) -> Path:
    """Where a manifest waits while its artifact is being put in place (see :func:`atomic_output`)."""
    m = manifest_path(artifact)
    return m.with_name(m.name + ".pending")


def _manifest_text(meta: ArtifactMetadata, content: Path, name: str) -> str:
    record = meta.to_dict()
    record["artifact"] = {"file": name, "bytes": path_size(content), "sha256": sha256_path(content)}
    return json.dumps(record, indent=2, sort_keys=True) + "\n"


def write_manifest(artifact: str | Path, meta: ArtifactMetadata) -> Path:
    """Write the manifest beside ``artifact``: the metadata plus the artifact's size and sha256.

    Exporters pass ``manifest=`` to :func:`atomic_output` instead, so artifact and manifest change as a pair."""
    artifact = Path(artifact)
    out = manifest_path(artifact)
    atomic_write_text(out, _manifest_text(meta, artifact, artifact.name))
    return out


def _adopt_pending_manifest(artifact: Path) -> None:
    """Finish a pair a killed writer left half-renamed: a pending manifest whose sha256 matches the
    artifact now in place describes it and becomes its manifest; one that does not is stale (the kill
    came before the artifact's rename) and is ignored -- the old pair is still whole."""
    pending = pending_manifest_path(artifact)
    if not pending.is_file() or not artifact.exists():
        return
    try:
        expected = (json.loads(pending.read_bytes()).get("artifact") or {}).get("sha256")
    except (OSError, ValueError, AttributeError):
        return
    if expected == sha256_path(artifact):
        try:
            os.replace(pending, manifest_path(artifact))
        except OSError:
            pass  # a concurrent writer finished it first


def read_manifest(artifact: str | Path) -> ArtifactMetadata | None:
    """The manifest's metadata, None when no manifest exists; checks the artifact's sha256 against it."""
    _adopt_pending_manifest(Path(artifact))
    mpath = manifest_path(artifact)
    if not mpath.exists():
        return None
    meta = ArtifactMetadata.from_json(mpath.read_bytes(), mpath)
    record = json.loads(mpath.read_bytes())
    expected = (record.get("artifact") or {}).get("sha256")
    if expected and expected != sha256_path(artifact):
        raise MetadataError(f"artifact does not match its manifest {mpath.name} (sha256 differs): "
                            "it was modified or replaced after export", artifact)
    return meta


def reconcile_metadata(artifact: str | Path, embedded: ArtifactMetadata | None) -> ArtifactMetadata | None:
    """Combine embedded metadata and manifest; refuse when both exist and disagree, or when the artifact
    no longer matches the integrity record in its embedded metadata."""
    if embedded is not None:
        verify_integrity(artifact, embedded)
    manifest = read_manifest(artifact)
    if embedded is None or manifest is None:
        return embedded or manifest
    a, b = embedded.to_dict(), manifest.to_dict()
    diff = [k for k in _CONSISTENT_FIELDS if a.get(k) != b.get(k)]
    if diff:
        raise MetadataError(f"embedded metadata and manifest disagree on {diff}", artifact)
    return embedded



# --------------------------------------------------------------------------------------------------
# Small file helpers shared by every writer
# --------------------------------------------------------------------------------------------------
TEMP_MARK = ".modnet-edge-tmp"  # temporary outputs: .<target>.<pid>.<random>.modnet-edge-tmp[<suffix>]


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def remove_stale_temporaries(folder: str | Path) -> list[Path]:
    """Remove temporary outputs in ``folder`` left by writers that died (killed mid-write): recognised by
    their name, and only when the process that made them is gone (a live concurrent writer is left alone)."""
    import shutil

    removed = []
    folder = Path(folder)
    if not folder.is_dir():
        return removed
    for entry in folder.iterdir():
        if not (entry.name.startswith(".") and TEMP_MARK in entry.name):
            continue
        parts = entry.name[: entry.name.rindex(TEMP_MARK)].rsplit(".", 2)
        if len(parts) != 3 or not parts[1].isdigit() or _pid_alive(int(parts[1])):
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)
        removed.append(entry)
    return removed


def is_our_artifact(path: str | Path) -> bool:
    """Whether an existing file at an output path is an artifact modnet-edge wrote (and so ours to
    replace): its manifest names it, or its bytes hold our embedded metadata."""
    path = Path(path)
    if _replaceable_folder(path):
        return True
    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except OSError:
        return False
    # the metadata entry's name (ONNX metadata_props, TFLite metadata) or our JSON (engine header)
    return METADATA_KEY.encode() in data or b'"toolkit_version"' in data


def _replaceable_folder(path: Path) -> bool:
    """A folder at an output path may be replaced only when it is an artifact of ours (a Core ML
    .mlpackage with our manifest beside it naming it); anything else is the user's and is kept."""
    mpath = manifest_path(path)
    if not mpath.is_file():
        return False
    try:
        record = json.loads(mpath.read_bytes())
    except (OSError, ValueError):
        return False
    return isinstance(record, dict) and (record.get("artifact") or {}).get("file") == path.name


def check_output_path(path: str | Path) -> Path:
    """Refuse, before any work, an output path that would destroy something of the user's: an existing
    folder that is not an artifact of ours, or a path below a regular file."""
    path = Path(path)
    if path.is_dir() and not path.is_symlink() and not _replaceable_folder(path):
        raise ArtifactError("output path is an existing folder (not an artifact written by modnet-edge); "
                            "refusing to replace it: choose a file name", path)
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise ArtifactError(f"cannot write here: {parent} is a file, not a folder", path)
            break
    return path


@contextlib.contextmanager
def atomic_output(path: str | Path, suffix: str | None = None,
                  manifest: Callable[[], ArtifactMetadata] | None = None, seal: bool = True) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only if the block succeeds.

    An interrupted export or checkpoint write therefore never leaves a half-written file behind; a
    writer killed outright leaves a temporary that the next write to the folder removes.  An existing
    folder at ``path`` is never deleted unless it is an artifact of ours (see ``_replaceable_folder``).

    ``manifest`` (an artifact's metadata, asked for once the block has written the file) makes artifact
    and manifest change as one pair: the new manifest is written beside as ``.pending`` first, then the
    artifact renamed, then the manifest renamed.  Killed at any instant, readers see the whole old pair
    or the whole new one (:func:`read_manifest` adopts a pending manifest that matches the artifact).
    With ``seal`` the artifact (which embeds ``manifest()``'s JSON) first gets its integrity record.
    """
    import shutil

    path = check_output_path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise ArtifactError("cannot write here: a parent of the output path is a file", path) from None
    except PermissionError:
        raise ArtifactError("cannot write here: permission denied", path) from None
    remove_stale_temporaries(path.parent)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}.", suffix=TEMP_MARK + (suffix or ""),
                                   dir=path.parent)
    except PermissionError:
        raise ArtifactError("cannot write here: permission denied", path) from None
    os.close(fd)
    tmp_path = Path(tmp)
    tmp_path.unlink()  # writers create it themselves (some refuse to overwrite)
    try:
        yield tmp_path
        if not tmp_path.exists():
            raise RuntimeError(f"writer produced no file at {tmp_path}")
        pending = pending_manifest_path(path)
        if manifest is not None:
            meta = manifest()
            if seal:
                seal_artifact(tmp_path, meta)
            atomic_write_text(pending, _manifest_text(meta, tmp_path, path.name))
        old = None
        if path.is_dir() and not path.is_symlink():  # our own artifact folder (checked above): set aside,
            old = tmp_path.with_name(tmp_path.name + ".old")  # a rename, so the gap without it is tiny
            os.replace(path, old)
        os.replace(tmp_path, path)
        if manifest is not None:
            os.replace(pending, manifest_path(path))
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        if tmp_path.exists():
            if tmp_path.is_dir():
                shutil.rmtree(tmp_path, ignore_errors=True)
            else:
                tmp_path.unlink()


def atomic_write_text(path: str | Path, text: str) -> None:
    with atomic_output(path) as tmp:
        tmp.write_text(text)


def sha256_path(path: str | Path) -> str:
    """sha256 of a file, or of a directory's files (names and contents, in sorted order)."""
    path = Path(path)
    h = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for f in files:
        if path.is_dir():
            h.update(str(f.relative_to(path)).encode())
        with open(f, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()


def path_size(path: str | Path) -> int:
    path = Path(path)
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return path.stat().st_size
