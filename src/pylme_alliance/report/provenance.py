"""How a report was made: versions, date, input file and its SHA-256, settings, command,
and the time each part of the analysis took.

Collected once by :func:`~pylme_alliance.report.analyze.analyze`; rendered at the top
of report.md/report.html and saved in results.json.
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import platform
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

R_PACKAGES = ("lme4", "nlme", "glmmTMB", "lmerTest", "emmeans", "pbkrtest")
#: Python packages whose versions shape the numbers (asked of the installed metadata,
#: never by importing them: only bridge/ imports rpy2)
PYTHON_PACKAGES = ("rpy2", "statsmodels", "pandas", "numpy")


def file_sha256(path: str | Path) -> str | None:
    """The SHA-256 of a file's bytes (read in blocks), or None when it cannot be read."""
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as stream:
            for block in iter(lambda: stream.read(1 << 20), b""):
                digest.update(block)
    except OSError:
        return None
    return digest.hexdigest()


def r_versions() -> dict[str, str]:
    """R's and the engines' versions, asked of the running R (r/versions.R); "unknown"
    for each when R cannot be asked, "not installed" for a missing package."""
    try:
        from ..bridge.session import call

        table, _ = call("pylme_versions", list(R_PACKAGES))
        found = {str(n): str(v) for n, v in zip(table["name"], table["version"])}
    except Exception:  # provenance must never lose a finished analysis
        return {name: "unknown" for name in ("R", *R_PACKAGES)}
    return {name: (found.get(name) or "not installed") for name in ("R", *R_PACKAGES)}


def python_versions() -> dict[str, str]:
    """The installed versions of :data:`PYTHON_PACKAGES` ("not installed" when absent)."""
    from importlib import metadata

    found = {}
    for name in PYTHON_PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "not installed"
    return found


def collect(*, arguments: Mapping[str, Any], source: str | Path | None = None,
            command: Sequence[str] | None = None, timings: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The provenance record of one analysis.

    Parameters
    ----------
    arguments : mapping
        Every setting analyze() was called with.
    source : str or Path, optional
        The input data file; its name and SHA-256 are recorded (the hash is None when
        the file cannot be read).
    command : sequence of str, optional
        The command line (the CLI passes ``sys.argv``).
    timings : mapping, optional
        ``parts``: one {"part", "seconds", "cpu_seconds"} per step, timed in the process
        that ran it; ``total_seconds``: analyze()'s wall time; ``executor``: where the
        parts ran.
    """
    from .. import __version__

    versions = {"pylme_alliance": __version__, "python": platform.python_version(), **python_versions(),
                **r_versions()}
    record: dict[str, Any] = {
        "date": _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat(),
        "versions": versions,
        "source": None,
        "arguments": dict(arguments),
        "command": [str(c) for c in command] if command is not None else None,
        "timings": dict(timings) if timings is not None else None,
    }
    if source is not None:
        record["source"] = {"file": Path(source).name, "sha256": file_sha256(source)}
    return record


def lines(provenance: Mapping[str, Any]) -> list[str]:
    """The record as plain-text lines ("what: value"), for the documents to escape."""
    if not provenance:
        return []
    versions = provenance.get("versions", {})
    out = [f"Made by pylme_alliance {versions.get('pylme_alliance', 'unknown')} on {provenance.get('date', 'unknown')}",
           "Python {python}, R {R}, lme4 {lme4}, nlme {nlme}, glmmTMB {glmmTMB}".format(
               **{k: versions.get(k, "unknown") for k in ("python", "R", "lme4", "nlme", "glmmTMB")})
           + "".join(f", {k} {versions[k]}" for k in (*R_PACKAGES[3:], *PYTHON_PACKAGES) if k in versions)]
    source = provenance.get("source")
    if source:
        out.append(f"Input file: {source.get('file')} (SHA-256 {source.get('sha256') or 'unavailable: not readable'})")
    else:
        out.append("Input file: not given (data passed in memory)")
    arguments = provenance.get("arguments") or {}
    out.append("Settings of analyze(): " + ", ".join(f"{k}={v!r}" for k, v in arguments.items()))
    timings = provenance.get("timings")
    if timings:
        parts = ", ".join(f"{t.get('part')} {float(t.get('seconds', float('nan'))):.2f}"
                          for t in timings.get("parts") or ())
        where = str(timings.get("executor", "unknown"))
        where = ("one after another in this Python process" if where.startswith("none")
                 else f"on {where}")
        out.append(f"Time: {float(timings.get('total_seconds', float('nan'))):.1f} s in all; the fits ran "
                   f"{where}; seconds per part (in the process that ran it): " + (parts or "none recorded"))
    command = provenance.get("command")
    if command:
        import shlex

        out.append("Command line: " + shlex.join(command))
    return out
