"""``modnet-edge info`` (mirrors :func:`modnet_edge.info`): what an artifact or checkpoint is, read from
the file itself."""

from __future__ import annotations

import argparse
import json

HELP = "describe an artifact or checkpoint: format, metadata, inputs/outputs, parameter count"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("artifact", help="artifact or checkpoint")
    parser.add_argument("--runtime", help="runtime to open it with when the format has several")
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")


def describe(path: str, runtime: str | None = None) -> dict:
    """Public API (``modnet_edge.info``).  Backend view (inputs/outputs) plus reconciled metadata, and
    parameter count for checkpoints."""
    from modnet_edge.core import reconcile_metadata
    from modnet_edge.runtimes.loader import open_backend

    with open_backend(path, runtime=runtime) as backend:
        info = backend.describe()
        meta = reconcile_metadata(path, backend.embedded_metadata)
        info["metadata"] = meta.to_dict() if meta else None
        module = getattr(backend, "_module", None)
        if module is not None and hasattr(module, "parameters"):
            info["parameters"] = sum(p.numel() for p in module.parameters())
    return info


def _short_source(source: dict) -> dict:
    """The source record for a terminal: its prose (the weights' summary and data, printed in full by
    ``modnet-edge weights`` and ``info --json``) left out, hashes shortened."""
    return {k: (f"{v[:12]}..." if k.endswith("sha256") and isinstance(v, str) and len(v) > 12 else v)
            for k, v in source.items() if k not in ("note", "trained_on")}


def run(args: argparse.Namespace) -> int:
    info = describe(args.artifact, args.runtime)
    if args.json:
        print(json.dumps(info, indent=2, default=str))
        return 0
    print(f"{info['path']}: {info['format']} via {info['runtime']} on {info['device']}")
    if "parameters" in info:
        print(f"parameters: {info['parameters']:,}")
    for kind in ("inputs", "outputs"):
        for t in info[kind]:
            print(f"  {kind[:-1]:<6} {t['name']:<12} {str(t['shape']):<28} {t['dtype']}")
    meta = info["metadata"]
    if meta:
        print(f"precision: {meta['precision']}   source: {json.dumps(_short_source(meta.get('source') or {}))}")
        from modnet_edge.model.weights import provenance_notes

        for line in provenance_notes(meta.get("source")):
            print(line)
        print(f"preprocessing: {json.dumps(meta['preprocessing'])}")
        if meta["preprocessing"].get("input_dtype") == "uint8":
            print("input: the 8-bit image (resized 'area', rounded half up), fed as is; the normalisation is "
                  "folded into the model")
        else:
            print("input: the normalised image ((p / 255 - mean) / std; quantised with the model's own "
                  "parameters where its input is integer)")
    else:
        print("no modnet-edge metadata (foreign model)")
    return 0
