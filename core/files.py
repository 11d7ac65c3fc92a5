"""Writing outputs without losing anything, and knowing which files are ours.

Every command that writes a file goes through :func:`atomic_output` (or :func:`append_output` for logs
that grow line by line), so three promises hold for all of them at once:

* **Ours or refused.**  A file or folder already at an output path is replaced only when our own
  record proves modnet-edge wrote it: the folder's record (:data:`RECORD_NAME`, one JSON line per file
  written there, with its sha256) or, for an artifact, its manifest naming it with its sha256.  A name,
  a suffix or bytes that merely look like ours prove nothing, and a file changed since we wrote it is
  the user's again.  Symbolic links at output paths are refused (replacing one would break the user's
  link, writing through it would write somewhere else).
* **Old or new, never half.**  The new file is written beside as a temporary and renamed into place;
  an artifact and its manifest change as one pair (a pending manifest, the artifact, the manifest); a
  folder artifact (a Core ML ``.mlpackage``, which no rename can swap atomically) is set aside as a
  backup first and removed only once the new one is in place.  Commits hold a lock on the folder, so
  two writers to one path end with one consistent pair, the later one's.
* **Recovered after a kill.**  Temporaries carry their writer's pid; the next reader or writer of the
  folder finishes or undoes what a dead writer left: a backup whose package is missing is put back, a
  pending manifest that matches the artifact in place becomes its manifest, everything else is removed.

Failures of the machine (disk full, ``ulimit -f``, read-only storage) become one
:class:`~modnet_edge.core.errors.EnvironmentFailure` naming the output, and nothing half-written is left.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import secrets
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from modnet_edge.core.errors import ArtifactError, EnvironmentFailure, MetadataError, environment_failure
from modnet_edge.core.metadata import ArtifactMetadata, seal_artifact, verify_integrity

try:  # POSIX: commits serialise on an advisory lock of their folder (released by the kernel on a kill)
    import fcntl
except ImportError:  # pragma: no cover - Windows: no lock; unique temporaries still keep pairs whole
    fcntl = None  # type: ignore[assignment]


# --------------------------------------------------------------------------------------------------
# Manifests
# --------------------------------------------------------------------------------------------------
def manifest_path(artifact: str | Path) -> Path:
    """Where the manifest of ``artifact`` lives: ``model.onnx`` -> ``model.onnx.manifest.json``."""
    p = Path(artifact)
    return p.with_name(p.name + ".manifest.json")


# Fields that must agree between the embedded metadata and the manifest beside the file.
_CONSISTENT_FIELDS = ("format", "precision", "preprocessing", "model", "input_name", "output_name", "source")
_HEX = frozenset("0123456789abcdef")


def _is_sha256(value: Any) -> bool:
    return isinstance(value, str) and len(value) == 64 and set(value) <= _HEX


def _manifest_text(meta: ArtifactMetadata, content: Path, name: str) -> str:
    record = meta.to_dict()
    record["artifact"] = {"file": name, "bytes": path_size(content), "sha256": sha256_path(content)}
    return json.dumps(record, indent=2, sort_keys=True) + "\n"


def read_manifest_record(mpath: str | Path) -> dict[str, Any]:
    """The manifest at ``mpath`` as a checked JSON object: its ``artifact`` entry names a file with its
    size and sha256.  Anything else (a folder, a link, not JSON, a list, fields of the wrong type) is one
    :class:`MetadataError` saying which."""
    mpath = Path(mpath)
    if mpath.is_symlink():
        raise MetadataError("manifest is a symbolic link, not a manifest file", mpath)
    if mpath.is_dir():
        raise MetadataError("manifest path is a folder, not a manifest file", mpath)
    try:
        data = mpath.read_bytes()
    except OSError as exc:
        raise MetadataError(f"manifest cannot be read ({exc.strerror or exc})", mpath) from None
    try:
        record = json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise MetadataError(f"manifest is not valid JSON: {exc}", mpath) from None
    if not isinstance(record, dict):
        raise MetadataError(f"manifest is JSON but not an object (it is a {type(record).__name__}); "
                            "a manifest is the object modnet-edge export writes", mpath)
    entry = record.get("artifact")
    if entry is not None:
        if not isinstance(entry, dict):
            raise MetadataError(f"manifest field 'artifact' must be an object, not {type(entry).__name__}", mpath)
        wrong = [k for k, ok in (("file", isinstance(entry.get("file"), str)),
                                 ("bytes", isinstance(entry.get("bytes"), int) and not isinstance(entry.get("bytes"), bool)),
                                 ("sha256", _is_sha256(entry.get("sha256")))) if k in entry and not ok]
        if wrong:
            raise MetadataError(f"manifest fields {['artifact.' + k for k in wrong]} have the wrong type "
                                "(file: a name, bytes: an integer, sha256: 64 hex digits)", mpath)
    if "format" in record and not isinstance(record["format"], str):
        raise MetadataError(f"manifest field 'format' must be a string, not {type(record['format']).__name__}", mpath)
    return record


def read_manifest(artifact: str | Path) -> ArtifactMetadata | None:
    """The manifest's metadata, None when no manifest exists; checks the artifact's sha256 against it."""
    artifact = Path(artifact)
    recover_folder(artifact.parent)
    mpath = manifest_path(artifact)
    if not (mpath.exists() or mpath.is_symlink()):
        return None
    record = read_manifest_record(mpath)
    meta = ArtifactMetadata.from_dict(record, mpath)
    expected = (record.get("artifact") or {}).get("sha256")
    if expected and expected != sha256_path(artifact):
        raise MetadataError(f"artifact does not match its manifest {mpath.name} (sha256 differs): "
                            "it was modified or replaced after export", artifact)
    return meta


def reconcile_metadata(artifact: str | Path, embedded: ArtifactMetadata | None) -> ArtifactMetadata | None:
    """Combine embedded metadata and manifest; refuse when both exist and disagree, or when the artifact
    does not match the integrity record in its embedded metadata (or carries none)."""
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


def write_manifest(artifact: str | Path, meta: ArtifactMetadata) -> Path:
    """Write the manifest beside ``artifact``: the metadata plus the artifact's size and sha256.

    Exporters pass ``manifest=`` to :func:`atomic_output` instead, so artifact and manifest change as a pair."""
    artifact = Path(artifact)
    out = manifest_path(artifact)
    atomic_write_text(out, _manifest_text(meta, artifact, artifact.name))
    return out


# --------------------------------------------------------------------------------------------------
# The folder record: which files modnet-edge wrote here, with their sha256
# --------------------------------------------------------------------------------------------------
RECORD_NAME = ".modnet-edge-record.jsonl"
_RECORD_HEADER = {"record": "modnet-edge outputs", "schema": 1}
_record_cache: dict[Path, tuple[tuple[int, int, int], dict[str, list[dict[str, Any]]]]] = {}


def _parse_record(data: bytes) -> dict[str, list[dict[str, Any]]] | None:
    """name -> entries of a record's bytes; None when the bytes are not a record of ours."""
    lines = data.split(b"\n")
    try:
        if json.loads(lines[0]) != _RECORD_HEADER:
            return None
    except (ValueError, UnicodeDecodeError):
        return None
    out: dict[str, list[dict[str, Any]]] = {}
    for line in lines[1:]:
        try:
            entry = json.loads(line)
        except (ValueError, UnicodeDecodeError):
            continue  # empty, or cut by a kill mid-append
        if isinstance(entry, dict) and isinstance(entry.get("file"), str):
            out.setdefault(entry["file"], []).append(entry)
    return out


def _read_record(folder: Path) -> dict[str, list[dict[str, Any]]]:
    """The record of ``folder`` (empty when there is none, or the file there is not ours)."""
    path = folder / RECORD_NAME
    try:
        st = os.lstat(path)
    except OSError:
        return {}
    if not os.path.isfile(path) or os.path.islink(path):
        return {}
    key = (st.st_ino, st.st_size, st.st_mtime_ns)
    cached = _record_cache.get(path)
    if cached is not None and cached[0] == key:
        return cached[1]
    try:
        parsed = _parse_record(path.read_bytes()) or {}
    except OSError:
        return {}
    _record_cache[path] = (key, parsed)
    return parsed


def _append_record(folder: Path, entries: list[dict[str, Any]]) -> None:
    """Add ``entries`` to the folder's record (call with the folder lock held).  A file of that name that
    is not a record of ours is refused: the folder then cannot prove anything ours, so nothing is written."""
    path = folder / RECORD_NAME
    lines = "".join(json.dumps(e, sort_keys=True) + "\n" for e in entries)
    if path.is_symlink() or (path.exists() and not path.is_file()):
        raise ArtifactError(f"{RECORD_NAME} here is not modnet-edge's record of its outputs (a link or a "
                            "folder); refusing to write in this folder", folder)
    if not path.exists():
        with open(path, "x", encoding="utf-8") as fh:
            fh.write(json.dumps(_RECORD_HEADER) + "\n" + lines)
        return
    with open(path, "rb+") as fh:
        head = fh.readline()
        if _parse_record(head) is None:
            raise ArtifactError(f"{RECORD_NAME} here is not modnet-edge's record of its outputs (a file of "
                                "yours?); refusing to write in this folder", folder)
        fh.seek(0, os.SEEK_END)
        fh.seek(fh.tell() - 1)
        glue = "" if fh.read(1) == b"\n" else "\n"  # a line cut by a kill stays apart from the next
        fh.seek(0, os.SEEK_END)
        fh.write((glue + lines).encode("utf-8"))


def _prefix_sha256(path: Path, size: int) -> str | None:
    try:
        with open(path, "rb") as fh:
            data = fh.read(size)
    except OSError:
        return None
    return hashlib.sha256(data).hexdigest() if len(data) == size else None


# --------------------------------------------------------------------------------------------------
# Ours or refused
# --------------------------------------------------------------------------------------------------
def _manifest_names(mpath: Path, artifact_name: str, digest: str | None = None) -> bool:
    """Whether the manifest at ``mpath`` is a manifest (by structure) naming ``artifact_name`` (with the
    sha256 ``digest``, when given)."""
    try:
        record = read_manifest_record(mpath)
        ArtifactMetadata.from_dict(record, mpath)
    except (MetadataError, ArtifactError, ValueError, TypeError):
        return False
    entry = record.get("artifact") or {}
    return entry.get("file") == artifact_name and (digest is None or entry.get("sha256") == digest)


def is_ours(path: str | Path) -> bool:
    """Whether the existing file or folder at ``path`` is one modnet-edge wrote and may replace: the
    folder's record lists it with its current sha256 (or, for a log that grows, with the sha256 of the
    lines it began with); or it is an artifact whose manifest names it with its sha256; or it is a
    manifest naming its artifact.  Never decided by a name or by bytes that look like ours."""
    path = Path(path)
    if path.is_symlink() or not path.exists():
        return False
    entries = _read_record(path.parent).get(path.name, [])
    digest: str | None = None
    if any("sha256" in e for e in entries) or manifest_path(path).is_file():
        digest = sha256_path(path)
    for entry in entries:
        if digest is not None and entry.get("sha256") == digest:
            return True
        size = entry.get("prefix_bytes")
        if isinstance(size, int) and size > 0 and path.is_file() and \
                _prefix_sha256(path, size) == entry.get("prefix_sha256"):
            return True
    if digest is not None and _manifest_names(manifest_path(path), path.name, digest):
        return True
    suffix = ".manifest.json"
    return path.name.endswith(suffix) and path.is_file() and _manifest_names(path, path.name[: -len(suffix)])


def check_output_path(path: str | Path) -> Path:
    """Refuse, before any work, an output path that would destroy something of the user's: a symbolic
    link, anything already there that is not ours (:func:`is_ours`), or a path below a regular file."""
    path = Path(path)
    if path.is_symlink():
        raise ArtifactError("output path is a symbolic link; refusing to replace it or write through it: "
                            "give the real path", path)
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise ArtifactError(f"cannot write here: {parent} is a file, not a folder", path)
            break
    if path.exists() and not is_ours(path):
        if path.is_dir():
            raise ArtifactError("output path is an existing folder (not an artifact written by modnet-edge); "
                                "refusing to replace it: choose a file name", path)
        if not path.is_file():
            raise ArtifactError("output path exists and is not a regular file (a device or pipe?); refusing "
                                "to replace it", path)
        raise ArtifactError("output exists and was not written by modnet-edge (no record of ours names it "
                            "with its sha256); refusing to overwrite it: choose another name, or move it away "
                            "first", path)
    return path


def check_output_folder(folder: str | Path) -> Path:
    """An output folder: a folder or nothing yet, and no parent of it a file."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise ArtifactError("the output must be a folder, and this is a file", folder)
    for parent in folder.parents:
        if parent.exists():
            if not parent.is_dir():
                raise ArtifactError(f"cannot write here: {parent} is a file, not a folder", folder)
            break
    return folder


def remove_if_ours(path: str | Path) -> bool:
    """Delete ``path`` (file or folder) when it is ours; returns whether it was removed."""
    path = Path(path)
    if not is_ours(path):
        return False
    if path.is_dir():
        shutil.rmtree(path)
    else:
        path.unlink()
    return True


# --------------------------------------------------------------------------------------------------
# Temporaries, the folder lock, recovery after a kill
# --------------------------------------------------------------------------------------------------
TEMP_MARK = ".modnet-edge-tmp"  # temporaries: .<target>.<pid>.<token>.modnet-edge-tmp<kind>
_PENDING = ".pending-manifest"  # the new manifest, waiting for its artifact to be in place
_BACKUP = ".backup"  # the old folder artifact, set aside while the new one is moved in


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def _parse_temp(name: str) -> tuple[str, int, str] | None:
    """(target name, writer pid, kind) of a temporary's name; None when it is not one of ours."""
    if not name.startswith(".") or TEMP_MARK not in name:
        return None
    at = name.rindex(TEMP_MARK)
    parts = name[1:at].rsplit(".", 2)
    if len(parts) != 3 or not parts[1].isdigit() or not parts[0]:
        return None
    rest = name[at + len(TEMP_MARK):]
    kind = "pending" if rest == _PENDING else "backup" if rest == _BACKUP else "temp"
    return parts[0], int(parts[1]), kind


@contextlib.contextmanager
def folder_lock(folder: str | Path) -> Iterator[None]:
    """Hold the folder's commit lock (an advisory ``flock`` on the folder itself: no lock file to leave
    behind, and the kernel releases it when its holder dies)."""
    if fcntl is None:
        yield
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def recover_folder(folder: str | Path, *, locked: bool = False) -> list[Path]:
    """Finish or undo what writers killed in ``folder`` left, so the folder holds whole pairs only:
    a backup whose artifact is missing is put back (the old pair again), a pending manifest whose sha256
    matches the artifact in place becomes its manifest (the new pair), and every other temporary of a
    dead writer is removed.  Temporaries of live writers are left alone.  Returns what was handled."""
    folder = Path(folder)
    try:
        names = os.listdir(folder)
    except OSError:
        return []
    dead = [(n, t) for n in names if (t := _parse_temp(n)) is not None and not _pid_alive(t[1])]
    if not dead:
        return []
    handled: list[Path] = []
    try:
        with contextlib.nullcontext() if locked else folder_lock(folder):
            order = {"backup": 0, "pending": 1, "temp": 2}
            for name, (target_name, _pid, kind) in sorted(dead, key=lambda d: order[d[1][2]]):
                entry, target = folder / name, folder / target_name
                if not (entry.exists() or entry.is_symlink()):
                    continue  # another reader recovered it meanwhile
                if kind == "backup" and not (target.exists() or target.is_symlink()):
                    os.replace(entry, target)  # killed between setting the old package aside and the new in
                elif kind == "pending" and target.exists() and _manifest_names(entry, target_name,
                                                                                sha256_path(target)):
                    os.replace(entry, manifest_path(target))  # killed after the artifact's rename
                else:
                    _remove(entry)
                handled.append(entry)
    except OSError:
        pass  # a read-only folder: nothing can be repaired here; readers see what is there
    return handled


def remove_stale_temporaries(folder: str | Path) -> list[Path]:
    """Clean up after writers that died in ``folder`` (see :func:`recover_folder`)."""
    return recover_folder(folder)


def _make_folder(folder: Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise ArtifactError("cannot write here: a parent of the output path is a file", folder) from None
    except PermissionError:
        raise ArtifactError("cannot write here: permission denied", folder) from None
    except OSError as exc:
        raise environment_failure(exc, folder) or ArtifactError(f"cannot create the folder ({exc.strerror})",
                                                                folder) from None


# --------------------------------------------------------------------------------------------------
# Writers
# --------------------------------------------------------------------------------------------------
@contextlib.contextmanager
def atomic_output(path: str | Path, suffix: str | None = None,
                  manifest: Callable[[], ArtifactMetadata] | None = None, seal: bool = True) -> Iterator[Path]:
    """Yield a temporary path beside ``path`` to write to; put it at ``path`` only if the block succeeds.

    ``path`` must be free or ours (:func:`check_output_path`: checked before the block and again, under
    the folder lock, before the rename).  ``manifest`` (an artifact's metadata, asked for once the block
    has written the file) makes artifact and manifest change as one pair; with ``seal`` the artifact,
    which embeds that metadata's JSON, first gets its integrity record.  ``suffix``: the temporary's
    ending, for writers that insist on one (``.mlpackage``, ``.png``).
    """
    path = Path(path)
    folder = path.parent
    check_output_path(path)
    _make_folder(folder)
    recover_folder(folder)
    mpath = manifest_path(path) if manifest is not None else None
    if mpath is not None:
        check_output_path(mpath)
    base = f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}{TEMP_MARK}"
    tmp, pending, backup = folder / (base + (suffix or "")), folder / (base + _PENDING), folder / (base + _BACKUP)
    try:
        yield tmp
        if not tmp.exists():
            raise ArtifactError(f"the writer produced no file at {tmp.name}", path)
        text = None
        if manifest is not None:
            meta = manifest()
            if seal:
                seal_artifact(tmp, meta)
            text = _manifest_text(meta, tmp, path.name)
        records = [{"file": path.name, "sha256": sha256_path(tmp)}]
        with folder_lock(folder):
            recover_folder(folder, locked=True)  # a writer that died meanwhile: its pair is whole again
            check_output_path(path)
            if mpath is not None and text is not None:
                check_output_path(mpath)
                with open(pending, "x", encoding="utf-8") as fh:
                    fh.write(text)
                records.append({"file": mpath.name, "sha256": hashlib.sha256(text.encode()).hexdigest()})
            _append_record(folder, records)  # before the renames: whichever lands, the record proves it
            if path.is_dir():  # our own folder artifact (checked above): set aside, restored if killed
                os.replace(path, backup)
            os.replace(tmp, path)
            if text is not None:
                os.replace(pending, mpath)
            if backup.exists():
                shutil.rmtree(backup)
    except OSError as exc:
        failure = environment_failure(exc, path)
        if failure is not None:
            raise failure from None
        if isinstance(exc, PermissionError):
            raise ArtifactError("cannot write here: permission denied", path) from None
        raise
    finally:
        if backup.exists() and not (path.exists() or path.is_symlink()):
            os.replace(backup, path)  # failed between the two renames: the old package goes back
        committed = not (tmp.exists() or tmp.is_symlink())  # the new artifact is in place
        # a pending manifest of an artifact in place stays (recover_folder adopts it once we are gone)
        for leftover in (tmp, backup) if committed else (tmp, pending, backup):
            if leftover.exists() or leftover.is_symlink():
                _remove(leftover)


def copy_artifact(source: str | Path, target: str | Path) -> Path:
    """Put a copy of our sealed artifact ``source`` (with its manifest) at ``target``, as one pair.

    Why: the precision search has already exported, sealed and judged the candidate it chose; exporting
    it once more to the user's path (a Core ML conversion, a calibration) only repeated minutes of work.
    The bytes are the ones judged, and the integrity record inside them still holds (it covers the
    bytes, not the file name); ``target`` must be free or ours like any output."""
    source, target = Path(source), Path(target)
    meta = read_manifest(source)
    if meta is None:
        raise ArtifactError("has no manifest: only an artifact of ours can be copied as one", source)
    with atomic_output(target, suffix=source.suffix if source.is_dir() else None, manifest=lambda: meta,
                       seal=False) as tmp:
        if source.is_dir():
            shutil.copytree(source, tmp)
        else:
            shutil.copyfile(source, tmp)
    return target


def atomic_write_text(path: str | Path, text: str) -> None:
    with atomic_output(path) as tmp:
        tmp.write_text(text)


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    with atomic_output(path) as tmp:
        tmp.write_bytes(data)


class AppendOutput:
    """A log that grows line by line (a run's ``log.jsonl``, ``epochs.csv``): appending never rewrites what
    is there, so the whole file is never swapped.  Ours when created here (the record keeps the sha256 of
    its first line, which later lines never change); an existing file must be ours, else it is refused."""

    def __init__(self, path: str | Path) -> None:
        self.path = check_output_path(path)  # an existing log must be ours (the record keeps its first line)
        self._checked = self.path.exists()

    def write(self, text: str) -> None:
        data = text.encode("utf-8")
        try:
            if not self._checked:
                _make_folder(self.path.parent)
                with folder_lock(self.path.parent):
                    check_output_path(self.path)
                    if not self.path.exists():  # recorded first: killed in between, the file is still ours
                        _append_record(self.path.parent, [{"file": self.path.name, "prefix_bytes": len(data),
                                                           "prefix_sha256": hashlib.sha256(data).hexdigest()}])
                        with open(self.path, "xb") as fh:
                            fh.write(data)
                        self._checked = True
                        return
                self._checked = True
            with open(self.path, "ab") as fh:
                fh.write(data)
        except OSError as exc:
            raise environment_failure(exc, self.path) or ArtifactError(
                f"cannot append to it ({exc.strerror or exc})", self.path) from None


class LogFile:
    """``--log-file FILE``: a file the user names to receive every printed line (appended to, never
    replaced).  A folder, a link or a file that cannot be opened is refused up front; a write that fails
    later (disk full, ``/dev/full``, a size limit) never breaks the command: the first failure is kept in
    ``failure`` and logging stops, and the CLI reports it as one line with the environment exit status."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.failure: EnvironmentFailure | None = None
        if self.path.is_symlink():
            raise ArtifactError("log file is a symbolic link; give the real path", self.path)
        if self.path.is_dir():
            raise ArtifactError("log file is a folder; give a file name", self.path)
        check_output_folder(self.path.parent)
        _make_folder(self.path.parent)
        try:
            self._fh: Any = open(self.path, "a", encoding="utf-8", buffering=1)  # noqa: SIM115: closed in close()
        except PermissionError as exc:
            raise ArtifactError(f"log file cannot be written ({exc.strerror}: read-only or immutable?)",
                                self.path) from None
        except OSError as exc:
            raise environment_failure(exc, self.path) or ArtifactError(
                f"log file cannot be opened ({exc.strerror or exc})", self.path) from None

    def _guard(self, action: Callable[[], Any]) -> None:
        if self._fh is None:
            return
        try:
            action()
        except OSError as exc:
            self.failure = environment_failure(exc, self.path) or EnvironmentFailure(
                f"log file could not be written ({exc.strerror or exc}); the log is incomplete", self.path)
            with contextlib.suppress(OSError):
                self._fh.close()
            self._fh = None

    def write(self, text: str) -> int:
        self._guard(lambda: self._fh.write(text))
        return len(text)

    def flush(self) -> None:
        self._guard(lambda: self._fh.flush())

    def close(self) -> None:
        self._guard(lambda: self._fh.close())
        self._fh = None


# --------------------------------------------------------------------------------------------------
# Hashes and sizes
# --------------------------------------------------------------------------------------------------
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


def file_identity(path: str | Path) -> tuple[str, int, int, int]:
    """(resolved path, size, modification time in ns, inode): what in-process memos of a file's contents
    key on, so a file written again is read again."""
    st = Path(path).stat()
    return str(Path(path).resolve()), st.st_size, st.st_mtime_ns, st.st_ino


def path_size(path: str | Path) -> int:
    path = Path(path)
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return path.stat().st_size
