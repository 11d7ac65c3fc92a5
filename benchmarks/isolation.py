"""Each benchmark subject in its own worker process, taking turns, and a check that the machine was quiet.

Why: runtimes that share a process disturb each other.  Their thread pools stay alive between calls
(ONNX Runtime's and LiteRT's spin, PyTorch's OpenMP threads collapse when a core is busy): measured on
this project's 2-core machines, PyTorch fp32 at 512x512 took 4,248 ms p50 beside ONNX Runtime and
LiteRT in one process and ~420 ms alone.  So every subject is opened in a fresh interpreter (no
inherited thread pools), warmed up there, and then timed in rounds: the parent asks one worker at a
time for a chunk of iterations, so only one subject runs at any moment and a load spike still falls
on every subject alike (the one timing loop, :func:`.measure.time_interleaved`; each turn starts with one
untimed call, :func:`.measure.timed_turn`).  Workers are plain ``python -m`` subprocesses speaking
length-prefixed pickles over their stdin/stdout, not ``multiprocessing`` children: spawning those re-imports the caller's main
module, which breaks any script that calls :func:`modnet_edge.benchmark` without a ``__main__`` guard.

Stability: while the subjects run, the parent reads the machine's busy CPU time (``/proc/stat``) and
subtracts what its own workers used (``/proc/<pid>/stat``): the rest is *foreign* load.  A result is
flagged unstable when foreign load took more than :data:`FOREIGN_LIMIT` of the cores during its run,
or its calls spread widely (p75 more than :data:`SPREAD_LIMIT` times p25: quartiles, because one slow
call among ten moves p90 on a quiet machine too); ratio verdicts built on an unstable result are not
given (see :mod:`.targets`).
"""

from __future__ import annotations

import os
import pickle
import struct
import subprocess
import sys
import tempfile
import traceback
from pathlib import Path
from typing import Any

from modnet_edge.benchmarks.measure import Turns, time_interleaved, timed_turn

FOREIGN_LIMIT = 0.15  # share of all cores used by other processes while timing
SPREAD_LIMIT = 1.3  # p75 / p25: robust to one slow call among ten (PyTorch has such calls on a quiet machine)


def _proc_stat_busy() -> tuple[float, float] | None:
    """(busy, total) clock ticks of the whole machine since boot, or None off Linux."""
    try:
        with open("/proc/stat", encoding="utf-8") as fh:
            fields = [float(v) for v in fh.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0.0)  # idle + iowait
    total = sum(fields[:8])  # user nice system idle iowait irq softirq steal (guest is inside user)
    return total - idle, total


def _process_ticks(pid: int) -> float | None:
    """utime + stime (all threads) of one process, in clock ticks."""
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8") as fh:
            parts = fh.read().rsplit(")", 1)[1].split()
        return float(parts[11]) + float(parts[12])
    except (OSError, ValueError, IndexError):
        return None


class LoadMeter:
    """Foreign CPU load while a block runs: machine busy time minus our own processes' time."""

    def __init__(self, pids: list[int]) -> None:
        self.pids = pids
        self.foreign = 0.0
        self.total = 0.0

    def __enter__(self) -> LoadMeter:
        self._m0 = _proc_stat_busy()
        self._p0 = [_process_ticks(p) for p in self.pids]
        return self

    def __exit__(self, *exc: object) -> None:
        m1 = _proc_stat_busy()
        p1 = [_process_ticks(p) for p in self.pids]
        if self._m0 is None or m1 is None or None in self._p0 or None in p1:
            return
        ours = sum(b - a for a, b in zip(self._p0, p1))  # type: ignore[operator]
        busy, total = m1[0] - self._m0[0], m1[1] - self._m0[1]
        self.foreign += max(0.0, busy - ours)
        self.total += total

    @property
    def share(self) -> float | None:
        """Foreign busy time as a share of all cores' time (None where it cannot be read)."""
        return self.foreign / self.total if self.total > 0 else None


class Channel:
    """Length-prefixed pickles over a pair of byte streams (a worker's stdin/stdout)."""

    def __init__(self, reader: Any, writer: Any) -> None:
        self.reader, self.writer = reader, writer

    def send(self, obj: Any) -> None:
        data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
        self.writer.write(struct.pack("<Q", len(data)) + data)
        self.writer.flush()

    def recv(self) -> Any:
        head = self._read(8)
        return pickle.loads(self._read(struct.unpack("<Q", head)[0]))

    def _read(self, n: int) -> bytes:
        chunks, left = [], n
        while left:
            chunk = self.reader.read(left)
            if not chunk:
                raise EOFError("benchmark worker closed its pipe")
            chunks.append(chunk)
            left -= len(chunk)
        return b"".join(chunks)


def worker_main() -> None:
    """Entry point of a worker process (``python -m modnet_edge.benchmarks.isolation``): the protocol
    uses the original stdout; anything the runtimes print goes to stderr instead."""
    proto_out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    channel = Channel(sys.stdin.buffer, proto_out)
    spec, cfg, image, run_id = channel.recv()
    _serve(channel, spec, cfg, image, run_id)


def _serve(channel: Channel, spec: tuple, cfg: Any, image: Any, run_id: str) -> None:
    """One subject: open, warm up, then run chunks on request; finally send its BenchResults."""
    from modnet_edge.benchmarks.device_info import gpu_memory_mb
    from modnet_edge.benchmarks.measure import _result, open_and_warm, subject_from_spec

    handle = None
    try:
        subject = subject_from_spec(spec)
        with tempfile.TemporaryDirectory(prefix="modnet-edge-bench-") as tmp:
            handle, jobs, extra = open_and_warm(subject, cfg, image, Path(tmp))
            channel.send(("ready", len(jobs)))
            while True:
                msg = channel.recv()
                if msg[0] == "run":
                    _, j, n = msg
                    samples = timed_turn(jobs[j].step, n)
                    jobs[j].samples_ms += samples
                    channel.send(("samples", samples))
                elif msg[0] == "finish":
                    gpu = gpu_memory_mb(os.getpid())
                    channel.send(("results", [_result(job, cfg, run_id, extra, gpu) for job in jobs]))
                    return
    except BaseException as exc:  # noqa: BLE001 - reported to the parent, which raises it
        from modnet_edge.core.errors import ModnetEdgeError

        kind = type(exc).__name__ if isinstance(exc, ModnetEdgeError) else "RuntimeError"
        detail = str(exc) if isinstance(exc, ModnetEdgeError) else "".join(traceback.format_exception(exc))
        try:
            channel.send(("error", kind, detail))
        except (OSError, ValueError):
            pass
    finally:
        if handle is not None:
            handle.close()


def _raise(kind: str, detail: str, label: str) -> None:
    from modnet_edge.core import errors

    cls = getattr(errors, kind, None)
    if isinstance(cls, type) and issubclass(cls, errors.ModnetEdgeError):
        raise cls(detail)
    raise RuntimeError(f"benchmark worker for {label} failed:\n{detail}")


class _Worker:
    def __init__(self, subject: Any, payload: tuple) -> None:
        self.subject = subject
        self.proc = subprocess.Popen([sys.executable, "-m", "modnet_edge.benchmarks.isolation"],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        self.channel = Channel(self.proc.stdout, self.proc.stdin)
        self.channel.send(payload)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def receive(self) -> tuple:
        try:
            msg = self.channel.recv()
        except EOFError:
            raise RuntimeError(f"benchmark worker for {self.subject.label} died (exit code "
                               f"{self.proc.wait(timeout=10)}); its messages are above") from None
        if msg[0] == "error":
            _raise(msg[1], msg[2], self.subject.label)
        return msg

    def close(self) -> None:
        for stream in (self.proc.stdin, self.proc.stdout):
            try:
                stream.close()
            except OSError:
                pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


class _RemoteJob(Turns):
    """One subject x mode x size served by a worker process, as the timing loop sees it: a turn is a
    request to the worker, with the machine's load metered around it."""

    def __init__(self, worker: _Worker, index: int, meter: LoadMeter) -> None:
        super().__init__()
        self.worker, self.index, self.meter = worker, index, meter

    def turn(self, n: int) -> list[float]:
        with self.meter:
            self.worker.channel.send(("run", self.index, n))
            return self.worker.receive()[1]


def run_isolated(subjects: list[Any], cfg: Any, image: Any, run_id: str, progress: bool = True) -> list[Any]:
    """Time every subject in its own process, in interleaved rounds; returns their BenchResults with
    ``extra["stability"]`` (foreign load, p90/p50, and whether the figures can be trusted)."""
    from modnet_edge.core.console import progress as progress_bar

    workers: list[_Worker] = []
    try:
        for subject in subjects:
            workers.append(_Worker(subject, (subject.spec, cfg, image, run_id)))
        counts = [w.receive()[1] for w in progress_bar(workers, desc="open + warm up (one process each)",
                                                         disable=not progress, leave=False)]
        pids = [os.getpid()] + [w.pid for w in workers]
        jobs = {(w, j): _RemoteJob(workers[w], j, LoadMeter(pids)) for w, n in enumerate(counts) for j in range(n)}
        time_interleaved(list(jobs.values()), cfg, "benchmark (isolated, interleaved)", progress)
        results: list[Any] = []
        for w, worker in enumerate(workers):
            worker.channel.send(("finish",))
            for j, r in enumerate(worker.receive()[1]):
                r.extra["stability"] = stability(r, jobs[(w, j)].meter.share)
                r.config["isolated"] = True
                results.append(r)
        return results
    finally:
        for worker in workers:
            worker.close()


def stability(result: Any, foreign_share: float | None) -> dict[str, Any]:
    """Whether a result's figures can be trusted: a quiet machine and a tight spread."""
    lat = result.latency_ms
    quartiles = (result.extra or {}).get("quartiles_ms")
    spread = quartiles[1] / quartiles[0] if quartiles and quartiles[0] > 0 else None
    why = []
    if foreign_share is not None and foreign_share > FOREIGN_LIMIT:
        why.append(f"other processes used {foreign_share:.0%} of the CPU while it ran")
    if spread is not None and spread > SPREAD_LIMIT:
        why.append(f"its middle half of calls spans {spread:.2f}x (p75 / p25)")
    try:
        load1 = os.getloadavg()[0]
    except OSError:
        load1 = None
    return {"stable": not why, "why": "; ".join(why), "foreign_cpu_share": foreign_share,
            "p75_over_p25": round(spread, 3) if spread else None,
            "p90_over_p50": round(lat.p90 / lat.p50, 3) if lat.p50 and lat.p90 else None, "loadavg_1m": load1}


if __name__ == "__main__":
    worker_main()
