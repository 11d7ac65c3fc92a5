"""The ``modnet-edge`` command: one subcommand per job, each named like the Python API function it mirrors.

Every subcommand lives in its stage's ``command`` module (``HELP``, ``add_arguments(parser)``,
``run(args) -> int``) and is listed here by name only, so ``--help`` does not import torch.  Any
:class:`ModnetEdgeError` becomes one clear ``error:`` line: exit status 2 for bad input, 3 when the
machine refused (disk full, file-size limit, read-only storage: :class:`EnvironmentFailure`), 1 for a failed gate.  A mistyped option or
command gets the usage of the command it was typed for (not the top-level one) and the closest real
name (``--outptu`` -> "did you mean --output?"), before any other complaint about the same line.

Output options work with every subcommand, before or after its name: ``--quiet`` (print nothing; the
exit status is the verdict; errors still print), ``--no-progress`` (no bars; bars are never drawn when
stderr is not a terminal anyway) and ``--log-file FILE`` (append every printed line to FILE too).
"""

from __future__ import annotations

import argparse
import difflib
import importlib
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from modnet_edge.core import VERSION
from modnet_edge.core import console
from modnet_edge.core.console import all_precisions

__all__ = ["COMMANDS", "ALIASES", "build_parser", "main"]
from modnet_edge.core.errors import (EXIT_ENVIRONMENT, EXIT_GATE, EXIT_INPUT, BudgetError, ConfigError,
                                     ModnetEdgeError, environment_failure)
from modnet_edge.core.files import LogFile, check_output_path

# subcommand -> module defining HELP, add_arguments(parser) and run(args); the name is the API function's
# (hyphen for underscore), see modnet_edge/__init__.py for the table of both
COMMANDS: dict[str, str] = {
    "formats": "modnet_edge.formats_command",
    "export": "modnet_edge.export_command",
    "predict": "modnet_edge.runtimes.command",
    "parity": "modnet_edge.parity_tests.command",
    "diagnose": "modnet_edge.parity_tests.doctor_command",
    "benchmark": "modnet_edge.benchmarks.command",
    "report": "modnet_edge.report_command",
    "pipeline": "modnet_edge.pipeline_command",
    "tensorrt-build": "modnet_edge.exporters.tensorrt_command",
    "gpu-speed": "modnet_edge.benchmarks.gpu_speed",
    "info": "modnet_edge.runtimes.info_command",
    "train": "modnet_edge.training.command",
    "adapt": "modnet_edge.training.adapt_command",
    "qat": "modnet_edge.qat_command",
    "evaluate": "modnet_edge.benchmarks.evaluate_command",
    "quality": "modnet_edge.benchmarks.quality_command",
    "weights": "modnet_edge.model.weights_command",
}

# earlier names, still accepted so existing scripts keep working
ALIASES: dict[str, list[str]] = {"benchmark": ["bench"], "diagnose": ["doctor"]}

class HelpFormatter(argparse.HelpFormatter):
    """Shows ``(default: X)`` only where X says something (never None, False or an empty value) and
    writes sizes as ``HxW``; help that already names its default is left alone."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if "default" in text.lower() or "%(default)" in text:
            return text
        shown = _shown_default(action)
        return f"{text} (default: {shown})" if shown else text


def _shown_default(action: argparse.Action) -> str | None:
    value = action.default
    if value is None or value is argparse.SUPPRESS or isinstance(value, bool) or action.nargs == 0:
        return None
    if isinstance(value, (str, list, tuple, dict)) and not value:
        return None
    if isinstance(value, tuple) and len(value) == 2 and all(isinstance(v, int) for v in value):
        return f"{value[0]}x{value[1]}"
    if isinstance(value, (list, tuple)):
        return " ".join(str(v) for v in value)
    return str(value).replace("%", "%%")


class CommandParser(argparse.ArgumentParser):
    """An ``ArgumentParser`` that names a mistyped option and its closest real one under the usage of the
    command it was typed for; a bad value is one line (exit status 2 either way, like every bad input).

    Plain argparse hands an unknown option of a subcommand up to the top-level parser, which prints the
    top-level usage; and a missing required option (``-o``) is reported first, hiding the typo that
    caused it (``--outptu``).  Here each parser looks at its own option tokens before parsing them.
    """

    #: a command sets this when options may sit between its positionals (``predict MODEL -o DIR IMAGE``):
    #: argparse would otherwise give a ``nargs="+"`` positional only the tokens before the first option
    intermixed = False
    _inner = False  # inside argparse's own two-pass intermixed parsing: parse plainly

    def parse_known_args(self, args: Sequence[str] | None = None,  # type: ignore[override]
                         namespace: argparse.Namespace | None = None) -> tuple[argparse.Namespace, list[str]]:
        tokens = list(sys.argv[1:] if args is None else args)
        if self._inner:
            return super().parse_known_args(tokens, namespace)
        unknown = self._unknown_option(tokens)
        if unknown is not None:
            self.error(f"unrecognized option {unknown}{_suggestion(unknown, self._option_string_actions)}")
        if self.intermixed:
            self._inner = True
            try:
                parsed, extras = self.parse_known_intermixed_args(tokens, namespace)
            finally:
                self._inner = False
        else:
            parsed, extras = super().parse_known_args(tokens, namespace)
        if extras and self._subparsers is None:  # a command's own leftovers: its usage, not the top level's
            self.error(f"unrecognized arguments: {' '.join(extras)}")
        return parsed, extras

    def _unknown_option(self, tokens: list[str]) -> str | None:
        """The first token that looks like an option of this parser and is none; for the top-level parser
        only the tokens before the command name are its own."""
        known = self._option_string_actions
        for token in tokens:
            if token == "--":
                return None
            if not token.startswith("-") or token == "-":
                if self._subparsers is not None:
                    return None  # the command name: what follows is the command's to judge
                continue
            if self._negative_number_matcher.match(token) and not self._has_negative_number_optionals:
                continue
            name = token.split("=", 1)[0]
            if name in known or (not token.startswith("--") and token[:2] in known):  # -ofile, -qv
                continue
            if token.startswith("--") and self.allow_abbrev and any(o.startswith(name) for o in known):
                continue  # a prefix of a real option: argparse resolves it (or reports it ambiguous)
            return name
        return None

    def error(self, message: str) -> Any:  # type: ignore[override]
        if "invalid choice" in message and self._subparsers is not None:
            wrong = message.split("invalid choice: ", 1)[1].split(" ", 1)[0].strip("'\"")
            message += _suggestion(wrong, _command_names())
        if message.startswith("unrecognized") or ("invalid choice" in message and self._subparsers is not None):
            super().error(message)  # a typo: the usage of the command it was typed for, then the closest name
        # a bad value is one line, like every other bad input (a 40-line usage block would bury it)
        self.exit(EXIT_INPUT, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _command_names() -> list[str]:
    return [*COMMANDS, *(a for names in ALIASES.values() for a in names)]


def _suggestion(wrong: str, names: Any) -> str:
    """``" (did you mean --output?)"`` for the closest of ``names``, or ``""`` when none is close."""
    close = difflib.get_close_matches(wrong, list(names), n=1, cutoff=0.6)
    return f" (did you mean {close[0]}?)" if close else ""


def _output_options(parser: argparse.ArgumentParser, default: Any) -> None:
    g = parser.add_argument_group("output")
    g.add_argument("-q", "--quiet", action="store_true", default=default if default is not None else False,
                   help="print nothing (errors still print; the exit status is the verdict)")
    g.add_argument("--no-progress", action="store_true", default=default if default is not None else False,
                   help="no progress bars (never drawn when stderr is not a terminal)")
    g.add_argument("--log-file", type=Path, metavar="FILE", default=default,
                   help="also append every line the command prints to FILE")


def _list_precision_choices(parser: argparse.ArgumentParser) -> None:
    for action in parser._actions:
        if "--precision" in action.option_strings and action.choices is None:
            action.choices = all_precisions()


def build_parser() -> argparse.ArgumentParser:
    parser = CommandParser(prog="modnet-edge", description="MODNet portrait matting: train, export, "
                                     "run and verify on every deployment format.", formatter_class=HelpFormatter)
    parser.add_argument("--version", action="version", version=f"modnet-edge {VERSION}")
    _output_options(parser, None)
    # the subcommand copies default to SUPPRESS: given before the name, the top-level value survives
    common = CommandParser(add_help=False)
    _output_options(common, argparse.SUPPRESS)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=CommandParser)
    for name, module_name in COMMANDS.items():
        module = importlib.import_module(module_name)
        p = sub.add_parser(name, aliases=ALIASES.get(name, []), help=module.HELP, description=module.HELP,
                           formatter_class=HelpFormatter, parents=[common])
        module.add_arguments(p)
        _list_precision_choices(p)
        p.set_defaults(_run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "_run", None):
        parser.print_help()
        return EXIT_INPUT
    saved = console.ConsoleSettings(**vars(console.SETTINGS))
    console.configure(quiet=args.quiet, progress=not args.no_progress, log_file=args.log_file)
    try:
        code, error = _run(args)
    finally:
        console.SETTINGS.__dict__.update(vars(saved))
    if error:
        print(error, file=sys.stderr)
    return code


def _line_buffered() -> None:
    """A pipe or a file gets each line as it is printed: Python buffers a non-terminal stdout in 8 KiB
    blocks, which kept a piped pipeline silent for minutes and shuffled its lines against stderr's."""
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None and not stream.isatty():
            try:
                reconfigure(line_buffering=True)
            except (ValueError, OSError):
                pass


def _run(args: argparse.Namespace) -> tuple[int, str | None]:
    """Run the command with its output options; returns (exit status, the line to print on stderr).

    The one place exit statuses are decided: 0 done, 1 a gate failed (:class:`BudgetError` or the
    command's verdict), 2 bad input (:class:`ModnetEdgeError`), 3 the machine (:class:`EnvironmentFailure`,
    or an OS error that means disk full, a file-size limit, read-only storage), 130 interrupted.
    The whole command is one activity, so a log or a pipe hears from it at least every 30 s."""
    _line_buffered()
    try:
        log = _open_log(args)
    except ModnetEdgeError as exc:
        return _status(args, exc)
    code, error = EXIT_INPUT, None
    try:
        with console.captured_output(quiet=args.quiet, log_file=log, plain=True), \
                console.activity(f"modnet-edge {args.command}"):
            code = int(args._run(args) or 0)
    except (ModnetEdgeError, KeyboardInterrupt, OSError, MemoryError, RuntimeError) as exc:
        code, error = _status(args, exc)
    finally:
        if log is not None:
            if error is not None:
                log.write(error + "\n")  # the log ends with the error too (a failing log stays silent)
            log.close()
    if error is None and log is not None and log.failure is not None:
        code, error = _status(args, log.failure)
    return code, error


def _status(args: argparse.Namespace, exc: BaseException) -> tuple[int, str]:
    name = f"modnet-edge {args.command}"
    if isinstance(exc, BudgetError):  # a verdict, like a failed parity gate
        return EXIT_GATE, f"{name}: {exc}"
    if isinstance(exc, KeyboardInterrupt):
        return 130, f"{name}: interrupted"
    env = environment_failure(exc)
    if env is not None:
        return EXIT_ENVIRONMENT, f"{name}: error: {env}"
    if isinstance(exc, ModnetEdgeError):
        return EXIT_INPUT, f"{name}: error: {exc}"
    raise exc  # neither the input's nor the machine's: a bug, show its traceback


# options naming a file the command writes besides its main output; never one of its inputs
_FILE_OUTPUTS = ("log_file", "json")


def _open_log(args: argparse.Namespace) -> LogFile | None:
    """Before any work: ``--json FILE`` must be free or ours, and neither it nor ``--log-file`` may be one
    of the command's inputs (the JSON would replace it, the log append to it); then the log is opened (a
    folder, a link or an unwritable file is refused now, not after the work)."""
    for option in _FILE_OUTPUTS:
        target = getattr(args, option, None)
        if not isinstance(target, (str, Path)) or not Path(target).is_file():
            continue
        for name, value in vars(args).items():
            for item in value if isinstance(value, (list, tuple)) else [value]:
                if name not in _FILE_OUTPUTS and isinstance(item, (str, Path)) and Path(item).is_file() \
                        and os.path.samefile(item, target):
                    raise ConfigError(f"--{option.replace('_', '-')} names a file that is also an input of this "
                                      "command; choose another file", target)
    if isinstance(getattr(args, "json", None), (str, Path)):
        check_output_path(args.json)
    return LogFile(args.log_file) if args.log_file is not None else None


if __name__ == "__main__":
    sys.exit(main())
