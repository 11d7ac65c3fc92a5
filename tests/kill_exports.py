"""kill -9 at random instants of real Core ML exports: the old-or-new promise for folder artifacts.

Two experiments, each ``--runs`` times (default 20), on one output path that already holds a package of
ours:

* ``single``: one export (fp32 and fp16 in turn) killed with SIGKILL at a random instant between its start
  and 110 % of an export's measured duration;
* ``concurrent``: two exports of different precisions started together, one of them (chosen at random)
  killed at a random instant, the other left to finish.

After each run: the package must be there and load as one pair (lost: it is missing or unreadable; mixed:
its manifest or embedded metadata does not describe the package in place, or its integrity record fails);
then the next write (a complete export) must leave no temporaries behind.  Prints the counts; exit 1 when
any is not 0.  The deterministic kills before every commit step are tests/test_safe_outputs.py.

Run: ``python tests/kill_exports.py [--runs N] [--work DIR]`` (needs the coreml extra; ~20 s a run on 2 idle cores).
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

EXPORT = """
import sys
import modnet_edge
modnet_edge.export(sys.argv[1], "coreml", sys.argv[3], sys.argv[2], static_shape=(64, 64))
"""


def export_proc(ckpt: Path, target: Path, precision: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", EXPORT, str(ckpt), str(target), precision],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def check_pair(target: Path) -> str | None:
    """None when ``target`` is one whole, consistent, sealed package; else what is wrong ("lost ..." or
    "mixed ...")."""
    from modnet_edge.core import read_manifest, reconcile_metadata
    from modnet_edge.core.containers import read_embedded
    from modnet_edge.core.errors import ModnetEdgeError
    from modnet_edge.runtimes.loader import detect_format

    try:
        detect_format(target)  # a reader: puts back a package a killed writer had set aside
    except ModnetEdgeError as exc:
        return f"lost: {exc}"
    if not target.is_dir():
        return "lost: no package"
    try:
        manifest = read_manifest(target)
        meta = reconcile_metadata(target, read_embedded("coreml", target))
    except ModnetEdgeError as exc:
        return f"mixed: {exc}"
    except Exception as exc:  # noqa: BLE001 - a package coremltools cannot read is a lost one
        return f"lost: unreadable package ({type(exc).__name__}: {exc})"
    if manifest is None or meta is None:
        return "mixed: no manifest beside the package"
    return None


def next_write(path: Path, run: int) -> int:
    """The next write to the folder, by another process: a small file through the same writer every
    command uses (which first finishes or undoes what dead writers left in the folder)."""
    code = "import sys; from modnet_edge.core import atomic_write_text; atomic_write_text(sys.argv[1], sys.argv[2])"
    return subprocess.run([sys.executable, "-c", code, str(path), f"run {run}"], timeout=600).returncode


def temporaries(folder: Path) -> list[str]:
    from modnet_edge.core import TEMP_MARK

    return [p.name for p in folder.iterdir() if TEMP_MARK in p.name or p.name.endswith(".pending")]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--work", type=Path)
    parser.add_argument("--seed", type=int, default=26)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    import modnet_edge
    from modnet_edge.model.checkpoint import build_from_checkpoint, random_checkpoint, save_checkpoint

    if not modnet_edge.FORMATS["coreml"].can_export():
        print("the coreml extra is not installed: nothing to test")
        return 0
    rng = random.Random(args.seed)
    work = args.work or Path(tempfile.mkdtemp(prefix="kill-exports-"))
    work.mkdir(parents=True, exist_ok=True)
    ckpt = save_checkpoint(work / "c.pt", build_from_checkpoint(random_checkpoint()))
    target = work / "out" / "m.mlpackage"
    t = time.time()
    proc = export_proc(ckpt, target, "fp32")
    assert proc.wait() == 0, proc.stderr.read() if proc.stderr else ""
    duration = time.time() - t
    print(f"one Core ML export takes {duration:.1f} s here; killing at random instants in [0, {1.1 * duration:.1f}] s")
    results = {"single": {"lost": 0, "mixed": 0, "temporaries": 0, "runs": 0},
               "concurrent": {"lost": 0, "mixed": 0, "temporaries": 0, "runs": 0}}
    log = []
    for experiment in ("single", "concurrent"):
        for run in range(args.runs):
            delay = rng.uniform(0, 1.1 * duration)
            if experiment == "single":
                procs = [export_proc(ckpt, target, ("fp16", "fp32")[run % 2])]
                victim = procs[0]
            else:
                procs = [export_proc(ckpt, target, "fp32"), export_proc(ckpt, target, "fp16")]
                victim = rng.choice(procs)
            time.sleep(delay)
            victim.kill()
            codes = [p.wait(timeout=600) for p in procs]
            problem = check_pair(target)
            kind = problem.split(":", 1)[0] if problem else None
            if kind:
                results[experiment][kind] += 1
            next_code = next_write(target.parent / "next.json", run)
            left = temporaries(target.parent)
            if left or next_code != 0:
                results[experiment]["temporaries"] += 1
            results[experiment]["runs"] += 1
            entry = {"experiment": experiment, "run": run, "kill_at_s": round(delay, 2), "exit_codes": codes,
                     "problem": problem, "next_write_exit": next_code, "temporaries_after_next_write": left}
            log.append(entry)
            print(json.dumps(entry), flush=True)
    final = export_proc(ckpt, target, "fp16")  # and the package is still ours to replace, whole
    results["final_export"] = {"exit": final.wait(timeout=900), "problem": check_pair(target),
                               "temporaries": temporaries(target.parent)}
    print(json.dumps(results, indent=2))
    if args.json:
        args.json.write_text(json.dumps({"duration_s": duration, "results": results, "runs": log}, indent=2) + "\n")
    bad = [v for name, r in results.items() if name != "final_export" for k, v in r.items() if k != "runs" and v]
    final_ok = results["final_export"]["exit"] == 0 and not results["final_export"]["problem"] \
        and not results["final_export"]["temporaries"]
    return 1 if bad or not final_ok else 0


if __name__ == "__main__":
    sys.exit(main())
