"""``modnet-edge predict``: images or folders -> alpha PNGs and composites (mirrors :func:`modnet_edge.load`)."""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = "predict alpha mattes for images or folders of images with any artifact or checkpoint"


def _color(text: str) -> tuple[int, int, int]:
    try:
        r, g, b = (int(v) for v in text.split(","))
        assert all(0 <= v <= 255 for v in (r, g, b))
    except (ValueError, AssertionError):
        raise argparse.ArgumentTypeError(f"expected R,G,B with values 0-255, got {text!r}") from None
    return r, g, b


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("artifact", help="artifact (.onnx, ...) or checkpoint")
    parser.add_argument("inputs", nargs="+", metavar="IMAGE", help="image files, folders of images, or video files "
                        "(-> <name>.alpha.mp4 and <name>.composite.mp4)")
    parser.add_argument("-o", "--output", type=Path, required=True, help="output folder")
    parser.add_argument("--color", type=_color, default=(0, 177, 64), help="composite background R,G,B")
    parser.add_argument("--no-composite", action="store_true", help="write only the alpha PNGs")
    parser.add_argument("--runtime", help="runtime to use when the format has several")
    parser.add_argument("--provider", action="append", help="ONNX Runtime execution provider (cpu, cuda, ...)")
    parser.add_argument("--device", help="PyTorch device (cpu, cuda)")
    parser.add_argument("--threads", type=int, help="inference threads")
    parser.add_argument("--ofd", action="store_true", help="videos: One-Frame-Delay de-flicker (one frame of latency)")
    parser.add_argument("--ofd-threshold", type=float, default=0.1, help="videos: OFD agreement threshold xi")


def collect_inputs(inputs: list[str]) -> list[Path]:
    from modnet_edge.core.errors import InputImageError
    from modnet_edge.core.images import list_images

    files: list[Path] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            found = list_images(p)
            if not found:
                raise InputImageError("folder contains no images", p)
            files += found
        else:
            files.append(p)
    stems = [f.stem for f in files]
    dupes = sorted({s for s in stems if stems.count(s) > 1})
    if dupes:
        raise InputImageError(f"several inputs share the name(s) {dupes}; outputs would overwrite each other")
    return files


def backend_options(args: argparse.Namespace) -> dict:
    opts = {}
    if getattr(args, "provider", None):
        opts["providers"] = args.provider
    if getattr(args, "device", None):
        opts["device"] = args.device
    if getattr(args, "threads", None):
        opts["threads"] = args.threads
    return opts


def print_provenance_notes(source: dict | None) -> None:
    """Name built-in weights and flag synthetic-only or untrained networks (on stderr: never in the data)."""
    import sys

    from modnet_edge.model.weights import provenance_notes

    for line in provenance_notes(source):
        print(f"note: {line}", file=sys.stderr)


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from modnet_edge.core.images import read_image
    from modnet_edge.runtimes.loader import load
    from modnet_edge.runtimes.outputs import alpha_to_uint8, composite, save_png
    from modnet_edge.runtimes.video import predict_video
    from modnet_edge.core.videos import is_video

    from modnet_edge.core import check_output_path
    from modnet_edge.core.errors import ArtifactError

    if args.output.exists() and not args.output.is_dir():
        raise ArtifactError("the output must be a folder, and this is a file", args.output)
    check_output_path(args.output / "matte.png")  # no parent may be a file: say so before any work
    files = collect_inputs(args.inputs)
    videos = [f for f in files if is_video(f)]
    files = [f for f in files if not is_video(f)]
    with load(args.artifact, runtime=args.runtime, **backend_options(args)) as predictor:
        print_provenance_notes(predictor.metadata.source if predictor.metadata else None)
        for v in videos:
            res = predict_video(predictor, v, args.output, ofd=args.ofd, xi=args.ofd_threshold, color=args.color,
                                write_composite=not args.no_composite)
            print(f"{v.name}: {res.frames} frames -> {res.alpha_video}; flicker {res.flicker_raw['flicker']:.5f}"
                  + (f" -> {res.flicker_out['flicker']:.5f} with OFD" if args.ofd else ""))
        for f in tqdm(files, desc="predict", unit="img", disable=not files):
            rgb = read_image(f)
            alpha = predictor.predict(rgb)
            save_png(alpha_to_uint8(alpha), args.output / f"{f.stem}.alpha.png")
            if not args.no_composite:
                save_png(composite(rgb, alpha, args.color), args.output / f"{f.stem}.composite.png")
    if files:
        print(f"wrote {len(files)} matte(s) to {args.output}")
    return 0
