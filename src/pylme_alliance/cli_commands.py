"""The work behind ``pylme-alliance demo | analyze | simulate | power | reciprocal | crosscheck``.

cli.py parses the arguments and turns PylmeError/ValueError/FileNotFoundError into a
one-line ``error:``; these functions do the work and return an exit code (or None).
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

import pandas as pd

from .errors import PylmeError
from .readers import read_data

DEMO_MODERATORS = ("severity", "n_sessions", "integrative", "arm")


def _panel(args: argparse.Namespace, leads: Any) -> Any:
    from .panel.prepare import prepare

    for option in ("sep", "decimal"):
        value = getattr(args, option, None)
        if value is not None and len(value) != 1:
            raise PylmeError(f"--{option} must be one character (e.g. ';' or a tab), got {value!r}")
    data = read_data(args.data, sep=getattr(args, "sep", None), decimal=getattr(args, "decimal", None))
    # lead 0 (the same session) needs no lead column: prepare() makes columns for k >= 1
    leads = tuple(k for k in leads if k > 0) or (1,)
    return prepare(data, patient=args.patient, session=args.session, alliance=args.alliance,
                   outcome=args.outcome, therapist=args.therapist, time=args.time,
                   within=getattr(args, "within", "person_mean"), leads=tuple(leads),
                   moderators=tuple(getattr(args, "moderator", None) or ()),
                   outcome_better=getattr(args, "outcome_better", None),
                   outcome_label=getattr(args, "outcome_label", None),
                   alliance_range=_pair(getattr(args, "alliance_range", None)),
                   outcome_range=_pair(getattr(args, "outcome_range", None)),
                   na_values=_na_values(getattr(args, "na_values", None)))


def _pair(values: list[float] | None) -> tuple[float, float] | None:
    return None if values is None else (values[0], values[1])


def _na_values(text: str | None) -> list[float | str] | None:
    """``--na-values=-99,999,n/a`` as ``[-99.0, 999.0, "n/a"]`` (numbers where they parse)."""
    if text is None:
        return None
    codes: list[float | str] = []
    for token in (t.strip() for t in text.split(",")):
        if not token:
            continue
        try:
            codes.append(float(token))
        except ValueError:
            codes.append(token)
    if not codes:
        raise PylmeError("--na-values is empty; give the codes that mean missing, e.g. --na-values=-99,999")
    return codes


def _print_summary(report: Any) -> None:
    # each result once: the duration rows that repeat the main model's fit are left out,
    # and the moderators' line is printed only when the summary above does not have it
    table = report.summary_table()
    headline = str(report)
    print(headline)
    if len(table) and {"part", "lead", "term", "estimate"} <= set(table.columns):
        main = table[table["part"] == "main"]
        seen = set(zip(main["lead"], main["term"], main["estimate"]))
        same = pd.Series([key in seen for key in zip(table["lead"], table["term"], table["estimate"])],
                         index=table.index)
        repeat = (table["part"] != "main") & same
        table = table[~repeat]
    if len(table):
        print()
        print(table.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    sig = report.significant_moderators()
    if "moderators" in report.tables and "moderators significant" not in headline.lower():
        print(f"\nModerators significant after Benjamini-Hochberg: {', '.join(sig) if sig else 'none'}")
    # a lead asked for but not fitted must not vanish from the summary
    skipped = [note for note in report.notes if str(note).startswith("Lead ") and " skipped" in str(note)]
    if skipped:
        print("\nNot fitted:")
        print("\n".join(f"  {note}" for note in skipped))


def _check_out(args: argparse.Namespace, moderators: tuple[str, ...]) -> None:
    """Refuse an unusable --out (a file, under a file, unwritable, or holding report
    files without --overwrite) before reading data or fitting anything."""
    from .outfiles import check_directory
    from .report.analyze import planned_files

    check_directory(args.out, files=planned_files(moderators), overwrite=getattr(args, "overwrite", False))


def _save(report: Any, args: argparse.Namespace) -> Path:
    return report.save(args.out, overwrite=getattr(args, "overwrite", False)).resolve()


def run_analyze(args: argparse.Namespace) -> int:
    from .report.analyze import analyze

    leads = tuple(dict.fromkeys(int(k) for k in (args.leads or (1, 2, 3))))
    if any(k < 0 for k in leads):
        raise PylmeError(f"--leads must be integers >= 0 (0 = the same session), got {list(leads)}")
    moderators = tuple(args.moderator or ())
    _check_out(args, moderators)
    panel = _panel(args, leads)
    # the report is written only after every fit, each file whole (see Report.save):
    # Ctrl-C during the work leaves nothing behind
    report = analyze(panel, leads=leads, moderators=moderators, engine=args.engine,
                     residual=args.residual, random_slope=getattr(args, "random_slope", "auto"),
                     control_outcome=getattr(args, "control_outcome", "decomposed"),
                     prior_outcome=getattr(args, "prior_outcome", "auto"),
                     reciprocal=getattr(args, "reciprocal", True),
                     slope_draws=getattr(args, "slope_draws", 199),
                     progress=sys.stderr.isatty(), source=args.data, command=sys.argv)
    out = _save(report, args)
    _print_summary(report)
    print(f"\nReport written to {out / 'report.html'}")
    return 0


def run_demo(args: argparse.Namespace) -> int:
    from .panel.prepare import prepare
    from .report.analyze import analyze
    from .simulation.example import load_example

    _check_out(args, DEMO_MODERATORS)
    data = load_example()
    # the bundled example's outcome is a simulated symptom score: lower is better
    panel = prepare(data, patient="patient", session="session", alliance="alliance", outcome="outcome",
                    therapist="therapist", time="day", leads=(1, 2, 3), moderators=DEMO_MODERATORS,
                    outcome_better="lower", outcome_label="symptom score")
    report = analyze(panel, leads=(1, 2, 3), moderators=DEMO_MODERATORS, progress=sys.stderr.isatty(),
                     command=sys.argv)
    out = _save(report, args)
    _print_summary(report)
    print(f"\nReport written to {out / 'report.html'}")
    return 0


def run_simulate(args: argparse.Namespace) -> int:
    from .simulation.simulate import simulate

    if args.patients < 1:
        raise PylmeError(f"--patients must be at least 1, got {args.patients}")
    out = _check_out_file(args.out, overwrite=args.overwrite)
    # simulate()'s default of 40 therapists cannot serve fewer than 40 patients:
    # keep about 5 patients a therapist for small trials.
    n_therapists = min(40, max(1, args.patients // 5))
    data = simulate(n_patients=args.patients, n_therapists=n_therapists, seed=args.seed).data
    _write_file(out, data.to_csv(index=False).encode("utf-8"), overwrite=args.overwrite)
    print(f"Wrote {len(data)} sessions of {data['patient'].nunique()} patients to {out.resolve()}")
    return 0


def _check_out_file(name: str, *, overwrite: bool) -> Path:
    """Refuse an --out FILE before any work: its directory missing, a symlink on the way
    (or the file one, without --overwrite), or an existing file without --overwrite."""
    from .outfiles import check_directory

    out = Path(name).expanduser()
    if not out.name or out.name in (".", ".."):
        raise PylmeError(f"--out {name!r} is not a file name")
    if not out.parent.is_dir() and not out.parent.is_symlink():
        raise FileNotFoundError(f"directory does not exist: {out.parent}")
    if not overwrite and os.path.lexists(out):  # a symlink counts: it would be written through
        raise PylmeError(f"--out {str(out)!r} exists; pass --overwrite to replace it")
    check_directory(out.parent, files=[out.name], overwrite=True)  # symlinks, writable, not a directory
    return out


def _write_file(out: Path, data: bytes, *, overwrite: bool) -> None:
    # whole or not at all, never through a symlink (outfiles.write_files)
    from .outfiles import write_files

    write_files(out.parent, {out.name: data}, overwrite=overwrite)


RECIPROCAL_FILES = ("effects.csv", "impulse.csv", "summary.txt")


def run_reciprocal(args: argparse.Namespace) -> int:
    from .analyses.reciprocal import reciprocal
    from .outfiles import check_directory, write_files

    check_directory(args.out, files=RECIPROCAL_FILES, overwrite=args.overwrite)  # before any fitting
    if args.leads < 1:
        raise PylmeError(f"--leads must be at least 1, got {args.leads}")
    panel = _panel(args, (1,))
    options: dict[str, Any] = {"method": args.method, "leads": args.leads, "slopes": args.slopes}
    if args.method != "mlm":
        options["waves"] = args.waves
    elif args.waves is not None:
        raise PylmeError("--waves applies to --method riclpm or dpm, not mlm")
    fit = reciprocal(panel, **options)
    text = fit.summary()
    out = write_files(args.out, {"effects.csv": fit.effects.to_csv(index=False).encode(),
                                 "impulse.csv": fit.impulse.to_csv(index=False).encode(),
                                 "summary.txt": (text + "\n").encode()}, overwrite=args.overwrite)
    print(text)
    print(f"\nWrote {', '.join(RECIPROCAL_FILES)} to {out.resolve()}")
    return 0


def run_crosscheck(args: argparse.Namespace) -> int:
    from .analyses.crosscheck import crosscheck
    from .models.model import AllianceModel

    out = _check_out_file(args.out, overwrite=args.overwrite) if args.out else None  # before the fit
    panel = _panel(args, (1,))
    therapist = "auto" if args.therapist else "none"
    model = AllianceModel(engine=args.engine, therapist=therapist,
                          reml=False if getattr(args, "ml", False) else None)
    check = crosscheck(panel, model=model)
    print(str(check))
    if out is not None:
        _write_file(out, check.table.to_csv(index=False).encode("utf-8"), overwrite=args.overwrite)
        print(f"\nWrote {out.resolve()}")
    return 0


def run_power(args: argparse.Namespace) -> int:
    from .outfiles import check_directory
    from .simulation.power import power
    from .simulation.power_result import FILES

    if args.workers < 1:
        raise PylmeError(f"--workers must be at least 1, got {args.workers}")
    if args.scheduler and args.workers > 1:
        raise PylmeError("give --workers (processes here) or --scheduler (a Dask cluster), not both")
    check_directory(args.out, files=FILES, overwrite=args.overwrite)  # before any simulation
    design: dict[str, Any] = {}
    if args.therapists:
        design["n_therapists"] = list(args.therapists)
    elif min(args.patients) < 200:
        # simulate()'s 40 therapists need 40+ patients: keep about 5 patients a therapist
        design["n_therapists"] = min(40, max(1, min(args.patients) // 5))
    if args.within_effect:
        design["within_effect"] = list(args.within_effect)
    executor, close = _power_executor(args)
    try:
        result = power(design=design, n_patients=list(args.patients), n_sims=args.sims,
                       effects=tuple(args.effects), alpha=args.alpha, seed=args.seed, executor=executor,
                       progress=sys.stderr.isatty())
    finally:
        close()
    out = result.save(args.out, overwrite=args.overwrite).resolve()
    print(str(result))
    print(f"\nWrote power.csv, replicates.csv and power.png to {out}")
    return 0


def _power_executor(args: argparse.Namespace) -> tuple[Any, Any]:
    """The executor for --workers / --scheduler and the function that releases it."""
    if args.scheduler:
        try:
            from dask.distributed import Client
        except ImportError:
            raise PylmeError("--scheduler needs dask.distributed, which is not installed: "
                             "pip install 'dask[distributed]'") from None
        client = Client(args.scheduler)
        return client, client.close
    if args.workers > 1:
        from .executors import process_pool

        pool = process_pool(args.workers)  # spawn workers that start R once and keep it
        return pool, lambda: pool.shutdown(cancel_futures=True)
    return None, lambda: None
