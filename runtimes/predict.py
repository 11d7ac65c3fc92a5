"""``modnet_edge.predict``: images, folders and videos -> alpha mattes (and composites), as files or arrays.

The one place that turns a list of inputs into mattes, so ``modnet-edge predict`` and the Python API
behave alike: folders are expanded to their images, two inputs that would write the same output name
are refused before any work, and videos go through the overlapped video path (:mod:`.video`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

DEFAULT_COLOR = (0, 177, 64)


@dataclass
class Predictions:
    """What :func:`predict` did: ``files`` written (alpha, then composite, per image), ``mattes`` (stem ->
    float alpha in [0, 1], only when no output folder was given), ``videos`` (input name ->
    :class:`~modnet_edge.runtimes.video.VideoResult`) and ``notes`` about the network behind
    the artifact (built-in weights, synthetic-only training: worth telling whoever reads the mattes)."""

    files: list[Path] = field(default_factory=list)
    mattes: dict[str, np.ndarray] = field(default_factory=dict)
    videos: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    images: int = 0


def collect_inputs(inputs: str | Path | Sequence[str | Path]) -> list[Path]:
    """Files and folders -> input files (folders: their images, except files modnet-edge wrote there,
    such as an earlier run's mattes); refuses names that would collide."""
    from modnet_edge.core import is_ours
    from modnet_edge.core.errors import InputImageError
    from modnet_edge.core.images import list_images

    items = [inputs] if isinstance(inputs, (str, Path)) else list(inputs)
    files: list[Path] = []
    for item in items:
        p = Path(item)
        if p.is_dir():
            found = [f for f in list_images(p) if not is_ours(f)]  # our own outputs are never inputs
            if not found:
                raise InputImageError("folder contains no images (other than outputs of modnet-edge)", p)
            files += found
        else:
            files.append(p)
    stems = [f.stem for f in files]
    dupes = sorted({s for s in stems if stems.count(s) > 1})
    if dupes:
        raise InputImageError(f"several inputs share the name(s) {dupes}; outputs would overwrite each other")
    return files


def output_paths(files: Sequence[Path], out: Path, composite: bool = True) -> list[Path]:
    """Every file :func:`predict` writes into ``out`` for ``files``, in order."""
    from modnet_edge.core.videos import is_video

    kinds = ("alpha", "composite") if composite else ("alpha",)
    return [out / f"{f.stem}.{kind}.{'mp4' if is_video(f) else 'png'}" for f in files for kind in kinds]


def check_outputs(files: Sequence[Path], out: Path, composite: bool = True) -> None:
    """Before any work: no output is an input, and every output path is free or ours (a user's own
    ``a.alpha.png`` in the output folder is refused, never replaced)."""
    from modnet_edge.core import check_output_path
    from modnet_edge.core.errors import ArtifactError

    inputs = {f.resolve() for f in files if f.exists()}
    for path in output_paths(files, out, composite):
        if path.resolve() in inputs:
            raise ArtifactError("this output would replace one of the inputs; choose another output folder", path)
        check_output_path(path)


def predict(artifact: str | Path | None, images: str | Path | Sequence[str | Path], output: str | Path | None = None, *,
            runtime: str | None = None, color: tuple[int, int, int] = DEFAULT_COLOR, composite: bool = True,
            ofd: bool = False, ofd_threshold: float = 0.1, progress: bool = True,
            **backend_options: Any) -> Predictions:
    """Matte ``images`` (image files, folders of images, video files) with ``artifact`` (any format, a
    checkpoint, or built-in weights by name; None: the default built-in weights).  With ``output`` (a folder): write ``<stem>.alpha.png`` and, unless ``composite`` is
    false, ``<stem>.composite.png`` over ``color``; videos become ``<stem>.alpha.mp4`` /
    ``<stem>.composite.mp4`` (``ofd``: One-Frame-Delay de-flicker with threshold ``ofd_threshold``).
    Without ``output`` the mattes are returned in memory (videos need a folder).
    ``backend_options`` go to the runtime (``device=``, ``providers=``, ``threads=``).
    """
    from modnet_edge.core import check_output_folder
    from modnet_edge.core.console import progress as progress_bar
    from modnet_edge.core.limits import check_number
    from modnet_edge.core.errors import ConfigError
    from modnet_edge.core.images import read_image
    from modnet_edge.core.videos import is_video
    from modnet_edge.model.weights import provenance_notes
    from modnet_edge.runtimes.loader import load
    from modnet_edge.runtimes.outputs import alpha_to_uint8, save_png
    from modnet_edge.runtimes.outputs import composite as compose
    from modnet_edge.runtimes.video import predict_video

    out = check_output_folder(output) if output is not None else None
    check_number(ofd_threshold, "ofd_threshold (OFD agreement threshold xi, on alpha in [0, 1])", 0.0, 1.0)
    files = collect_inputs(images)
    if out is not None:
        check_outputs(files, out, composite)
    videos = [f for f in files if is_video(f)]
    files = [f for f in files if not is_video(f)]
    if videos and out is None:
        raise ConfigError(f"videos need an output folder: {', '.join(v.name for v in videos)}")
    result = Predictions(images=len(files))
    with load(artifact, runtime=runtime, **backend_options) as predictor:
        result.notes = list(provenance_notes(predictor.metadata.source if predictor.metadata else None))
        for v in videos:
            result.videos[v.name] = predict_video(predictor, v, out, ofd=ofd, xi=ofd_threshold, color=color,
                                                  write_composite=composite, progress=progress)
        for f in progress_bar(files, desc="predict", unit="img", disable=not (files and progress)):
            rgb = read_image(f)
            alpha = predictor.predict(rgb)
            if out is None:
                result.mattes[f.stem] = alpha
                continue
            result.files.append(save_png(alpha_to_uint8(alpha), out / f"{f.stem}.alpha.png"))
            if composite:
                result.files.append(save_png(compose(rgb, alpha, color), out / f"{f.stem}.composite.png"))
    return result
