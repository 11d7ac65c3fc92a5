"""export: checkpoint -> deployable artifacts (one exporter per format, chosen from the format table)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from modnet_edge.core import check_output_path, format_of_path, get_format, is_our_artifact, resolve
from modnet_edge.core.errors import ArtifactError, BackendUnavailableError, ConfigError


def export(checkpoint: Any = None, format: str = "onnx", precision: str = "fp32", output: str | Path | None = None,
           budget: Any = None, **options: Any) -> Path:
    """Export a checkpoint (path, :class:`Checkpoint`, a built-in weights name, or None for the built-in
    starter weights) to ``format`` at ``precision``; returns the artifact path (its manifest is written
    beside it).

    ``budget`` ("auto" for the precision's drift budget, a ``Budget``, or an MSE): search for the
    fastest variant that meets it (which parts stay in higher precision), see
    :mod:`modnet_edge.precision_search`; its record is written to ``<output>.search.json``.
    """
    from modnet_edge.model.weights import resolve_checkpoint

    fmt = get_format(format)
    if fmt.exporter is None:
        raise ConfigError(f"format {format!r} is not an export target")
    if precision not in fmt.precisions:
        raise ConfigError(f"format {format!r} supports precisions {list(fmt.precisions)}, not {precision!r}")
    if not fmt.can_export():
        raise BackendUnavailableError(f"exporting {format} needs {list(fmt.export_requires)}; "
                                      f"install with: {fmt.install_hint()}")
    if output is not None:
        check_export_output(fmt, output)  # before minutes of conversion, not after
    ckpt = resolve_checkpoint(checkpoint)
    if output is None:
        stem = ckpt.path.stem if ckpt.path else str(ckpt.provenance.get("weights", "modnet"))
        output = Path(f"{stem}.{precision}{fmt.suffixes[0]}")
    if budget is not None:
        # the search judges candidates with the verdict stages: the one call from export upward, made
        # only when a budget is asked for (the stage's own exporters never import it)
        from modnet_edge.precision_search import search_precision

        result = search_precision(ckpt, format, precision, output, budget=budget, **options)
        if result.chosen is None:
            from modnet_edge.core.errors import BudgetError

            best = min(result.candidates, key=lambda c: c.mse)
            raise BudgetError(f"no {format} {precision} variant meets the drift budget (MSE {result.budget['mse']:.0e}):"
                              f" best MSE {best.mse:.2e} keeping {', '.join(best.kept) or 'nothing'} in higher "
                              f"precision; the search record is in {output}.search.json")
        return Path(output)
    return resolve(fmt.exporter)(ckpt, Path(output), precision=precision, **options)


def check_export_output(fmt: Any, output: str | Path) -> None:
    """An export's output: writable, ours to overwrite, and named with the format's suffix."""
    check_output_path(output)
    if Path(output).is_file() and not is_our_artifact(output):
        raise ArtifactError("output exists and is not an artifact written by modnet-edge; refusing to overwrite "
                            "it: choose another name, or move it away first", output)
    named = format_of_path(output)
    if named is not fmt:  # a file's suffix is how every loader recognises its format
        raise ConfigError(f"output {Path(output).name!r} does not end in {' or '.join(fmt.suffixes)}, the suffix "
                          f"of {fmt.name} artifacts" + (f" (it names a {named.name} file)" if named else ""))


from modnet_edge.core import make_module_callable  # noqa: E402

make_module_callable(__name__, export)
