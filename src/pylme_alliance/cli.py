"""The ``pylme-alliance`` command: doctor | demo | analyze | simulate | power | crosscheck.

Module import stays light (no pandas, no rpy2) so ``pylme-alliance --help`` is instant;
the work is imported inside each handler.
"""
from __future__ import annotations

import argparse
import importlib
import sys
import warnings
from collections.abc import Callable, Sequence

from . import __version__
from .errors import PylmeError

WITHIN = ("person_mean", "early", "detrend")
ENGINES = ("lme4", "nlme", "glmmtmb")
RESIDUALS = ("iid", "ar1", "car1")


class _CommandsMissing(Exception):
    """cli_commands (the demo/analyze/simulate implementations) is not installed."""


def _command(name: str) -> Callable[[argparse.Namespace], int | None]:
    try:
        module = importlib.import_module("pylme_alliance.cli_commands")
    except ModuleNotFoundError as exc:
        if exc.name == "pylme_alliance.cli_commands":
            raise _CommandsMissing(name) from None
        raise
    func = getattr(module, name, None)
    if func is None:
        raise _CommandsMissing(name)
    return func


def _doctor(args: argparse.Namespace) -> int:
    from .doctor import apply_fix, format_report, run_doctor

    report = run_doctor()
    print(format_report(report))
    if getattr(args, "fix", False):
        return apply_fix(report, assume_yes=args.yes)
    return 0 if report.ok else 1


def _dispatch(name: str) -> Callable[[argparse.Namespace], int]:
    def handler(args: argparse.Namespace) -> int:
        result = _command(name)(args)
        return 0 if result is None else int(result)

    return handler


def _add_columns(p: argparse.ArgumentParser) -> None:
    p.add_argument("data", metavar="DATA",
                   help="one row per session: CSV (',' or ';', decimal point or comma), TSV, Parquet, "
                        "Excel, SPSS .sav/.zsav or Stata .dta")
    p.add_argument("--sep", metavar="CHAR", help="field separator of a text file (default: sniffed)")
    p.add_argument("--decimal", metavar="CHAR", help="decimal mark of a text file (default: sniffed)")
    cols = p.add_argument_group("columns")
    cols.add_argument("--patient", required=True, metavar="COL", help="patient identifier")
    cols.add_argument("--session", required=True, metavar="COL", help="session number")
    cols.add_argument("--alliance", required=True, metavar="COL", help="alliance score")
    cols.add_argument("--outcome", required=True, metavar="COL", help="outcome (symptom) score")
    cols.add_argument("--therapist", metavar="COL", help="therapist identifier (patients nested in therapists)")
    cols.add_argument("--time", metavar="COL", help="calendar time, e.g. days since intake (for car1)")
    cols.add_argument("--moderator", action="append", default=[], metavar="COL",
                      help="patient-level moderator (repeat for several)")


def _add_value_checks(p: argparse.ArgumentParser) -> None:
    values = p.add_argument_group("values (checked before any fit)")
    values.add_argument("--alliance-range", nargs=2, type=float, metavar=("LOW", "HIGH"), default=None,
                        help="the alliance scale's bounds, e.g. 1 7: any value outside them is refused")
    values.add_argument("--outcome-range", nargs=2, type=float, metavar=("LOW", "HIGH"), default=None,
                        help="the outcome scale's bounds, e.g. 0 180: any value outside them is refused")
    values.add_argument("--na-values", metavar="CODES", default=None,
                        help="comma list of codes that mean missing in the alliance, outcome and moderators, "
                             "e.g. --na-values=-99,999 (with '=' when a code is negative)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pylme-alliance",
        description="Alliance-outcome mixed models (lme4, nlme, glmmTMB via R; statsmodels cross-check).",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    p = sub.add_parser("doctor", help="check Python, R, the R packages and rpy2; print fixes")
    p.add_argument("--fix", action="store_true",
                   help="run the pip command that fixes rpy2 for this Python (asks first)")
    p.add_argument("--yes", action="store_true", help="with --fix: run without asking")
    p.set_defaults(handler=_doctor)

    p = sub.add_parser("demo", help="analyse the bundled example trial and write a report")
    p.add_argument("--out", default="demo-report", metavar="DIR", help="report directory (default: demo-report)")
    p.add_argument("--overwrite", action="store_true", help="replace the report's own files in --out")
    p.set_defaults(handler=_dispatch("run_demo"))

    p = sub.add_parser("analyze", help="run the alliance-outcome analysis on a data file")
    _add_columns(p)
    _add_value_checks(p)
    model = p.add_argument_group("model")
    model.add_argument("--within", choices=WITHIN, default="person_mean",
                       help="how to split alliance into within/between parts (default: person_mean)")
    model.add_argument("--engine", choices=ENGINES, default="lme4", help="R engine (default: lme4)")
    model.add_argument("--residual", choices=RESIDUALS, default="iid", help="residual correlation (default: iid)")
    model.add_argument("--leads", type=int, nargs="+", default=[1, 2, 3], metavar="K",
                       help="outcome leads for the duration analysis (0 = same session); the main model "
                            "uses lead 1 or the first positive lead (default: 1 2 3)")
    model.add_argument("--random-slope", choices=("auto", "true", "false"), default="auto",
                       help="random within-patient alliance slope; auto drops it (and says why) when the data "
                            "cannot support it (default: auto)")
    model.add_argument("--control-outcome", choices=("decomposed", "raw", "none"), default="decomposed",
                       help="how the lagged models control the current outcome: decomposed (patient mean + "
                            "deviation, the default), raw, or none")
    model.add_argument("--prior-outcome", choices=("auto", "true", "false"), default="auto",
                       help="also control the outcome of the session before; auto decides from the rows it "
                            "would leave (default: auto)")
    model.add_argument("--reciprocal", action=argparse.BooleanOptionalAction, default=True,
                       help="also fit the reciprocal dynamics (RI-CLPM): the outcome -> alliance path and the "
                            "total effects by lead (default: on; a panel too short for it gets a note)")
    model.add_argument("--slope-draws", type=int, default=199, metavar="N",
                       help="bootstrap draws of the calibrated random-slope test (heterogeneity; default: 199, "
                            "at least 19)")
    cols_out = p.add_argument_group("outcome")
    cols_out.add_argument("--outcome-better", choices=("lower", "higher"), default=None,
                          help="which outcome direction is better (e.g. lower for symptom scores); without it "
                               "the report stays neutral and claims no benefit")
    cols_out.add_argument("--outcome-label", metavar="TEXT", default=None,
                          help="the outcome's name in texts and figures (default: the column name)")
    p.add_argument("--out", required=True, metavar="DIR", help="report directory (checked before any fitting)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace the report's own files in --out (default: refuse if any exists)")
    p.set_defaults(handler=_dispatch("run_analyze"))

    p = sub.add_parser("simulate", help="simulate a trial data set (CSV)")
    p.add_argument("--out", required=True, metavar="FILE.csv", help="where to write the CSV")
    p.add_argument("--patients", type=int, default=200, metavar="N", help="number of patients (default: 200)")
    p.add_argument("--seed", type=int, default=None, metavar="S", help="random seed")
    p.add_argument("--overwrite", action="store_true", help="replace --out if it exists (default: refuse)")
    p.set_defaults(handler=_dispatch("run_simulate"))

    p = sub.add_parser("power", help="power of the alliance model by simulation (CSV + PNG)",
                       description="Simulate trials of each size, fit the default alliance model to each "
                                   "and report how often each effect is detected (power with a Monte-Carlo "
                                   "interval, bias, coverage).")
    p.add_argument("--patients", type=int, nargs="+", default=[100, 200, 400], metavar="N",
                   help="trial sizes (default: 100 200 400)")
    p.add_argument("--sims", type=int, default=500, metavar="R", help="replicates per size (default: 500)")
    p.add_argument("--therapists", type=int, nargs="+", default=None, metavar="T",
                   help="therapists per trial (default: simulate()'s 40, at most one per 5 patients)")
    p.add_argument("--within-effect", type=float, nargs="+", default=None, metavar="B",
                   help="lag-1 within-patient alliance effect(s) to simulate (default: -2)")
    p.add_argument("--effects", nargs="+", default=["within"], metavar="EFFECT",
                   help="within, between, slope, moderator:<severity|n_sessions|integrative|arm> "
                        "(default: within)")
    p.add_argument("--alpha", type=float, default=0.05, help="test level (default: 0.05)")
    p.add_argument("--seed", type=int, default=None, metavar="S", help="root random seed")
    p.add_argument("--workers", type=int, default=1, metavar="W",
                   help="worker processes on this machine (default: 1, no pool)")
    p.add_argument("--scheduler", metavar="ADDRESS", default=None,
                   help="a Dask scheduler, e.g. tcp://host:8786 (needs dask.distributed)")
    p.add_argument("--out", required=True, metavar="DIR", help="directory for power.csv, replicates.csv, power.png")
    p.add_argument("--overwrite", action="store_true", help="replace those files in --out")
    p.set_defaults(handler=_dispatch("run_power"))

    p = sub.add_parser("reciprocal", help="alliance->outcome and outcome->alliance in one dynamic model "
                                          "(RI-CLPM by default) with impulse responses",
                       description="Fit both directions of the alliance-outcome dynamics on session-number "
                                   "waves (lavaan, FIML) and write effects.csv, impulse.csv and summary.txt.")
    _add_columns(p)
    p.add_argument("--method", choices=("riclpm", "dpm", "mlm"), default="riclpm",
                   help="riclpm (default), dpm (ML-SEM dynamic panel model) or mlm (the decomposed "
                        "multilevel pair, biased: see its notes)")
    p.add_argument("--waves", type=int, metavar="W", help="sessions 1..W are the waves (default: chosen "
                                                           "from the data, at most 10)")
    p.add_argument("--slopes", action="store_true", help="riclpm: add random linear slopes for both series")
    p.add_argument("--leads", type=int, default=3, metavar="K", help="impulse responses at t+1..t+K (default: 3)")
    p.add_argument("--out", required=True, metavar="DIR", help="output directory (checked before any fitting)")
    p.add_argument("--overwrite", action="store_true", help="replace those files in --out")
    p.set_defaults(handler=_dispatch("run_reciprocal"))

    p = sub.add_parser(
        "crosscheck", help="fit the model in R and in statsmodels and compare the estimates",
        description="Fit the lead-1 alliance model with statsmodels MixedLM and with R, print one row "
                    "per parameter (agree or not) and one line explaining each disagreement. With "
                    "--therapist both fit the closest model statsmodels can express (patient intercept "
                    "and slope uncorrelated) and the notes say which terms are compared.")
    _add_columns(p)
    _add_value_checks(p)
    p.add_argument("--within", choices=WITHIN, default="person_mean",
                   help="how to split alliance into within/between parts (default: person_mean)")
    p.add_argument("--engine", choices=ENGINES, default="lme4",
                   help="R side of the comparison: lme4 (default) or glmmtmb; nlme is compared "
                        "through lme4, which fits the same model")
    p.add_argument("--ml", action="store_true",
                   help="fit both by maximum likelihood instead of REML")
    p.add_argument("--out", metavar="FILE.csv", help="also write the comparison table here")
    p.add_argument("--overwrite", action="store_true", help="replace --out if it exists (default: refuse)")
    p.set_defaults(handler=_dispatch("run_crosscheck"))
    return parser


def cli_words(message: str, parser: argparse.ArgumentParser, command: str | None) -> str:
    """Say the library's keyword arguments as the command's options: ``time=`` ->
    ``--time``, ``engine='nlme'`` -> ``--engine nlme`` (only options the command has)."""
    import re

    sub = next((a for a in parser._actions if isinstance(a, argparse._SubParsersAction)), None)
    command_parser = sub.choices.get(command) if sub is not None and command else None
    if command_parser is None:
        return message
    for action in command_parser._actions:
        flags = [o for o in action.option_strings if o.startswith("--")]
        if not flags or action.dest in ("help",):
            continue
        flag = flags[0]
        # a list value: "na_values=[-99, 999]" -> "--na-values=-99,999"; "x_range=(1, 7)" -> "--x-range 1 7"
        def as_option(match: re.Match, flag: str = flag, many: bool = action.nargs in ("+", "*")
                      or isinstance(action.nargs, int)) -> str:
            items = [item.strip() for item in match.group(1).split(",") if item.strip()]
            return f"{flag} {' '.join(items)}" if many else f"{flag}={','.join(items)}"

        message = re.sub(rf"\b{re.escape(action.dest)}=[\[(]([^\])]*)[\])]", as_option, message)
        message = re.sub(rf"\b{re.escape(action.dest)}=(['\"])([^'\"]*)\1", rf"{flag} \2", message)
        message = re.sub(rf"\b{re.escape(action.dest)}=(?=[\s,;.)]|$)", flag, message)
        message = re.sub(rf"\b{re.escape(action.dest)}=", f"{flag} ", message)
    # "give prepare(--time...)" reads as "give --time"; "prepare(..., --within early)" as "--within early"
    message = re.sub(r"\b\w+\(\.\.\.,\s*(--[\w-]+(?: [\w.-]+)?)\)", r"\1", message)
    return re.sub(r"\b\w+\((--[\w-]+)\s*(?:\.\.\.)?\)", r"\1", message)


def did_you_mean(extra: Sequence[str], parser: argparse.ArgumentParser, command: str | None) -> str:
    """" (did you mean --moderator?)" for unrecognized options close to the command's own."""
    import difflib

    sub = next((a for a in parser._actions if isinstance(a, argparse._SubParsersAction)), None)
    command_parser = sub.choices.get(command) if sub is not None and command else parser
    options = [o for a in command_parser._actions for o in a.option_strings if o.startswith("--")]
    hints = [match[0] for word in extra if word.startswith("--")
             for match in [difflib.get_close_matches(word.split("=", 1)[0], options, n=1, cutoff=0.75)] if match]
    return f" (did you mean {' or '.join(dict.fromkeys(hints))}?)" if hints else ""


def _plain_warnings(parser: argparse.ArgumentParser, command: str | None) -> Callable[..., None]:
    """warnings.showwarning for the command line: one plain line in the command's words,
    no Python file name or source line."""
    def show(message: Warning | str, category: type[Warning], filename: str, lineno: int,
             file: object = None, line: str | None = None) -> None:
        text = " ".join(str(message).split())
        print(f"warning: {cli_words(text, parser, command)}", file=sys.stderr)

    return show


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code (0 ok, 1 error, 2 usage/missing command)."""
    parser = build_parser()
    try:
        args, extra = parser.parse_known_args(argv)
        if extra:
            parser.error(f"unrecognized arguments: {' '.join(extra)}"
                         + did_you_mean(extra, parser, getattr(args, "command", None)))
    except SystemExit as exc:  # --help / --version / usage errors
        return int(exc.code or 0)
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _plain_warnings(parser, args.command)
            return args.handler(args)
    except _CommandsMissing as exc:
        print(f"error: '{args.command}' is not available in this installation "
              f"(pylme_alliance.cli_commands.{exc.args[0]} is missing)", file=sys.stderr)
        return 2
    except (PylmeError, FileNotFoundError, ValueError) as exc:
        message = " ".join(str(exc).split()) or type(exc).__name__
        print(f"error: {cli_words(message, parser, args.command)}", file=sys.stderr)
        return 1
    except OSError as exc:  # a disk full, a scheduler out of reach: one line, not a traceback
        where = f" ({exc.filename})" if getattr(exc, "filename", None) else ""
        print(f"error: {exc.strerror or exc or type(exc).__name__}{where}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
