"""``modnet-edge predict``: images or folders -> alpha PNGs and composites (mirrors :func:`modnet_edge.predict`).

``predict [MODEL] INPUT... -o DIR``: the model is optional (the default built-in weights), so the first
positional is read for what it is: an artifact, a checkpoint or a weights name (``starter``) is the model;
an image, a video or a folder of images is the first input.  Anything else, or a model named after an
input, is refused with a line saying which argument is which.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from modnet_edge.core.console import add_device_argument

HELP = "predict alpha mattes for images or folders of images with any artifact or checkpoint"


def _color(text: str) -> tuple[int, int, int]:
    try:
        r, g, b = (int(v) for v in text.split(","))
        assert all(0 <= v <= 255 for v in (r, g, b))
    except (ValueError, AssertionError):
        raise argparse.ArgumentTypeError(f"expected R,G,B with values 0-255, got {text!r}") from None
    return r, g, b


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", nargs="?", metavar="MODEL", help="artifact (.onnx, ...), checkpoint, or built-in "
                        "weights name (starter, ...); omitted: the built-in 'starter' weights")
    parser.add_argument("images", nargs="+", metavar="INPUT", help="image files, folders of images, or video files "
                        "(-> <name>.alpha.mp4 and <name>.composite.mp4)")
    parser.intermixed = True  # type: ignore[attr-defined]  # `predict MODEL -o DIR IMAGE` too
    parser.add_argument("-o", "--output", type=Path, required=True, help="output folder")
    parser.add_argument("--color", type=_color, default=(0, 177, 64), metavar="R,G,B",
                        help="composite background (default: 0,177,64)")
    parser.add_argument("--no-composite", action="store_true", help="write only the alpha PNGs")
    parser.add_argument("--runtime", help="runtime to use when the format has several")
    parser.add_argument("--provider", dest="providers", action="append",
                        help="ONNX Runtime execution provider (cpu, cuda, ...), repeatable")
    add_device_argument(parser, what=" (checkpoints)")
    parser.add_argument("--threads", type=int, help="inference threads")
    parser.add_argument("--ofd", action="store_true", help="videos: One-Frame-Delay de-flicker (one frame of latency)")
    parser.add_argument("--ofd-threshold", type=float, default=0.1, help="videos: OFD agreement threshold xi")


def backend_options(args: argparse.Namespace) -> dict:
    """The runtime options a command's arguments ask for (only those given)."""
    opts = {}
    for key in ("providers", "device", "threads"):
        if getattr(args, key, None) is not None:  # given, even as 0 (refused by the runtime, never ignored)
            opts[key] = getattr(args, key)
    return opts


def _kind(token: str) -> str:
    """``"model"``, ``"input"`` or ``"unknown"``: what a positional argument of ``predict`` is."""
    from modnet_edge.core import format_of_path, manifest_path
    from modnet_edge.core.images import IMAGE_SUFFIXES
    from modnet_edge.core.videos import is_video
    from modnet_edge.runtimes.loader import names_weights

    path = Path(token)
    if names_weights(token):
        return "model"
    if path.is_dir():  # a Core ML .mlpackage is a folder too
        return "model" if format_of_path(path) is not None or manifest_path(path).exists() else "input"
    if path.suffix.lower() in IMAGE_SUFFIXES or is_video(path):
        return "input"
    if format_of_path(path) is not None or manifest_path(path).exists():
        return "model"
    return "unknown"


def split_model(tokens: list[str]) -> tuple[str | None, list[str]]:
    """``[MODEL] INPUT...`` -> (the model, None for the default weights; the inputs)."""
    import difflib

    from modnet_edge.core.errors import ConfigError
    from modnet_edge.model.weights import weights_names

    kinds = [_kind(t) for t in tokens]
    if kinds[0] == "unknown":
        close = difflib.get_close_matches(tokens[0], weights_names(), n=1)
        suffix = Path(tokens[0]).suffix
        what = f"unknown suffix {suffix!r}: " if suffix and Path(tokens[0]).is_file() else ""
        raise ConfigError(f"{tokens[0]}: {what}neither a model (an artifact, a checkpoint, or built-in weights: "
                          f"{', '.join(weights_names())}) nor an image, a video or a folder"
                          + (f" (did you mean {close[0]}?)" if close else ""))
    model, inputs = (tokens[0], tokens[1:]) if kinds[0] == "model" else (None, tokens)
    later = [t for t, k in zip(tokens[1:], kinds[1:]) if k == "model"]
    if later:
        raise ConfigError(f"{later[0]}: a model among the inputs; the model comes first: "
                          "modnet-edge predict [MODEL] INPUT... -o DIR")
    if not inputs:
        raise ConfigError(f"{model}: a model, but no image, video or folder to matte follows it")
    return model, inputs


def run(args: argparse.Namespace) -> int:
    from modnet_edge.runtimes.predict import predict

    model, inputs = split_model(([args.model] if args.model is not None else []) + list(args.images))
    result = predict(model, inputs, args.output, runtime=args.runtime, color=args.color,
                     composite=not args.no_composite, ofd=args.ofd, ofd_threshold=args.ofd_threshold,
                     **backend_options(args))
    for line in result.notes:  # on stderr: never in the data
        print(f"note: {line}", file=sys.stderr)
    for name, res in result.videos.items():
        print(f"{name}: {res.frames} frames -> {res.alpha_video}; "
              f"flicker {res.flicker_raw['flicker']:.5f}"
              + (f" -> {res.flicker_out['flicker']:.5f} with OFD" if args.ofd else ""))
    if result.images:
        print(f"wrote {result.images} matte(s) to {args.output}")
    return 0
