"""Training runs: exact resume after SIGKILL, DDP under torchrun (gloo, 2 CPU processes), checkpoints, evaluate."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import modnet_edge
from modnet_edge.core.errors import CheckpointError, ConfigError
from modnet_edge.model.checkpoint import read_checkpoint

# tiny but complete: 2 epochs x 3 steps, validation each epoch, a resumable checkpoint after every step
TINY = {"size": 64, "batch_size": 2, "epochs": 2, "synthetic_count": 6, "synthetic_val_count": 2,
        "threads": 1, "save_every": 1, "log_every": 1, "lr_step_epochs": 2, "progress": False,
        "zero_init_residual": True}


def _records(folder: Path) -> list[dict]:
    path = folder / "log.jsonl"
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:  # a line cut by the kill
            pass
    return out


# a training run that dies by SIGKILL (no cleanup of any kind) just after checkpointing epoch 1, batch 1
_KILL_AFTER_CHECKPOINT = """
import os, signal, sys
from modnet_edge.training import trainer
from modnet_edge.cli import main

save_last = trainer.Trainer.save_last

def save_then_die(self):
    save_last(self)
    if self.epoch == 1 and self.batch_in_epoch == 1:
        os.kill(os.getpid(), signal.SIGKILL)

trainer.Trainer.save_last = save_then_die
sys.exit(main(sys.argv[1:]))
"""


def _env() -> dict:
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    env["PYTHONPATH"] = os.pathsep.join([str(Path(__file__).resolve().parents[1]), env.get("PYTHONPATH", "")])
    return env


@pytest.mark.slow
def test_sigkill_mid_epoch_then_resume_gives_identical_weights(tmp_path):
    cfg = tmp_path / "tiny.json"
    cfg.write_text(json.dumps(TINY))
    killed = tmp_path / "killed"
    # The run kills itself with SIGKILL right after its resumable checkpoint at epoch 1, batch 1 is on
    # disk: the same instant on any machine, however fast (polling the log from here raced the run).
    proc = subprocess.run([sys.executable, "-c", _KILL_AFTER_CHECKPOINT, "train", str(cfg), "-o", str(killed)],
                          env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=240)
    assert proc.returncode == -signal.SIGKILL, f"exit {proc.returncode}: " + proc.stderr.decode()[-2000:]
    state = read_checkpoint(killed / "last.pt").training_state
    assert state is not None and (state["epoch"], state["batch_in_epoch"], state["step"]) == (1, 1, 4)

    resumed = modnet_edge.train(dict(TINY), output=killed, resume=True)
    straight = modnet_edge.train(dict(TINY), output=tmp_path / "straight")
    a, b = read_checkpoint(killed / "last.pt"), read_checkpoint(tmp_path / "straight" / "last.pt")
    assert a.training_state["step"] == b.training_state["step"] == 6
    assert a.state_dict.keys() == b.state_dict.keys()
    for key in a.state_dict:
        assert torch.equal(a.state_dict[key], b.state_dict[key]), key
    mom_a = [s["momentum_buffer"] for s in a.training_state["optimizer"]["state"].values()]
    mom_b = [s["momentum_buffer"] for s in b.training_state["optimizer"]["state"].values()]
    assert all(torch.equal(x, y) for x, y in zip(mom_a, mom_b))
    assert resumed.name == "best.pt" and read_checkpoint(resumed).provenance["synthetic"] is True
    # the resumed run continued the same logs rather than starting new ones
    starts = [r for r in _records(killed) if r.get("kind") == "start"]
    assert len(starts) == 2 and starts[1]["resumed_at_step"] == state["step"]
    with pytest.raises(ConfigError, match="cannot resume: size"):
        modnet_edge.train({**TINY, "size": 96}, output=killed, resume=True)
    with pytest.raises(CheckpointError, match="no training state"):
        modnet_edge.train(dict(TINY), output=tmp_path / "x", resume=killed / "best.pt")


@pytest.mark.slow
def test_ddp_two_gloo_processes_only_rank0_writes(tmp_path):
    cfg = tmp_path / "ddp.json"
    cfg.write_text(json.dumps({**TINY, "epochs": 1, "save_every": 0}))
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "modnet_edge.cli", "train", str(cfg), "-o", str(out)]
    res = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    recs = _records(out)
    starts = [r for r in recs if r["kind"] == "start"]
    assert len(starts) == 1 and starts[0]["world"] == 2  # one writer although two processes trained
    assert starts[0]["steps_per_epoch"] == 3  # 6 samples split over 2 ranks, 1 per rank per step
    assert len([r for r in recs if r["kind"] == "train"]) == 3
    assert sorted(p.name for p in out.iterdir() if p.suffix == ".pt") == ["best.pt", "last.pt"]
    state = read_checkpoint(out / "last.pt").training_state
    assert state["world"] == 2 and len(state["rng"]) == 2  # every rank's RNG state, for exact resume
    assert res.stdout.count("best checkpoint:") == 1
