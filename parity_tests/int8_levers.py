"""The cheap INT8 levers, each measured alone: ONNX Runtime QDQ int8 of one checkpoint at one static
shape, drift against the PyTorch fp32 reference on the package's unseen photos.

    python -m modnet_edge.parity_tests.int8_levers --checkpoint starter --size 512 --calibration synthetic \
        --json runs/levers.json

Every row is one export through the toolkit's own exporter (the export skeleton) and one parity run;
rows differ from the baseline in one option, or in the checkpoint (``--qat CHECKPOINT`` adds the row of
quantisation-aware fine-tuned weights, ``--bias-correction`` the row of weights whose rounding bias is
corrected, :func:`modnet_edge.training.quant_sim.correct_rounding_bias`).  README "INT8: what each lever
buys" has the figures.
Drift is measured with ONNX Runtime's graph optimisations off by default (``--ort-optimization``):
the Q/DQ graph then runs as float between exact quantise/dequantise steps, which is what a CPU with
32-bit integer accumulation (x86 VNNI, Arm dot product) computes; without VNNI, ONNX Runtime's fused
u8s8 kernels saturate 16-bit sums and add drift of their own (see ``export/onnx_int8.py``).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

# (row name, export options beyond the baseline's)
LEVERS: list[tuple[str, dict]] = [
    ("baseline: per-channel weights, minmax, uint8 activations, all quantised", {}),
    ("per-tensor weights", {"per_channel": False}),
    ("8-bit image input (folded normalisation)", {"input_type": "uint8"}),
    ("calibration: percentile 99.999", {"calibration_method": "percentile", "percentile": 99.999}),
    ("calibration: percentile 99.99", {"calibration_method": "percentile", "percentile": 99.99}),
    ("keep float: instance-norm", {"keep_float": ["instance-norm"]}),
    ("keep float: image-concat", {"keep_float": ["image-concat"]}),
    ("keep float: fusion-head", {"keep_float": ["fusion-head"]}),
    ("keep float: backbone", {"keep_float": ["backbone"]}),
    ("calibration: entropy", {"calibration_method": "entropy"}),  # last: slow (histograms of every tensor)
]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m modnet_edge.parity_tests.int8_levers",
                                description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint", default="starter")
    p.add_argument("--size", type=int, default=512)
    p.add_argument("--calibration", default="synthetic", help="folder, video or 'synthetic'")
    p.add_argument("--calibration-size", type=int, default=16)
    p.add_argument("--target-cpu", default="x86-vnni", help="x86-vnni: full 8-bit weights; x86-avx2: 7-bit")
    p.add_argument("--ort-optimization", default="none", choices=("none", "all"))
    p.add_argument("--only", nargs="*", help="row names (prefixes) to run")
    p.add_argument("--qat", help="a QAT checkpoint: adds its row")
    p.add_argument("--bias-correction", action="store_true", help="adds the bias-corrected weights' row")
    p.add_argument("--json", type=Path, help="write the rows here too")
    args = p.parse_args(argv)

    from modnet_edge.core import atomic_write_text, check_output_path
    from modnet_edge.exporters.skeleton import export_artifact
    from modnet_edge.model.weights import resolve_checkpoint, weights_file
    from modnet_edge.parity_tests.parity import run_parity

    if args.json:
        from modnet_edge.core.errors import ModnetEdgeError

        try:
            check_output_path(args.json)  # free or ours, before minutes of exports (a user's file is refused)
        except ModnetEdgeError as e:
            print(f"{p.prog}: error: {e}", file=sys.stderr)
            return 2

    base = {"static_shape": (args.size, args.size), "calibration": args.calibration,
            "calibration_size": args.calibration_size, "target_cpu": args.target_cpu}
    rows = [(name, args.checkpoint, opts) for name, opts in LEVERS]
    if args.bias_correction:
        from modnet_edge.calibration import as_source
        from modnet_edge.training.quant_sim import correct_rounding_bias

        source = as_source(args.calibration, args.calibration_size, 0)
        fixed = correct_rounding_bias(resolve_checkpoint(args.checkpoint), (rgb for _, rgb in source.images()),
                                      (args.size, args.size), weight_max=127 if args.target_cpu != "x86-avx2" else 64)
        rows.append(("bias correction (weight rounding)", fixed, {}))
    if args.qat:
        rows.append((f"QAT weights ({args.qat})", args.qat, {}))
    rows.sort(key=lambda r: r[0].startswith("calibration: entropy"))  # the slow one last
    if args.only:
        rows = [r for r in rows if any(r[0].startswith(o) for o in args.only)]
    # every row is judged against the network the levers start from (QAT and bias-corrected weights are
    # other float weights: what matters is how far their INT8 is from the original)
    original = resolve_checkpoint(args.checkpoint)
    reference = original.path or weights_file(str(original.provenance["weights"]))
    results = []
    with tempfile.TemporaryDirectory(prefix="modnet-levers-") as work:
        for i, (name, ckpt, opts) in enumerate(rows):
            path = Path(work) / f"lever-{i}.onnx"
            export_artifact(ckpt, "onnx", "int8", path, **{**base, **opts})
            r = run_parity([path], progress=False, reference=reference, optimization=args.ort_optimization).results[0]
            row = {"lever": name, "mse": r.drift.mse, "band_mse": r.drift.band_mse, "over_4": r.drift.over_4,
                   "worst_image": r.worst_image, "images": sorted(r.per_image), "options": {**base, **opts}}
            results.append(row)
            print(f"{name:<58} MSE {r.drift.mse:.2e}  band {r.drift.band_mse:.2e}  >4/255 {r.drift.over_4:.2%}"
                  f"  worst {r.worst_image}", flush=True)
            if args.json:  # after every row: a long run keeps what it measured
                atomic_write_text(args.json, json.dumps(results, indent=2, default=str) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
