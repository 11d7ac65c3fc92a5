"""The "nothing lost" sweep: bad, unusual and hostile inputs tried as a careful user and an attacker would,
each outcome sorted into one class.

    clear       a clear one-line error with the right exit status (2 bad input, 3 the machine)
    handled     a valid edge input handled right
    data loss   a file of the user's replaced, changed, deleted, or an artifact lost or mixed with another's
    silent      bad input accepted (exit 0) or a problem not reported
    raw         a traceback, or an exit status no command should give
    misleading  an error that names the wrong problem, the wrong exit status, or garbage in the output
    hang        no answer within the case's time limit

Run ``python tests/sweep_nothing_lost.py`` (``--quick``: the cases that take seconds; ``--only SUBSTR``;
``--json FILE``) from any folder but the repository root.  It prints one line per case that is not
clear/handled and the counts per class; the exit status is 1 when any case is in a bad class.  Pointing
``PYTHONPATH`` at another checkout's package sweeps that code instead (how the "before" counts of issue
26 were taken).  Cases run in-process through ``modnet_edge.cli.main`` unless they need a process of their
own (a time limit, ``ulimit -f``, a signal, a mounted RAM disk for "disk full": those run only as root
where ``mount`` works, and are reported as skipped elsewhere).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

CLASSES = ("clear", "handled", "data loss", "silent", "raw", "misleading", "hang")
BAD = {"data loss", "silent", "raw", "misleading", "hang"}
SIDE = 64


# ------------------------------------------------------------------------------------------------------
# A case and how its outcome is judged
# ------------------------------------------------------------------------------------------------------
@dataclass
class Result:
    code: int | None  # None: timed out
    out: str
    err: str
    crash: str | None = None  # an exception that escaped main()


@dataclass
class Case:
    name: str
    argv: list[str]
    expect: str = "error"  # "error" (exit 2), "env" (exit 3), "ok" (exit 0), "either" (0 or a clear error)
    needle: str | None = None  # the error line must say this (case-insensitive), else the message misleads
    setup: Callable[[Ctx], None] | None = None
    keep: tuple[str, ...] = ()  # files the user owns (relative to the case folder): must not change
    post: Callable[[Ctx, Result], str | None] | None = None  # a class when something else is wrong
    isolate: bool = False  # in a process of its own
    timeout: float = 600.0
    fsize: int | None = None  # RLIMIT_FSIZE for an isolated case (ulimit -f)
    slow: bool = False  # takes more than a few seconds (left out by --quick)
    root: bool = False  # needs root and a working mount (tmpfs) or chattr
    cwd: bool = False  # run in the case folder (outputs named by default land there)


@dataclass
class Ctx:
    d: Path  # the case's own folder
    fx: dict[str, Path]  # shared fixtures (read-only)
    mounts: list[Path] = field(default_factory=list)
    snapshot: dict[str, Any] = field(default_factory=dict)

    def fmt(self, arg: str) -> str:
        return arg.format(d=self.d, **{k: str(v) for k, v in self.fx.items()})


def _state(path: Path) -> Any:
    if path.is_symlink():
        return ("link", os.readlink(path))
    if path.is_dir():
        return ("dir", sorted((str(p.relative_to(path)), _digest(p)) for p in path.rglob("*") if p.is_file()))
    if path.is_file():
        return ("file", _digest(path))
    return ("missing",)


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def judge(case: Case, ctx: Ctx, res: Result) -> tuple[str, str]:
    """(class, why) of one outcome."""
    lost = [k for k in case.keep if _state(ctx.d / k) != ctx.snapshot[k]]
    if lost:
        return "data loss", f"changed or removed: {lost} (exit {res.code})"
    if res.code is None:
        return "hang", "no answer within the time limit"
    text = res.err + res.out
    if res.crash or "Traceback (most recent call last)" in text or res.code not in (0, 1, 2, 3, 130):
        where = res.crash or next((ln for ln in reversed(text.splitlines()) if ln.strip()), "")
        return "raw", f"exit {res.code}: {where[:200]}"
    if case.post is not None:
        verdict = case.post(ctx, res)
        if verdict:
            return verdict.split(":", 1)[0], verdict
    lines = [ln for ln in res.err.splitlines() if ln.strip() and not ln.startswith("note:")]
    error_line = next((ln for ln in reversed(lines) if "error" in ln.lower()), "")
    if case.expect == "ok":
        if res.code == 0:
            return "handled", "ok"
        return "misleading", f"a valid input refused, exit {res.code}: {error_line[:200]}"
    if res.code == 0:
        if case.expect == "either":
            return "handled", "ok"
        return "silent", "accepted (exit 0)"
    want = {"error": 2, "env": 3, "either": 2}[case.expect]
    if case.expect == "either" and res.code == 3:
        want = 3
    if res.code != want:
        return "misleading", f"exit {res.code}, expected {want}: {error_line[:200]}"
    if case.needle and case.needle.lower() not in error_line.lower():
        return "misleading", f"says {error_line[:200]!r}, not about {case.needle!r}"
    if len(lines) > 1 and not any("usage:" in ln for ln in lines):
        return "misleading", f"{len(lines)} lines instead of one: {lines[-1][:120]}"
    return "clear", error_line[:120]


# ------------------------------------------------------------------------------------------------------
# Running a case
# ------------------------------------------------------------------------------------------------------
# Isolated cases run under a cap on their address space too: an absurd size must fail as a clear error or
# a MemoryError, never by pulling the whole machine into the kernel's OOM killer.
MEMORY_CAP = 10 << 30

_RUNNER = """
import resource, sys
limit = int(sys.argv[1])
if limit:
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
resource.setrlimit(resource.RLIMIT_AS, (%d, %d))
""" % (MEMORY_CAP, MEMORY_CAP) + """
from modnet_edge.cli import main
sys.exit(main(sys.argv[2:]))
"""


def run_case(case: Case, ctx: Ctx) -> Result:
    argv = [ctx.fmt(a) for a in case.argv]
    if case.isolate:
        try:
            proc = subprocess.run([sys.executable, "-c", _RUNNER, str(case.fsize or 0), *argv], capture_output=True,
                                  text=True, timeout=case.timeout, cwd=ctx.d)
        except subprocess.TimeoutExpired as exc:
            return Result(None, _text(exc.stdout), _text(exc.stderr))
        return Result(proc.returncode, proc.stdout, proc.stderr)
    from modnet_edge.cli import main

    out, err = io.StringIO(), io.StringIO()
    cwd = os.getcwd()
    crash = None
    code: int | None = None
    try:
        if case.cwd:
            os.chdir(ctx.d)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main(argv)
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else 2
    except BaseException as exc:  # noqa: BLE001 - exactly what the sweep looks for
        crash = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        err.write(traceback.format_exc())
        code = 1
    finally:
        os.chdir(cwd)
    return Result(code, out.getvalue(), err.getvalue(), crash)


def _text(data: Any) -> str:
    return data.decode(errors="replace") if isinstance(data, bytes) else (data or "")


# ------------------------------------------------------------------------------------------------------
# Helpers for setting cases up
# ------------------------------------------------------------------------------------------------------
def put(rel: str, data: bytes | str) -> Callable[[Ctx], None]:
    def make(ctx: Ctx) -> None:
        p = ctx.d / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data.encode() if isinstance(data, str) else data)
    return make


def photo(rel: str, value: int = 120, size: tuple[int, int] = (SIDE, SIDE), noise: bool = False) -> Callable:
    def make(ctx: Ctx) -> None:
        p = ctx.d / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        if noise:
            arr = np.random.default_rng(value).integers(0, 255, (*size, 3), dtype=np.uint8)
        else:
            arr = np.full((*size, 3), value, np.uint8)
            arr[size[0] // 4: 3 * size[0] // 4, size[1] // 4: 3 * size[1] // 4] = 255 - value
        Image.fromarray(arr).save(p)
    return make


def pil(rel: str, im: Callable[[], Image.Image], **save: Any) -> Callable[[Ctx], None]:
    def make(ctx: Ctx) -> None:
        p = ctx.d / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        im().save(p, **save)
    return make


def copy(fixture: str, rel: str) -> Callable[[Ctx], None]:
    def make(ctx: Ctx) -> None:
        src, dst = ctx.fx[fixture], ctx.d / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        (shutil.copytree if src.is_dir() else shutil.copyfile)(src, dst)
        man = src.with_name(src.name + ".manifest.json")
        if man.exists():
            shutil.copyfile(man, dst.with_name(dst.name + ".manifest.json"))
    return make


def link(rel: str, target: str) -> Callable[[Ctx], None]:
    def make(ctx: Ctx) -> None:
        (ctx.d / rel).parent.mkdir(parents=True, exist_ok=True)
        os.symlink(ctx.fmt(target), ctx.d / rel)
    return make


def mkdir(rel: str) -> Callable[[Ctx], None]:
    def make(ctx: Ctx) -> None:
        (ctx.d / rel).mkdir(parents=True, exist_ok=True)
    return make


def cli(*argv: str) -> Callable[[Ctx], None]:
    """Setup by running a command that must succeed (a previous run of ours)."""
    def make(ctx: Ctx) -> None:
        res = run_case(Case("setup", list(argv)), ctx)
        if res.code != 0:
            raise RuntimeError(f"setup {argv} failed ({res.code}): {(res.crash or res.err)[-400:]}")
    return make


def ours(rel: str, text: str = "{}\n") -> Callable[[Ctx], None]:
    """A file written by modnet-edge (the toolkit's own writer)."""
    def make(ctx: Ctx) -> None:
        from modnet_edge.core import atomic_write_text

        atomic_write_text(ctx.d / rel, text)
    return make


def chain(*steps: Callable[[Ctx], None]) -> Callable[[Ctx], None]:
    def make(ctx: Ctx) -> None:
        for step in steps:
            step(ctx)
    return make


def edit(rel: str, change: Callable[[bytes], bytes]) -> Callable[[Ctx], None]:
    def make(ctx: Ctx) -> None:
        p = ctx.d / rel
        p.write_bytes(change(p.read_bytes()))
    return make


def flip_at(fraction: float) -> Callable[[bytes], bytes]:
    def change(data: bytes) -> bytes:
        b = bytearray(data)
        b[int(len(b) * fraction)] ^= 0x40
        return bytes(b)
    return change


def manifest_of(rel: str, text: str | None) -> Callable[[Ctx], None]:
    """Replace the manifest of ``rel`` by ``text`` (None: a folder)."""
    def make(ctx: Ctx) -> None:
        m = ctx.d / (rel + ".manifest.json")
        if m.exists():
            m.unlink()
        if text is None:
            m.mkdir()
            (m / "inside.txt").write_text("the user's")
        else:
            m.write_text(text)
    return make


def drop_manifest(rel: str) -> Callable[[Ctx], None]:
    def make(ctx: Ctx) -> None:
        (ctx.d / (rel + ".manifest.json")).unlink()
    return make


def onnx_meta(rel: str, change: Callable[[dict, Any], None]) -> Callable[[Ctx], None]:
    """Edit the embedded metadata (and, through ``model``, the graph) of an ONNX artifact in place."""
    def make(ctx: Ctx) -> None:
        import onnx

        p = ctx.d / rel
        model = onnx.load(str(p))
        for prop in model.metadata_props:
            if prop.key == "modnet_edge":
                meta = json.loads(prop.value)
                change(meta, model)
                prop.value = json.dumps(meta, sort_keys=True)
        onnx.save(model, str(p))
    return make


def resealed(rel: str, change: Callable[[dict], None]) -> Callable[[Ctx], None]:
    """Change the metadata and seal it again with the toolkit's own sealer (a validly sealed artifact
    whose preprocessing is absurd): the spec is built without its checks, as a hostile exporter would."""
    def make(ctx: Ctx) -> None:
        import onnx

        from modnet_edge.core import ArtifactMetadata, PreprocessSpec, seal_artifact
        from modnet_edge.core.containers.onnx_file import embed

        p = ctx.d / rel
        model = onnx.load(str(p))
        raw = next(pr.value for pr in model.metadata_props if pr.key == "modnet_edge")
        d = json.loads(raw)
        change(d)
        spec = object.__new__(PreprocessSpec)
        for k, v in d["preprocessing"].items():
            object.__setattr__(spec, k, tuple(v) if isinstance(v, list) else v)
        meta = ArtifactMetadata(**{**{k: v for k, v in d.items() if k != "preprocessing"}, "preprocessing": spec})
        meta.integrity = "0" * 64
        embed(model, meta)
        onnx.save(model, str(p))
        seal_artifact(p, meta)
        m = p.with_name(p.name + ".manifest.json")
        if m.exists():
            m.unlink()
    return make


def torch_file(rel: str, make_obj: Callable[[Ctx], Any]) -> Callable[[Ctx], None]:
    def make(ctx: Ctx) -> None:
        import torch

        p = ctx.d / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        torch.save(make_obj(ctx), p)
    return make


def nan_checkpoint(which: str = "all") -> Callable[[Ctx], Any]:
    def make(ctx: Ctx) -> Any:
        import torch

        obj = torch.load(ctx.fx["ckpt"], weights_only=True)
        sd = obj["state_dict"]
        keys = [k for k, v in sd.items() if v.is_floating_point()]
        for k in keys if which == "all" else keys[len(keys) // 2: len(keys) // 2 + 1]:
            sd[k] = torch.full_like(sd[k], float("nan") if which != "inf" else float("inf"))
        obj["provenance"].pop("weights_sha256", None)
        return obj
    return make


class _Payload:
    """A pickle that, if ever run, creates the marker file ``ran.txt``."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self) -> Any:
        return (open, (self.marker, "w"))


def no_file(rel: str, what: str = "silent") -> Callable[[Ctx, Result], str | None]:
    def check(ctx: Ctx, res: Result) -> str | None:
        return f"{what}: {rel} exists" if (ctx.d / rel).exists() else None
    return check


def has_file(rel: str) -> Callable[[Ctx, Result], str | None]:
    def check(ctx: Ctx, res: Result) -> str | None:
        return None if (ctx.d / rel).exists() or res.code != 0 else f"silent: {rel} missing"
    return check


def says(text: str, cls: str = "silent") -> Callable[[Ctx, Result], str | None]:
    def check(ctx: Ctx, res: Result) -> str | None:
        return None if text in res.err + res.out else f"{cls}: output does not say {text!r}"
    return check


def no_temporaries(sub: str = ".") -> Callable[[Ctx, Result], str | None]:
    def check(ctx: Ctx, res: Result) -> str | None:
        left = [p.name for p in (ctx.d / sub).rglob("*") if "modnet-edge-tmp" in p.name or ".pending" in p.name]
        return f"data loss: temporaries left {left[:3]}" if left else None
    return check


def still_loads(rel: str) -> Callable[[Ctx, Result], str | None]:
    """The artifact at ``rel`` (which the failed command was to replace) still loads, pair and all."""
    def check(ctx: Ctx, res: Result) -> str | None:
        after = run_case(Case("reader", ["info", str(ctx.d / rel)]), ctx)
        return None if after.code == 0 else f"data loss: {rel} no longer loads: {after.err.strip()[-160:]}"
    return check


def both(*checks: Callable[[Ctx, Result], str | None]) -> Callable[[Ctx, Result], str | None]:
    def check(ctx: Ctx, res: Result) -> str | None:
        for c in checks:
            verdict = c(ctx, res)
            if verdict:
                return verdict
        return None
    return check


# ------------------------------------------------------------------------------------------------------
# Machine-level setups (root only): a small RAM disk for "disk full", read-only file systems, chattr
# ------------------------------------------------------------------------------------------------------
def _can_mount() -> bool:
    if os.name != "posix" or os.geteuid() != 0 or not shutil.which("mount"):
        return False
    probe = Path(tempfile.mkdtemp(prefix="sweep-mount-"))
    ok = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(probe)], capture_output=True).returncode == 0
    if ok:
        subprocess.run(["umount", str(probe)], capture_output=True)
    probe.rmdir()
    return ok


def ramdisk(rel: str, size: str, readonly: bool = False, then: Callable[[Ctx], None] | None = None,
            fill_to: int | None = None) -> Callable[[Ctx], None]:
    """Mount a tmpfs of ``size`` at ``rel``; ``then`` prepares it; ``fill_to``: leave only that many bytes free."""
    def make(ctx: Ctx) -> None:
        p = ctx.d / rel
        p.mkdir(parents=True)
        subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(p)], check=True)
        ctx.mounts.append(p)
        if then is not None:
            then(ctx)
        if fill_to is not None:
            free = shutil.disk_usage(p).free
            with open(p / "filler.bin", "wb") as fh:
                fh.write(b"\0" * max(free - fill_to, 0))
        if readonly:
            subprocess.run(["mount", "-o", "remount,ro", str(p)], check=True)
    return make


def chattr(rel: str, flag: str = "+i") -> Callable[[Ctx], None]:
    def make(ctx: Ctx) -> None:
        subprocess.run(["chattr", flag, str(ctx.d / rel)], check=True)
    return make


def _unmount_all(ctx: Ctx) -> None:
    for p in reversed(ctx.mounts):
        subprocess.run(["umount", str(p)], capture_output=True)
    for p in ctx.d.rglob("*"):
        if not p.is_symlink():
            subprocess.run(["chattr", "-i", str(p)], capture_output=True)


# ------------------------------------------------------------------------------------------------------
# Scenarios that need more than one process: Ctrl-C, kills, concurrent writers
# ------------------------------------------------------------------------------------------------------
def pipeline_interrupted_then_rerun(ctx: Ctx) -> Result:
    argv = ["pipeline", str(ctx.fx["ckpt"]), "-o", str(ctx.d / "pipe"), "--formats", "onnx:fp32", "--no-search",
            "--limit", "1", "--iterations", "1", "--warmup", "0", "--max-seconds", "1", "--no-speed-gate",
            "--size", "64"]
    first = subprocess.Popen([sys.executable, "-c", _RUNNER, "0", *argv], cwd=ctx.d, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 300
    while time.time() < deadline and not (ctx.d / "pipe" / "artifacts").is_dir():
        time.sleep(0.5)
    time.sleep(3)
    first.send_signal(signal.SIGINT)  # Ctrl-C
    try:
        first.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        first.kill()
        first.communicate()
    try:
        proc = subprocess.run([sys.executable, "-c", _RUNNER, "0", *argv], capture_output=True, text=True,
                              timeout=600, cwd=ctx.d)
    except subprocess.TimeoutExpired as exc:
        return Result(None, _text(exc.stdout), _text(exc.stderr))
    return Result(proc.returncode, proc.stdout, proc.stderr)


_KILL_BEFORE_NEW_IN = """
import os, signal, sys
from pathlib import Path
target = Path(sys.argv[1]).resolve()
real = os.replace
def replace(src, dst, *a, **k):
    if Path(dst).resolve() == target and Path(src).name.startswith('.'):
        os.kill(os.getpid(), signal.SIGKILL)  # the old artifact is aside, the new one not yet in
    return real(src, dst, *a, **k)
os.replace = replace
from modnet_edge.cli import main
sys.exit(main(sys.argv[2:]))
"""


def killed_between_renames(fmt: str, name: str, opts: list[str]) -> Callable[[Ctx], Result]:
    """Export once, then export again killed between setting the old artifact aside and moving the new
    one in; then a reader (info) and the next writer (export) must find one whole pair each time."""
    def scenario(ctx: Ctx) -> Result:
        target = ctx.d / name
        base = ["export", str(ctx.fx["ckpt"]), "--format", fmt, "-o", str(target), *opts]
        first = subprocess.run([sys.executable, "-c", _RUNNER, "0", *base, "--precision", "fp32"],
                               capture_output=True, text=True, timeout=600, cwd=ctx.d)
        if first.returncode != 0:
            return Result(first.returncode, first.stdout, first.stderr)
        subprocess.run([sys.executable, "-c", _KILL_BEFORE_NEW_IN, str(target), *base, "--precision", "fp16"],
                       capture_output=True, text=True, timeout=600, cwd=ctx.d)
        reader = ["info", str(target)] + (["--runtime", "reference"] if fmt == "coreml" else [])
        info = subprocess.run([sys.executable, "-c", _RUNNER, "0", *reader], capture_output=True,
                              text=True, timeout=600, cwd=ctx.d)
        if info.returncode != 0:
            return Result(info.returncode, info.stdout, "reader: " + info.stderr)
        again = subprocess.run([sys.executable, "-c", _RUNNER, "0", *base, "--precision", "fp16"],
                               capture_output=True, text=True, timeout=600, cwd=ctx.d)
        return Result(again.returncode, again.stdout, again.stderr)
    return scenario


_PAUSED_WRITER = """
import os, sys, time
from pathlib import Path
from modnet_edge.core import ArtifactMetadata, PreprocessSpec, atomic_output
target, who, flag = Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3])
real = os.replace
def replace(src, dst, *a, **k):
    if who == "slow" and Path(dst).resolve() == target.resolve():
        for _ in range(150):  # pause before moving the artifact in, until the fast writer is done (or 15 s)
            if flag.exists():
                break
            time.sleep(0.1)
    return real(src, dst, *a, **k)
os.replace = replace
meta = ArtifactMetadata(format="onnx", precision="fp32", model={}, preprocessing=PreprocessSpec(),
                        extra={"writer": who})
with atomic_output(target, manifest=lambda: meta, seal=False) as tmp:
    tmp.write_text(who)
if who == "fast":
    flag.write_text("done")
"""


def two_writers_one_path(ctx: Ctx) -> Result:
    """A slow writer paused inside its commit while a fast one writes the same artifact (issue 26)."""
    target, flag = ctx.d / "m.onnx", ctx.d / "fast-done"
    slow = subprocess.Popen([sys.executable, "-c", _PAUSED_WRITER, str(target), "slow", str(flag)], cwd=ctx.d,
                            stderr=subprocess.PIPE, text=True)
    time.sleep(4)
    fast = subprocess.run([sys.executable, "-c", _PAUSED_WRITER, str(target), "fast", str(flag)], cwd=ctx.d,
                          capture_output=True, text=True, timeout=120)
    _, slow_err = slow.communicate(timeout=120)
    err = slow_err + fast.stderr
    if "Traceback" in err:
        return Result(1, "", err)
    from modnet_edge.core import read_manifest

    try:
        meta = read_manifest(target)
    except Exception as exc:  # noqa: BLE001
        return Result(0, "", f"mixed pair: {exc}")
    if meta is None or meta.extra.get("writer") != target.read_text():
        return Result(0, "", f"mixed pair: artifact {target.read_text()!r}, manifest {meta and meta.extra}")
    return Result(0, "", "")


def mixed(ctx: Ctx, res: Result) -> str | None:
    return f"data loss: {res.err[:160]}" if res.err.startswith("mixed") else None


# ------------------------------------------------------------------------------------------------------
# The cases
# ------------------------------------------------------------------------------------------------------
def _f32(values: np.ndarray) -> Callable[[], Image.Image]:
    return lambda: Image.fromarray(values.astype(np.float32), mode="F")


def _tiff_is_read(rel: str) -> Callable[[Ctx, Result], str | None]:
    def check(ctx: Ctx, res: Result) -> str | None:
        from modnet_edge.core.images import read_image

        try:
            rgb = read_image(ctx.d / rel)
        except Exception:  # noqa: BLE001
            return None if res.code != 0 else "silent: read_image fails but predict passed"
        return "silent: a [0, 1] float image became black" if rgb.max() == 0 else None
    return check


def _ort_entry(scale: float = 1.0, low: float = -1.0) -> str:
    def arr(v: float) -> dict:
        return {"data": [v], "dtype": "float32", "CLS": "numpy.array"}
    return json.dumps({"CLS": "TensorsData", "calibration_method": {"CLS": "CalibrationMethod",
                                                                    "value": "CalibrationMethod.MinMax"},
                       "data": {"input": {"lowest": arr(low * scale), "highest": arr(1.0 * scale),
                                          "CLS": "TensorData"}}})


def poison_cache(kind: str) -> Callable[[Ctx], None]:
    """Calibrate once into the case's cache, then damage the entry as ``kind`` says."""
    def make(ctx: Ctx) -> None:
        cli("export", str(ctx.fx["ckpt"]), "--precision", "int8", "--static-shape", "64x64", "--calibration",
            "synthetic", "--calibration-size", "2", "--calibration-cache", str(ctx.d / "cache"), "-o",
            str(ctx.d / "first.onnx"))(ctx)
        entry = next((ctx.d / "cache").glob("*.ort.json"))
        if kind == "x1000":
            d = json.loads(entry.read_text())
            for t in d["data"].values():
                for k in ("lowest", "highest"):
                    t[k]["data"] = [v * 1000 for v in t[k]["data"]]
            entry.write_text(json.dumps(d))
        elif kind == "corrupt":
            entry.write_text(entry.read_text()[: len(entry.read_text()) // 2])
        elif kind == "nan":
            entry.write_text(entry.read_text().replace('"data": [', '"data": [NaN, ', 1))
        elif kind == "list":
            entry.write_text("[1, 2, 3]")
        elif kind == "folder":
            entry.unlink()
            entry.mkdir()
        elif kind == "empty":
            entry.write_text("")
        elif kind == "binary":
            entry.write_bytes(os.urandom(2048))
    return make


def build_cases() -> list[Case]:  # noqa: C901 - a table
    C: list[Case] = []
    add = C.append
    onnx_ = "{onnx}"
    # --- predict: outputs ours or refused; inputs never outputs ------------------------------------------
    add(Case("predict: a user's a.alpha.png in the output folder", ["predict", onnx_, "{d}/in", "-o", "{d}/out"],
             setup=chain(photo("in/a.jpg"), put("out/a.alpha.png", "user matte")), keep=("out/a.alpha.png",),
             needle="a.alpha.png"))
    add(Case("predict: a user's a.composite.png", ["predict", onnx_, "{d}/in", "-o", "{d}/out"],
             setup=chain(photo("in/a.jpg"), put("out/a.composite.png", "user")), keep=("out/a.composite.png",),
             needle="a.composite.png"))
    add(Case("predict --no-composite beside a user's composite", ["predict", onnx_, "{d}/in", "-o", "{d}/out",
             "--no-composite"], expect="ok", setup=chain(photo("in/a.jpg"), put("out/a.composite.png", "user")),
             keep=("out/a.composite.png",)))
    add(Case("predict -o its input folder (issue: user's a.alpha.png there)", ["predict", onnx_, "{d}/s", "-o", "{d}/s"],
             setup=chain(photo("s/a.jpg"), put("s/a.alpha.png", "user matte")), keep=("s/a.alpha.png",),
             needle="a.alpha.png"))
    add(Case("predict -o its input folder twice", ["predict", onnx_, "{d}/s", "-o", "{d}/s"], expect="ok",
             setup=chain(photo("s/a.jpg"), cli("predict", onnx_, "{d}/s", "-o", "{d}/s")),
             post=no_file("s/a.alpha.alpha.png")))
    add(Case("predict: the user edited our matte since", ["predict", onnx_, "{d}/in", "-o", "{d}/out"],
             setup=chain(photo("in/a.jpg"), cli("predict", onnx_, "{d}/in", "-o", "{d}/out"),
                         edit("out/a.alpha.png", lambda b: b + b"edited")), keep=("out/a.alpha.png",),
             needle="a.alpha.png"))
    add(Case("predict: re-run into its own output folder", ["predict", onnx_, "{d}/in", "-o", "{d}/out"],
             expect="ok", setup=chain(photo("in/a.jpg"), cli("predict", onnx_, "{d}/in", "-o", "{d}/out"))))
    add(Case("predict: output is a symlink to a user file", ["predict", onnx_, "{d}/in", "-o", "{d}/out"],
             setup=chain(photo("in/a.jpg"), put("mine.png", "user"), mkdir("out"), link("out/a.alpha.png", "{d}/mine.png")),
             keep=("mine.png", "out/a.alpha.png"), needle="link"))
    add(Case("predict -o a symlinked folder", ["predict", onnx_, "{d}/in", "-o", "{d}/outlink"], expect="ok",
             setup=chain(photo("in/a.jpg"), mkdir("real"), link("outlink", "{d}/real")), post=has_file("real/a.alpha.png")))
    add(Case("predict -o a file", ["predict", onnx_, "{d}/a.jpg", "-o", "{d}/f"], setup=chain(photo("a.jpg"), put("f", "x")),
             keep=("f",), needle="file"))
    add(Case("predict -o below a file", ["predict", onnx_, "{d}/a.jpg", "-o", "{d}/f/sub"],
             setup=chain(photo("a.jpg"), put("f", "x")), keep=("f",), needle="file"))
    add(Case("predict: a user file named like our record", ["predict", onnx_, "{d}/in", "-o", "{d}/out"],
             expect="either", setup=chain(photo("in/a.jpg"), put("out/.modnet-edge-record.jsonl", "my notes")),
             keep=("out/.modnet-edge-record.jsonl",)))
    add(Case("predict: a folder named like our record", ["predict", onnx_, "{d}/in", "-o", "{d}/out"],
             expect="either", setup=chain(photo("in/a.jpg"), mkdir("out/.modnet-edge-record.jsonl"),
                                          put("out/.modnet-edge-record.jsonl/x", "mine")),
             keep=("out/.modnet-edge-record.jsonl",)))
    add(Case("predict: two inputs share a name", ["predict", onnx_, "{d}/in", "-o", "{d}/out"],
             setup=chain(photo("in/a.jpg"), photo("in/a.png")), needle="share"))
    for t in ("100000", "65", "-1"):
        add(Case(f"predict --threads {t}", ["predict", onnx_, "{d}/a.jpg", "-o", "{d}/out", "--threads", t],
                 setup=photo("a.jpg"), needle="threads", isolate=True, timeout=90))
    add(Case("predict --threads 0", ["predict", onnx_, "{d}/a.jpg", "-o", "{d}/out", "--threads", "0"],
             setup=photo("a.jpg"), needle="threads"))
    add(Case("predict --threads 2", ["predict", onnx_, "{d}/a.jpg", "-o", "{d}/out", "--threads", "2"], expect="ok",
             setup=photo("a.jpg")))
    for v in ("nan", "inf", "-1", "2"):
        add(Case(f"predict --ofd-threshold {v}", ["predict", onnx_, "{d}/a.jpg", "-o", "{d}/out", "--ofd-threshold", v],
                 setup=photo("a.jpg"), needle="ofd"))
    add(Case("predict --ofd-threshold 0.3", ["predict", onnx_, "{d}/a.jpg", "-o", "{d}/out", "--ofd-threshold", "0.3"],
             expect="ok", setup=photo("a.jpg")))
    add(Case("predict --color 300,0,0", ["predict", onnx_, "{d}/a.jpg", "-o", "{d}/out", "--color", "300,0,0"],
             setup=photo("a.jpg"), needle="color"))
    # --- images, odd and broken --------------------------------------------------------------------------
    ramp = np.tile(np.linspace(0, 1, SIDE, dtype=np.float32), (SIDE, 1))
    images: list[tuple[str, Callable[[Ctx], None], str, str | None, Any]] = [
        ("float32 TIFF in [0, 1]", pil("x.tif", _f32(ramp)), "ok", None, _tiff_is_read("x.tif")),
        ("float32 TIFF in [0, 255]", pil("x.tif", _f32(ramp * 255)), "error", "[0, 1]", None),
        ("float32 TIFF with NaN", pil("x.tif", _f32(np.where(ramp > 0.5, np.nan, ramp))), "error", "nan", None),
        ("16-bit PNG", pil("x.png", lambda: Image.fromarray((ramp * 65535).astype(np.uint16))), "ok", None, None),
        ("CMYK JPEG", pil("x.jpg", lambda: Image.new("CMYK", (SIDE, SIDE), (10, 20, 30, 40))), "ok", None, None),
        ("palette PNG", pil("x.png", lambda: Image.new("P", (SIDE, SIDE), 3)), "ok", None, None),
        ("1-bit PNG", pil("x.png", lambda: Image.new("1", (SIDE, SIDE), 1)), "ok", None, None),
        ("grey+alpha PNG", pil("x.png", lambda: Image.new("LA", (SIDE, SIDE), (90, 10))), "ok", None, None),
        ("RGBA PNG", pil("x.png", lambda: Image.new("RGBA", (SIDE, SIDE), (9, 8, 7, 0))), "ok", None, None),
        ("32-bit integer TIFF", pil("x.tif", lambda: Image.fromarray((ramp * 1000).astype(np.int32), mode="I")),
         "ok", None, None),
        ("empty file", put("x.png", b""), "error", "empty", None),
        ("truncated PNG", lambda ctx: (photo("y.png", noise=True)(ctx), (ctx.d / "x.png").write_bytes(
            (ctx.d / "y.png").read_bytes()[:200])), "error", "x.png", None),
        ("random bytes named .jpg", put("x.jpg", os.urandom(500)), "error", "x.jpg", None),
        ("text named .png", put("x.png", "hello"), "error", "x.png", None),
        ("16x16 image", photo("x.png", size=(16, 16)), "error", "32", None),
        ("1x5000 image", photo("x.png", size=(1, 5000)), "error", "32", None),
        ("PNG header claiming 100000x100000", lambda ctx: (photo("y.png")(ctx), (ctx.d / "x.png").write_bytes(
            (ctx.d / "y.png").read_bytes()[:16] + (100000).to_bytes(4, "big") * 2 + (ctx.d / "y.png").read_bytes()[24:])),
         "error", "x.png", None),
        ("a folder named x.png", mkdir("x.png/inner"), "error", "x.png", None),
    ]
    for title, make, expect, needle, post in images:
        add(Case(f"predict: {title}", ["predict", onnx_, "{d}/" + ("x.tif" if "TIFF" in title else
                 "x.jpg" if ("JPEG" in title or ".jpg" in title) else "x.png"), "-o", "{d}/out"],
                 expect=expect, needle=needle, setup=make, post=post))
    add(Case("predict: missing input", ["predict", onnx_, "{d}/nope.jpg", "-o", "{d}/out"], needle="nope.jpg"))
    add(Case("predict: a folder without images", ["predict", onnx_, "{d}/empty", "-o", "{d}/out"],
             setup=chain(mkdir("empty"), put("empty/readme.txt", "x")), needle="no images"))
    for title, make, needle in (("missing artifact", None, "does not exist"),
                                ("artifact is a text file", put("m.onnx", "not onnx"), "m.onnx"),
                                ("artifact is empty", put("m.onnx", b""), "m.onnx"),
                                ("artifact is a folder", mkdir("m.onnx/x"), "folder"),
                                ("artifact of unknown suffix", put("m.bin", os.urandom(100)), "suffix")):
        name = "m.bin" if "suffix" in title else "m.onnx"
        add(Case(f"predict: {title}", ["predict", "{d}/" + name, "{d}/a.jpg", "-o", "{d}/out"],
                 setup=chain(photo("a.jpg"), *( [make] if make else [])), needle=needle))
    # --- export: ours by record; manifest paths; links ---------------------------------------------------
    ck = "{ckpt}"
    add(Case("export over a text file mentioning modnet_edge (issue)", ["export", ck, "-o", "{d}/notes.onnx",
             "--static-shape", "64x64"], setup=put("notes.onnx", 'notes on modnet_edge, "toolkit_version"'),
             keep=("notes.onnx",), needle="notes.onnx"))
    add(Case("export over random bytes", ["export", ck, "-o", "{d}/x.onnx", "--static-shape", "64x64"],
             setup=put("x.onnx", os.urandom(4000)), keep=("x.onnx",), needle="x.onnx"))
    add(Case("export over a user's manifest (issue)", ["export", ck, "-o", "{d}/x.onnx", "--static-shape", "64x64"],
             setup=put("x.onnx.manifest.json", "my notes"), keep=("x.onnx.manifest.json",), needle="manifest"))
    add(Case("export over a user's JSON manifest", ["export", ck, "-o", "{d}/x.onnx", "--static-shape", "64x64"],
             setup=put("x.onnx.manifest.json", '{"format": "onnx", "mine": true}'), keep=("x.onnx.manifest.json",),
             needle="manifest"))
    add(Case("export: manifest path is a folder", ["export", ck, "-o", "{d}/x.onnx", "--static-shape", "64x64"],
             setup=chain(mkdir("x.onnx.manifest.json"), put("x.onnx.manifest.json/a", "mine")),
             keep=("x.onnx.manifest.json",), needle="manifest"))
    add(Case("export: output is a symlink (issue)", ["export", ck, "-o", "{d}/link.onnx", "--static-shape", "64x64"],
             setup=chain(put("target.onnx", "mine"), link("link.onnx", "{d}/target.onnx")),
             keep=("link.onnx", "target.onnx"), needle="link"))
    add(Case("export: a dangling symlink at the output", ["export", ck, "-o", "{d}/link.onnx", "--static-shape", "64x64"],
             setup=link("link.onnx", "{d}/nowhere.onnx"), keep=("link.onnx",), needle="link",
             post=no_file("nowhere.onnx", "data loss")))
    add(Case("export: manifest path is a symlink", ["export", ck, "-o", "{d}/x.onnx", "--static-shape", "64x64"],
             setup=chain(put("mine.json", "{}"), link("x.onnx.manifest.json", "{d}/mine.json")),
             keep=("mine.json", "x.onnx.manifest.json"), needle="manifest"))
    add(Case("export: output is a folder", ["export", ck, "-o", "{d}/x.onnx", "--static-shape", "64x64"],
             setup=chain(mkdir("x.onnx"), put("x.onnx/keep", "mine")), keep=("x.onnx",), needle="folder"))
    add(Case("export: our own artifact again", ["export", ck, "-o", "{d}/m.onnx", "--static-shape", "64x64"],
             expect="ok", setup=copy("onnx", "m.onnx"), slow=True))
    add(Case("export: our artifact, edited by the user since", ["export", ck, "-o", "{d}/m.onnx", "--static-shape",
             "64x64"], setup=chain(copy("onnx", "m.onnx"), edit("m.onnx", flip_at(0.5))), keep=("m.onnx",),
             needle="m.onnx"))
    add(Case("export: default name taken by a user file", ["export", ck, "--static-shape", "64x64"], cwd=True,
             setup=put("ckpt.fp32.onnx", "mine"), keep=("ckpt.fp32.onnx",), needle="ckpt.fp32.onnx"))
    add(Case("export below a file", ["export", ck, "-o", "{d}/f/m.onnx"], setup=put("f", "x"), keep=("f",), needle="file"))
    add(Case("export: suffix of another format", ["export", ck, "-o", "{d}/m.tflite"], needle=".onnx"))
    add(Case("export over the checkpoint itself", ["export", "{d}/c.pt", "-o", "{d}/c.pt"], setup=copy("ckpt", "c.pt"),
             keep=("c.pt",), needle="c.pt"))
    add(Case("export: a user folder named like a package", ["export", ck, "--format", "coreml", "-o", "{d}/m.mlpackage",
             "--static-shape", "64x64"], setup=chain(mkdir("m.mlpackage"), put("m.mlpackage/keep", "mine")),
             keep=("m.mlpackage",), needle="folder"))
    add(Case("export: a package of ours again", ["export", ck, "--format", "coreml", "-o", "{d}/m.mlpackage",
             "--static-shape", "64x64", "--precision", "fp32"], expect="ok", setup=copy("mlpackage", "m.mlpackage"),
             slow=True, post=no_temporaries()))
    for shape, needle in (("65536x65536", "2048"), ("4096", "2048"), ("0x0", "HxW"), ("-1", "HxW"), ("33x33", "32"),
                          ("abc", "HxW"), ("64x64x3", "HxW"), ("1e9", "HxW")):
        add(Case(f"export --static-shape {shape}", ["export", ck, "-o", "{d}/m.onnx", "--static-shape", shape],
                 needle=needle, isolate=shape in ("65536x65536", "4096"), timeout=300))
    add(Case("export --batch 100000", ["export", ck, "-o", "{d}/m.onnx", "--static-shape", "64x64", "--batch",
             "100000"], needle="batch", isolate=True, timeout=300))
    for opt, val, needle in (("--batch", "0", "batch"), ("--batch", "-2", "batch"), ("--opset", "99", "opset"),
                             ("--percentile", "nan", "percentile"), ("--percentile", "100", "percentile")):
        extra = ["--precision", "int8", "--calibration", "synthetic"] if opt == "--percentile" else []
        add(Case(f"export {opt} {val}", ["export", ck, "-o", "{d}/m.onnx", "--static-shape", "64x64", opt, val, *extra],
                 needle=needle))
    add(Case("export --profile with a 65536 side", ["export", ck, "--format", "tensorrt-onnx", "-o", "{d}/m.trt.onnx",
             "--profile", "1x3x64x64:1x3x64x64:1x3x65536x65536"], needle="2048", isolate=True, timeout=300))
    add(Case("export int8 without calibration", ["export", ck, "-o", "{d}/m.onnx", "--precision", "int8"],
             needle="calibration"))
    add(Case("export int8 with an empty calibration folder", ["export", ck, "-o", "{d}/m.onnx", "--precision", "int8",
             "--calibration", "{d}/empty"], setup=mkdir("empty"), needle="empty"))
    add(Case("export: unknown built-in weights name", ["export", "starter-v99", "-o", "{d}/m.onnx"], needle="starter-v99"))
    # --- checkpoints: data never code; folders, junk, NaN -----------------------------------------------
    bad_ckpts = [("a folder", mkdir("c.pt/inner"), "folder"), ("empty", put("c.pt", b""), "empty"),
                 ("JSON text", put("c.pt", '{"lr": 0.1}'), "JSON"), ("random bytes", put("c.pt", os.urandom(5000)), "c.pt"),
                 ("truncated", lambda ctx: (ctx.d / "c.pt").write_bytes(ctx.fx["ckpt"].read_bytes()[:100000]), "c.pt"),
                 ("all NaN weights", torch_file("c.pt", nan_checkpoint("all")), "NaN"),
                 ("one tensor inf", torch_file("c.pt", nan_checkpoint("inf")), "NaN"),
                 ("one tensor NaN", torch_file("c.pt", nan_checkpoint("one")), "NaN"),
                 ("a state_dict of another network", torch_file("c.pt", lambda ctx: {"w": __import__("torch").zeros(3)}),
                  "c.pt")]
    for title, make, needle in bad_ckpts:
        add(Case(f"export: checkpoint {title}", ["export", "{d}/c.pt", "-o", "{d}/m.onnx", "--static-shape", "64x64"],
                 setup=make, needle=needle, post=no_file("m.onnx")))
    add(Case("predict: checkpoint all NaN", ["predict", "{d}/c.pt", "{d}/a.jpg", "-o", "{d}/out"],
             setup=chain(photo("a.jpg"), torch_file("c.pt", nan_checkpoint("all"))), needle="NaN"))
    add(Case("predict: checkpoint is a folder", ["predict", "{d}/c.pt", "{d}/a.jpg", "-o", "{d}/out"],
             setup=chain(photo("a.jpg"), mkdir("c.pt/x")), needle="folder"))
    for cmd in (["export", "{d}/evil.pt", "-o", "{d}/m.onnx"], ["predict", "{d}/evil.pt", "{d}/a.jpg", "-o", "{d}/o"],
                ["info", "{d}/evil.pt"], ["train", "quick", "-o", "{d}/run", "--set", "init=\"{d}/evil.pt\""]):
        add(Case(f"{cmd[0]}: a pickle that would create a file", cmd, needle="pickled",
                 setup=chain(photo("a.jpg"), torch_file("evil.pt", lambda ctx: {"state_dict": _Payload(str(ctx.d / "ran.txt"))})),
                 post=no_file("ran.txt", "data loss")))
    # --- integrity ----------------------------------------------------------------------------------------
    for frac in (0.05, 0.3, 0.5, 0.7, 0.95):
        add(Case(f"info: a byte flipped at {frac:.0%}, no manifest", ["info", "{d}/m.onnx"],
                 setup=chain(copy("onnx", "m.onnx"), drop_manifest("m.onnx"), edit("m.onnx", flip_at(frac))),
                 needle="m.onnx"))
    add(Case("predict: a byte flipped, manifest beside", ["predict", "{d}/m.onnx", "{d}/a.jpg", "-o", "{d}/o"],
             setup=chain(photo("a.jpg"), copy("onnx", "m.onnx"), edit("m.onnx", flip_at(0.6))), needle="m.onnx"))

    def placeholder(meta: dict, model: Any) -> None:
        from onnx import numpy_helper

        meta["integrity"] = "0" * 64
        init = max(model.graph.initializer, key=lambda t: len(t.raw_data))
        w = numpy_helper.to_array(init).copy()
        w.flat[:] = 0
        init.CopyFrom(numpy_helper.from_array(w, init.name))

    add(Case("predict: placeholder record and zeroed weights (issue)", ["predict", "{d}/m.onnx", "{d}/a.jpg", "-o",
             "{d}/o"], setup=chain(photo("a.jpg"), copy("onnx", "m.onnx"), drop_manifest("m.onnx"),
                                   onnx_meta("m.onnx", placeholder)), needle="integrity"))
    add(Case("predict: placeholder record and edited mean", ["predict", "{d}/m.onnx", "{d}/a.jpg", "-o", "{d}/o"],
             setup=chain(photo("a.jpg"), copy("onnx", "m.onnx"), drop_manifest("m.onnx"), onnx_meta(
                 "m.onnx", lambda m, _: (m.update(integrity="0" * 64), m["preprocessing"].update(mean=[0.4] * 3)))),
             needle="integrity"))
    add(Case("predict: record removed from the metadata", ["predict", "{d}/m.onnx", "{d}/a.jpg", "-o", "{d}/o"],
             setup=chain(photo("a.jpg"), copy("onnx", "m.onnx"), drop_manifest("m.onnx"),
                         onnx_meta("m.onnx", lambda m, _: m.pop("integrity"))), needle="integrity"))
    add(Case("predict: record of the wrong length", ["predict", "{d}/m.onnx", "{d}/a.jpg", "-o", "{d}/o"],
             setup=chain(photo("a.jpg"), copy("onnx", "m.onnx"), drop_manifest("m.onnx"),
                         onnx_meta("m.onnx", lambda m, _: m.update(integrity="abc"))), needle="integrity"))
    for field_, value in (("mean", [1e30] * 3), ("std", [1e-30] * 3), ("mean", [-5.0] * 3), ("std", [40.0] * 3),
                          ("ref_size", 10 ** 9)):
        add(Case(f"parity: validly sealed artifact with {field_} {value if not isinstance(value, list) else value[0]}",
                 ["parity", "{d}/m.onnx", "--images", "{d}/imgs", "--limit", "1"],
                 setup=chain(photo("imgs/a.png"), copy("onnx", "m.onnx"),
                             resealed("m.onnx", lambda d, f=field_, v=value: d["preprocessing"].update({f: v}))),
                 needle=field_, isolate=True, timeout=300))
    add(Case("info: a valid artifact without its manifest", ["info", "{d}/m.onnx"], expect="ok",
             setup=chain(copy("onnx", "m.onnx"), drop_manifest("m.onnx"))))
    add(Case("predict: a foreign model without --preprocessing", ["predict", "{d}/f.onnx", "{d}/a.jpg", "-o", "{d}/o"],
             setup=chain(photo("a.jpg"), copy("foreign", "f.onnx")), needle="preprocessing"))
    add(Case("info: a valid artifact", ["info", "{d}/m.onnx"], expect="ok", setup=copy("onnx", "m.onnx")))
    # --- manifests of the wrong shape -------------------------------------------------------------------
    for title, text, needle in (("a folder", None, "folder"), ("a JSON list", "[1, 2]", "object"),
                                ("a JSON string", '"onnx"', "object"), ("binary junk", "\x00\x01\xff", "manifest"),
                                ("format 7", '{"format": 7}', "format"), ("artifact a list",
                                '{"format": "onnx", "artifact": []}', "artifact"),
                                ("sha256 a number", '{"format": "onnx", "artifact": {"sha256": 5}}', "sha256"),
                                ("file a number", '{"format": "onnx", "artifact": {"file": 5}}', "file"),
                                ("bytes a string", '{"format": "onnx", "artifact": {"bytes": "x"}}', "bytes"),
                                ("unknown format", '{"format": "jpeg"}', "format"),
                                ("preprocessing a list", None, "preprocessing"), ("precision 5", None, "precision"),
                                ("empty object", "{}", "manifest")):
        def make_manifest(ctx: Ctx, text: str | None = text, title: str = title) -> None:
            m = ctx.d / "m.onnx.manifest.json"
            if title in ("preprocessing a list", "precision 5"):
                d = json.loads(m.read_text())
                d.update({"preprocessing": [1, 2]} if title.startswith("pre") and "list" in title else {"precision": 5})
                m.write_text(json.dumps(d))
                return
            manifest_of("m.onnx", text)(ctx)
        for cmd in ("info", "predict"):
            argv = ["info", "{d}/m.onnx"] if cmd == "info" else ["predict", "{d}/m.onnx", "{d}/a.jpg", "-o", "{d}/o"]
            add(Case(f"{cmd}: manifest is {title}", argv, setup=chain(photo("a.jpg"), copy("onnx", "m.onnx"),
                                                                     make_manifest), needle=needle))
    # --- train: run folders ---------------------------------------------------------------------------
    tiny = ["--size", "64", "--batch-size", "2", "--epochs", "1", "--max-steps", "1", "--threads", "1", "--set",
            "synthetic_count=4", "--set", "synthetic_val_count=2", "--set", "progress=false"]
    add(Case("train twice into one folder without --resume (issue)", ["train", "quick", "-o", "{d}/run0", *tiny],
             setup=cli("train", "quick", "-o", "{d}/run0", *tiny), keep=("run0/best.pt", "run0/last.pt",
             "run0/config.json"), needle="resume", slow=True))
    add(Case("train --resume of our finished run", ["train", "quick", "-o", "{d}/run0", *tiny, "--resume"],
             expect="ok", setup=cli("train", "quick", "-o", "{d}/run0", *tiny), slow=True))
    for name, text in (("config.json", '{"mine": 1}'), ("epochs.csv", "my,cols\n"), ("log.jsonl", '{"mine": 1}\n'),
                       ("best.pt", "mine"), ("last.pt", "mine")):
        add(Case(f"train: a user's {name} in -o (issue)", ["train", "quick", "-o", "{d}/run", *tiny],
                 setup=put(f"run/{name}", text), keep=(f"run/{name}",), needle=name))
    add(Case("train: a user's file no run writes, in -o", ["train", "quick", "-o", "{d}/run", *tiny], expect="ok",
             setup=put("run/notes.txt", "mine"), keep=("run/notes.txt",), slow=True))
    add(Case("train --resume with a user's log.jsonl", ["train", "quick", "-o", "{d}/run", *tiny, "--resume"],
             setup=chain(cli("train", "quick", "-o", "{d}/run", *tiny), lambda ctx: (ctx.d / "run" / "log.jsonl").write_text(
                 "my own log\n")), keep=("run/log.jsonl",), needle="log.jsonl", slow=True))
    add(Case("train --resume in an empty folder", ["train", "quick", "-o", "{d}/run", *tiny, "--resume"],
             setup=mkdir("run"), needle="last.pt"))
    add(Case("train -o a file", ["train", "quick", "-o", "{d}/f", *tiny], setup=put("f", "x"), keep=("f",), needle="file"))
    add(Case("train -o below a file", ["train", "quick", "-o", "{d}/f/run", *tiny], setup=put("f", "x"), keep=("f",),
             needle="file"))
    for opt, val, needle in (("--threads", "100000", "threads"), ("--set", "workers=-1", "workers"),
                             ("--size", "65536", "2048"), ("--lr", "nan", "lr"), ("--set", "lr=1e400", "lr"),
                             ("--batch-size", "0", "batch"), ("--epochs", "0", "epochs"), ("--max-steps", "-1", "max_steps"),
                             ("--set", "nonsense=1", "nonsense"), ("--data", "{d}/nowhere", "nowhere")):
        add(Case(f"train {opt} {val}", ["train", "quick", "-o", "{d}/run", "--max-steps", "1", opt, val], needle=needle,
                 isolate=opt in ("--threads", "--size"), timeout=300))
    # --- adapt --------------------------------------------------------------------------------------------
    soc = ["--set", "steps=1", "--set", "size=64", "--set", "holdout=0"]  # one small step when nothing refuses it
    for name in ("adapted.pt", "soc_summary.json", "log.jsonl"):
        add(Case(f"adapt: a user's {name} in -o", ["adapt", ck, "{d}/frames", "-o", "{d}/soc", *soc],
                 setup=chain(photo("frames/a.png"), photo("frames/b.png", 40), put(f"soc/{name}", "mine")),
                 keep=(f"soc/{name}",), needle=name))
    for opt, needle in (("lr=nan", "lr"), ("threads=100000", "threads"), ("size=65536", "size")):
        add(Case(f"adapt --set {opt}", ["adapt", ck, "{d}/frames", "-o", "{d}/soc", *soc, "--set", opt],
                 setup=chain(photo("frames/a.png"), photo("frames/b.png", 40)), needle=needle, isolate=True,
                 timeout=300))
    # --- pipeline -----------------------------------------------------------------------------------------
    pipe = ["pipeline", ck, "-o", "{d}/pipe", "--formats", "onnx:fp32", "--no-search", "--limit", "1", "--iterations",
            "1", "--warmup", "0", "--max-seconds", "1", "--no-speed-gate", "--size", "64"]
    add(Case("pipeline into a user's folder", pipe, setup=put("pipe/thesis.txt", "mine"), keep=("pipe/thesis.txt",),
             needle="pipe"))
    add(Case("pipeline: a fake pipeline manifest over a user's artifacts/", pipe,
             setup=chain(put("pipe/manifest.json", json.dumps({"kind": "modnet-edge pipeline"})),
                         put("pipe/artifacts/mine.onnx", "mine")), keep=("pipe/artifacts/mine.onnx", "pipe/manifest.json"),
             needle="pipeline"))
    add(Case("pipeline re-run after Ctrl-C (issue)", pipe, expect="ok", isolate=True, slow=True, timeout=900))
    for opt, val, needle in (("--limit", "0", "limit"), ("--limit", "-1", "limit"), ("--threads", "100000", "threads"),
                             ("--iterations", "0", "iterations"), ("--max-seconds", "nan", "max_seconds"),
                             ("--size", "65536", "2048")):
        argv = list(pipe)
        i = argv.index(opt) if opt in argv else None
        if i is not None:
            argv[i + 1] = val
        else:
            argv += [opt, val]
        add(Case(f"pipeline {opt} {val}", argv, needle=needle, isolate=opt in ("--threads", "--size"), timeout=300))
    add(Case("pipeline -o a file", [*pipe[:3], "{d}/f", *pipe[4:]], setup=put("f", "x"), keep=("f",), needle="folder"))
    # --- report, parity, benchmark, evaluate, quality, diagnose -----------------------------------------
    for name in ("junit.xml", "report.html", "summary.json", "summary.md"):
        add(Case(f"report: a user's {name}", ["report", onnx_, "-o", "{d}/rep", "--limit", "1"],
                 setup=put(f"rep/{name}", "mine"), keep=(f"rep/{name}",), needle=name))
    add(Case("report --limit 0", ["report", onnx_, "-o", "{d}/rep", "--limit", "0"], needle="limit"))
    add(Case("report -o a file", ["report", onnx_, "-o", "{d}/f"], setup=put("f", "x"), keep=("f",), needle="f"))
    add(Case("report: twice into its own folder", ["report", onnx_, "-o", "{d}/rep", "--limit", "1"], expect="ok",
             setup=cli("report", onnx_, "-o", "{d}/rep", "--limit", "1"), slow=True))
    for val in ("0", "-1"):
        add(Case(f"parity --limit {val} (issue)", ["parity", onnx_, "--limit", val], needle="limit"))
    for val in ("NaN", "inf", "-1", "abc"):
        add(Case(f"parity --budget fp32={val}", ["parity", onnx_, "--budget", f"fp32={val}"], needle="budget"))
    add(Case("parity --json over a user file", ["parity", onnx_, "--limit", "1", "--json", "{d}/r.json"],
             setup=put("r.json", "mine"), keep=("r.json",), needle="r.json"))
    add(Case("parity --json onto the artifact", ["parity", "{d}/m.onnx", "--limit", "1", "--json", "{d}/m.onnx"],
             setup=copy("onnx", "m.onnx"), keep=("m.onnx",), needle="m.onnx"))
    add(Case("parity --threads 100000", ["parity", onnx_, "--limit", "1", "--threads", "100000"], needle="threads",
             isolate=True, timeout=120))
    add(Case("parity --images an empty folder", ["parity", onnx_, "--images", "{d}/e"], setup=mkdir("e"),
             needle="images"))
    add(Case("parity: twice to its own JSON", ["parity", onnx_, "--limit", "1", "--json", "{d}/r.json"], expect="ok",
             setup=cli("parity", onnx_, "--limit", "1", "--json", "{d}/r.json")))
    bench = ["benchmark", onnx_, "--size", "64", "--iterations", "1", "--warmup", "0"]
    for opt, val, needle in (("--size", "65536", "2048"), ("--threads", "100000", "threads"),
                             ("--iterations", "0", "iterations"), ("--max-seconds", "nan", "max_seconds"),
                             ("--max-seconds", "0", "max_seconds"), ("--batch", "100000", "batch")):
        argv = list(bench)
        if opt in argv:
            argv[argv.index(opt) + 1] = val
        else:
            argv += [opt, val]
        add(Case(f"benchmark {opt} {val}", argv, needle=needle, isolate=True, timeout=120))
    add(Case("benchmark --json over a user file", [*bench, "--json", "{d}/b.jsonl"], setup=put("b.jsonl", "mine"),
             keep=("b.jsonl",), needle="b.jsonl"))
    add(Case("evaluate --limit 0", ["evaluate", onnx_, "--data", "{d}/data", "--limit", "0"],
             setup=chain(photo("data/image/a.png"), pil("data/matte/a.png", lambda: Image.new("L", (SIDE, SIDE), 128))),
             needle="limit"))
    add(Case("evaluate --json over a user file", ["evaluate", onnx_, "--data", "{d}/data", "--json", "{d}/e.json"],
             setup=chain(photo("data/image/a.png"), pil("data/matte/a.png", lambda: Image.new("L", (SIDE, SIDE), 128)),
                         put("e.json", "mine")), keep=("e.json",), needle="e.json"))
    add(Case("quality --limit 0", ["quality", onnx_, "--segmentation", "{d}/seg", "--limit", "0"],
             setup=chain(photo("seg/image/a.png"), pil("seg/mask/a.png", lambda: Image.new("L", (SIDE, SIDE), 255))),
             needle="limit"))
    add(Case("diagnose --json over a user file", ["diagnose", onnx_, "--json", "{d}/d.json"], setup=put("d.json", "mine"),
             keep=("d.json",), needle="d.json"))
    # --- log files ----------------------------------------------------------------------------------------
    add(Case("--log-file is a folder", ["formats", "--log-file", "{d}/logs"], setup=mkdir("logs"), needle="folder"))
    add(Case("--log-file is /dev/full", ["formats", "--log-file", "/dev/full"], expect="env", needle="/dev/full"))
    add(Case("--log-file is a symlink", ["formats", "--log-file", "{d}/l.log"],
             setup=chain(put("real.log", "mine\n"), link("l.log", "{d}/real.log")), keep=("real.log", "l.log"),
             needle="link"))
    add(Case("--log-file below a file", ["formats", "--log-file", "{d}/f/x.log"], setup=put("f", "x"), keep=("f",),
             needle="file"))
    add(Case("--log-file in a new folder", ["formats", "--log-file", "{d}/new/deeper/x.log"], expect="ok",
             post=has_file("new/deeper/x.log")))
    add(Case("--log-file appended to", ["formats", "--log-file", "{d}/x.log"], expect="ok", setup=put("x.log", "earlier\n"),
             post=lambda ctx, res: None if (ctx.d / "x.log").read_text().startswith("earlier\n") else "data loss: log replaced"))
    add(Case("--log-file is the artifact read", ["info", "{d}/m.onnx", "--log-file", "{d}/m.onnx"],
             setup=copy("onnx", "m.onnx"), keep=("m.onnx",), needle="m.onnx"))
    add(Case("--log-file is immutable", ["formats", "--log-file", "{d}/imm.log"], root=True,
             setup=chain(put("imm.log", "mine\n"), chattr("imm.log")), keep=("imm.log",), needle="imm.log"))
    add(Case("--log-file over ulimit -f", ["formats", "--log-file", "{d}/x.log"], expect="env", isolate=True, fsize=200,
             needle="x.log"))
    # --- the machine: disk full, file-size limits, read-only storage ---------------------------------
    add(Case("export: disk full (RAM disk of 4 MB)", ["export", ck, "-o", "{d}/disk/m.onnx", "--static-shape", "64x64"],
             expect="env", root=True, isolate=True, setup=ramdisk("disk", "4m"), needle="space",
             post=no_temporaries("disk")))
    add(Case("export: disk full over an artifact of ours", ["export", ck, "-o", "{d}/disk/m.onnx", "--static-shape",
             "64x64"], expect="env", root=True, isolate=True, needle="space",
             setup=ramdisk("disk", "40m", then=copy("onnx", "disk/m.onnx")),
             post=both(no_temporaries("disk"), still_loads("disk/m.onnx"))))
    add(Case("export: disk full at the pending manifest", ["export", ck, "-o", "{d}/disk/m.onnx", "--static-shape",
             "64x64"], expect="env", root=True, isolate=True, needle="space",
             setup=lambda ctx: ramdisk("disk", "40m", fill_to=ctx.fx["onnx"].stat().st_size + 4096)(ctx),
             post=no_temporaries("disk")))
    add(Case("predict: disk full", ["predict", onnx_, "{d}/in", "-o", "{d}/disk"], expect="env", root=True, isolate=True,
             setup=chain(photo("in/a.png", noise=True, size=(512, 512)), ramdisk("disk", "64k")), needle="space",
             post=no_temporaries("disk")))
    add(Case("train: disk full at the checkpoint", ["train", "quick", "-o", "{d}/disk/run", *tiny], expect="env",
             root=True, isolate=True, setup=ramdisk("disk", "2m"), needle="space", slow=True))
    add(Case("export: read-only file system", ["export", ck, "-o", "{d}/ro/m.onnx", "--static-shape", "64x64"],
             expect="env", root=True, isolate=True, setup=ramdisk("ro", "4m", readonly=True), needle="read-only"))
    add(Case("export: immutable folder", ["export", ck, "-o", "{d}/imm/m.onnx", "--static-shape", "64x64"],
             root=True, setup=chain(mkdir("imm"), chattr("imm")), needle="permission"))
    add(Case("export: ulimit -f (issue)", ["export", ck, "-o", "{d}/m.onnx", "--static-shape", "64x64"], expect="env",
             isolate=True, fsize=1 << 20, needle="too large", post=no_temporaries()))
    add(Case("predict: ulimit -f", ["predict", onnx_, "{d}/in", "-o", "{d}/out"], expect="env", isolate=True,
             fsize=20000, setup=photo("in/a.png", noise=True, size=(256, 256)), needle="too large",
             post=no_temporaries("out")))
    add(Case("train: ulimit -f at the checkpoint", ["train", "quick", "-o", "{d}/run", *tiny], expect="env",
             isolate=True, fsize=1 << 20, needle="too large", slow=True))
    # --- calibration cache -----------------------------------------------------------------------------
    q = ["export", ck, "--precision", "int8", "--static-shape", "64x64", "--calibration", "synthetic",
         "--calibration-size", "2", "--calibration-cache", "{d}/cache", "-o", "{d}/q.onnx"]
    for kind in ("x1000", "corrupt", "nan", "list", "folder", "empty", "binary"):
        add(Case(f"calibration cache entry {kind}", q, expect="ok", setup=poison_cache(kind), slow=True,
                 post=says("note: calibration cache entry")))
    add(Case("calibration cache: a sound entry is reused", q, expect="ok", setup=poison_cache("none"), slow=True,
             post=lambda ctx, res: "silent: a sound entry was not reused" if "note:" in res.err else None))
    add(Case("calibration cache path is a file", q, setup=put("cache", "x"), keep=("cache",), needle="cache"))
    # --- output hygiene and multi-process scenarios --------------------------------------------------------
    add(Case("ONNX Runtime warning colour codes in a pipe", ["info", "{warns}"], expect="ok", isolate=True,
             post=lambda ctx, res: "misleading: colour codes in piped output" if "\x1b[" in res.err else None))
    add(Case("two writers, one artifact: the slow one paused in its commit (issue)", ["_two_writers"], expect="ok",
             isolate=True, post=mixed, slow=True))
    add(Case("Core ML package killed between its two renames (issue)", ["_kill_package"], expect="ok", isolate=True,
             slow=True, post=no_temporaries()))
    add(Case("ONNX file killed between its renames", ["_kill_file"], expect="ok", isolate=True, slow=True,
             post=no_temporaries()))
    return C


SCENARIOS: dict[str, Callable[[Ctx], Result]] = {
    "pipeline re-run after Ctrl-C (issue)": pipeline_interrupted_then_rerun,
    "two writers, one artifact: the slow one paused in its commit (issue)": two_writers_one_path,
    "Core ML package killed between its two renames (issue)": killed_between_renames(
        "coreml", "m.mlpackage", ["--static-shape", "64x64"]),
    "ONNX file killed between its renames": killed_between_renames("onnx", "m.onnx", ["--static-shape", "64x64"]),
}


# ------------------------------------------------------------------------------------------------------
# Fixtures and the driver
# ------------------------------------------------------------------------------------------------------
def make_fixtures(root: Path) -> dict[str, Path]:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    import modnet_edge
    from modnet_edge.model.checkpoint import build_from_checkpoint, random_checkpoint, save_checkpoint

    fx: dict[str, Path] = {}
    root.mkdir(parents=True, exist_ok=True)
    fx["ckpt"] = save_checkpoint(root / "ckpt.pt", build_from_checkpoint(random_checkpoint()))
    fx["onnx"] = modnet_edge.export(fx["ckpt"], "onnx", "fp32", root / "m.onnx", static_shape=(SIDE, SIDE))
    if modnet_edge.FORMATS["coreml"].can_export():
        fx["mlpackage"] = modnet_edge.export(fx["ckpt"], "coreml", "fp32", root / "m.mlpackage", static_shape=(SIDE, SIDE))
    graph = helper.make_graph(
        [helper.make_node("ReduceMean", ["input"], ["m"], axes=[1], keepdims=1), helper.make_node("Sigmoid", ["m"], ["matte"])],
        "foreign", [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, SIDE, SIDE])],
        [helper.make_tensor_value_info("matte", TensorProto.FLOAT, [1, 1, SIDE, SIDE])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=9)
    onnx.save(model, str(root / "foreign.onnx"))
    fx["foreign"] = root / "foreign.onnx"
    model.graph.initializer.append(numpy_helper.from_array(np.ones(3, np.float32), "unused"))
    onnx.save(model, str(root / "warns.onnx"))
    fx["warns"] = root / "warns.onnx"
    return fx


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="only the cases that take seconds")
    parser.add_argument("--only", action="append", default=[], help="cases whose name contains this (repeatable)")
    parser.add_argument("--json", type=Path, help="write every case's class and reason here")
    parser.add_argument("--work", type=Path, help="work folder (default: a new temporary one)")
    args = parser.parse_args(argv)
    if Path.cwd().joinpath("modnet_edge").is_dir():
        parser.error("run it from outside the repository root, so PYTHONPATH decides which code is swept")
    import modnet_edge

    work = args.work or Path(tempfile.mkdtemp(prefix="sweep-nothing-lost-"))
    print(f"sweeping {Path(modnet_edge.__file__).parent} in {work}", flush=True)
    fx = make_fixtures(work / "fixtures")
    can_root = _can_mount() and shutil.which("chattr") is not None
    cases = [c for c in build_cases() if (not args.quick or not c.slow)
             and (not args.only or any(o in c.name for o in args.only))]
    rows, counts, skipped = [], Counter(), []
    t0 = time.time()
    for i, case in enumerate(cases):
        if case.root and not can_root:
            skipped.append(case.name)
            continue
        if "coreml" in " ".join(case.argv) + case.name.lower() and "mlpackage" not in fx and "package" in case.name:
            skipped.append(case.name)
            continue
        ctx = Ctx(work / f"case{i:03d}", fx)
        ctx.d.mkdir()
        t = time.time()
        try:
            if case.setup is not None:
                case.setup(ctx)
            ctx.snapshot = {k: _state(ctx.d / k) for k in case.keep}
            res = SCENARIOS[case.name](ctx) if case.name in SCENARIOS else run_case(case, ctx)
            cls, why = judge(case, ctx, res)
        except Exception as exc:  # noqa: BLE001 - a broken setup is reported, never counted as a pass
            cls, why = "raw", f"setup or scenario failed: {type(exc).__name__}: {exc}"[:300]
        finally:
            if ctx.mounts or case.root:
                _unmount_all(ctx)
        counts[cls] += 1
        rows.append({"case": case.name, "class": cls, "why": why, "seconds": round(time.time() - t, 1)})
        if cls in BAD:
            print(f"  {cls.upper():<10} {case.name}: {why}", flush=True)
    total = sum(counts.values())
    print(f"\n{total} cases in {time.time() - t0:.0f} s" + (f" ({len(skipped)} skipped: root/mount or Core ML "
                                                            "not available)" if skipped else ""))
    for cls in CLASSES:
        print(f"  {cls:<10} {counts[cls]}")
    if args.json:
        args.json.write_text(json.dumps({"counts": {c: counts[c] for c in CLASSES}, "skipped": skipped,
                                         "cases": rows}, indent=2) + "\n")
    return 1 if any(counts[c] for c in BAD) else 0


if __name__ == "__main__":
    sys.exit(main())
