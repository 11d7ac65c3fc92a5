"""Run logs: every record as one JSON line, epoch summaries as CSV rows, TensorBoard when installed.

Only the main process (rank 0) writes.  Files are appended line by line and flushed, so a killed run
keeps everything logged before the kill and a resumed run continues the same files -- only files this
toolkit began (:class:`~modnet_edge.core.files.AppendOutput`): a user's own ``log.jsonl`` is refused.
"""

from __future__ import annotations

import csv
import io
import json
import time
from pathlib import Path
from typing import Any

from modnet_edge.core import AppendOutput


class RunLog:
    def __init__(self, folder: Path, enabled: bool = True, tensorboard: bool = True) -> None:
        self.enabled = enabled
        self.folder = folder
        self.jsonl = folder / "log.jsonl"
        self.csv = folder / "epochs.csv"
        self._jsonl_out = AppendOutput(self.jsonl) if enabled else None
        self._csv_out = AppendOutput(self.csv) if enabled else None
        self._tb = None
        self.tensorboard_note = "TensorBoard not requested"
        if enabled and tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter  # needs the tensorboard package

                self._tb = SummaryWriter(log_dir=str(folder / "tensorboard"))
                self.tensorboard_note = f"TensorBoard events in {folder / 'tensorboard'}"
            except ImportError:
                self.tensorboard_note = "TensorBoard not installed: logs are JSONL + CSV only"

    def record(self, kind: str, **fields: Any) -> None:
        if not self.enabled:
            return
        row = {"kind": kind, "time": round(time.time(), 3), **fields}
        self._jsonl_out.write(json.dumps(row, default=float) + "\n")
        if self._tb is not None and "step" in fields:
            for k, v in fields.items():
                if isinstance(v, (int, float)) and k not in ("step", "epoch"):
                    self._tb.add_scalar(f"{kind}/{k}", v, fields["step"])

    def epoch_row(self, row: dict[str, Any]) -> None:
        """One CSV row per epoch; the header is the first row's keys (later rows fill missing keys blank)."""
        if not self.enabled:
            return
        new = not self.csv.exists()
        if not new:
            with self.csv.open() as f:
                header = next(csv.reader(f), None) or list(row)
        else:
            header = list(row)
        text = io.StringIO(newline="")
        writer = csv.DictWriter(text, fieldnames=header, extrasaction="ignore")
        if new:
            writer.writeheader()
        writer.writerow({k: row.get(k, "") for k in header})
        self._csv_out.write(text.getvalue())

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()
