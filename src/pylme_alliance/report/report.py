"""The alliance-outcome :class:`Report`: tables, figures and notes, and how it is saved.

:func:`analyze` (in :mod:`.analyze`) builds it; :mod:`.render` turns it into Markdown
and HTML; :mod:`~pylme_alliance.outfiles` writes it.
"""
from __future__ import annotations

import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from ..outfiles import check_directory, unique_slugs, write_files
from . import render, results_json, wording

__all__ = ["Report", "SECTIONS", "REPORT_FILES"]

SECTIONS = [
    ("data", "Data", ["data_description", "data_summary"], []),
    ("a", "(a) Within- and between-patient alliance effects",
     ["alliance_effects", "reciprocal_effects", "fixed_effects", "variance_parameters", "fit_statistics"], []),
    ("b", "(b) Duration of the alliance effect", ["duration", "impulse_responses", "duration_lead_regression"],
     ["duration", "duration_direct"]),
    ("c", "(c) Moderators of the alliance effect", ["moderators", "johnson_neyman"], []),
    ("h", "Heterogeneity: one size does not fit all", ["heterogeneity", "patient_slopes"], ["patient_slopes"]),
    ("d", "Diagnostics", ["fits", "residual_acf", "ar1_comparison"], ["residual_acf"]),
]
REPORT_FILES = ("report.md", "report.html", "results.json")


@dataclass(frozen=True)
class Report:
    """The alliance-outcome analysis: tables, figures and notes.

    Every table of estimates has an ``estimand`` column (what the row estimates, in
    words) and, where it comes from a fit, ``status`` ("" when the fit converged and is
    neither singular nor degenerate; otherwise what is wrong and which parameter is at
    the boundary). ``data_summary`` (counts) and ``fits`` (the flags themselves) have no
    estimand.

    Tables (``.tables``; a name is absent when its part was not run):

    - ``data_description``: per variable used (alliance, outcome, time, each moderator)
      n, missing, mean, SD, min, max (levels for categories), and per patient the
      sessions and rated sessions (:func:`~.describe.data_description`).
    - ``data_summary``: the panel summary (patients, sessions, drops).
    - ``alliance_effects``: the within-patient effect of the main model (first row), the
      between-patient LEVEL effect of :func:`~pylme_alliance.analyses.between.between_effect`
      (``alliance_level``; the report's between association), and the main model's
      ``alliance_between``, labelled as the conditional change coefficient it is; with
      CI, ``std_estimate`` and its ``std_definition`` (within-patient SDs for the within
      effect, between-patient SDs for the between effects).
    - ``fixed_effects``, ``variance_parameters``, ``fit_statistics``: the main model.
    - ``reciprocal_effects``: the RI-CLPM's lagged paths (:func:`pylme_alliance.reciprocal`;
      alliance -> outcome, outcome -> alliance and each carry-over), with ``status``.
    - ``duration``: total and direct effects by lead (``effect`` column); the total
      effects at leads >= 1 are the RI-CLPM's impulse responses (issue 19), the direct
      ones the multilevel model's.
    - ``impulse_responses``: every impulse response of the RI-CLPM (an alliance or an
      outcome change at t; the alliance and the outcome at t+1..t+K).
    - ``duration_lead_regression``: only without the RI-CLPM (``reciprocal=False`` or
      too few waves): the per-lead regression at later leads, its bias in ``estimand``.
    - ``moderators``: interactions with Benjamini-Hochberg ``p_adjusted`` and simple slopes.
    - ``johnson_neyman``: regions of continuous moderators, with the effect's sign.
    - ``heterogeneity``: the random-slope test, SD, prediction interval, model-implied
      share with interval and interval-based patient counts; ``patient_slopes``: each
      patient's slope, interval and ``category``.
    - ``fits``: every fit made (converged, singular, degenerate, status, warnings).
    - ``residual_acf``: residual autocorrelation by session lag (pairs by session number).
    - ``ar1_comparison``: independent vs AR(1) residuals by AIC (only when ``residual="iid"``),
      made only on converged fits.

    Figures (``.figures``): ``duration`` (total), ``duration_direct``,
    ``simple_slopes_<moderator>``, ``patient_slopes``, ``residual_acf``; a figure drawn
    from a flagged fit says so on its face. Saved under safe file names
    (:meth:`file_stems`); the documents caption them with their real names.

    ``settings`` holds the choices made (leads, engine, random slope, outcome direction
    and name, heterogeneity test) that the texts are written from. ``provenance`` says
    how the report was made (package, Python, R and engine versions, date, input file
    name and SHA-256, every argument of analyze(), the command line); the documents
    open with it.
    """

    tables: dict[str, pd.DataFrame]
    figures: dict[str, Any]
    notes: list[str] = field(default_factory=list)
    settings: dict[str, Any] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)

    # ------------------------------------------------------------------ text
    def significant_moderators(self, alpha: float = 0.05) -> list[str]:
        """Moderators with an interaction significant after Benjamini-Hochberg."""
        table = self.tables.get("moderators")
        if table is None or table.empty:
            return []
        inter = table[(table["kind"] == "interaction") & (table["p_adjusted"] < alpha)]
        return list(dict.fromkeys(inter["moderator"].astype(str)))

    def __str__(self) -> str:
        lines = ["Alliance-outcome report"] + wording.headline(self)
        mods = self.tables.get("moderators")
        if mods is not None:
            n_mod = mods["moderator"].nunique()
            sig = self.significant_moderators()
            lines.append(f"  moderators significant after BH: {len(sig)} of {n_mod}"
                         + (f" ({', '.join(sig)})" if sig else ""))
        return "\n".join(lines)

    def summary_table(self) -> pd.DataFrame:
        """Main effects and duration (total and direct) in one short table (what the CLI
        prints), with each row's fit ``status``."""
        columns = ["part", "effect", "lead", "term", "estimate", "conf_low", "conf_high", "p_value", "status"]
        parts = []
        effects = self.tables.get("alliance_effects")
        if effects is not None:
            parts.append(effects.assign(part="main", effect="").reindex(columns=columns))
        dur = self.tables.get("duration")
        if dur is not None:
            parts.append(dur.assign(part="duration").reindex(columns=columns))
        table = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=columns)
        status = table["status"].astype(object)
        table["status"] = status.where(status.notna(), "").map(wording.short_status)  # details: the fits table
        return table

    def sections(self) -> list[tuple[str, str, list[str], list[str]]]:
        """(key, title, table names, figure names) of each section the report has."""
        sections = []
        texts = wording.lead_ins(self)
        for key, title, tables, figs in SECTIONS:
            tables = [t for t in tables if t in self.tables]
            if key == "c":
                figs = [f for f in self.figures if str(f).startswith("simple_slopes_")]
            figs = [f for f in figs if f in self.figures]
            if tables or figs or (key in texts and key != "d"):
                sections.append((key, title, tables, figs))
        return sections

    def to_markdown(self) -> str:
        """The report as Markdown (figures referenced by their ``.png`` file names)."""
        return render.to_markdown(self)

    def to_html(self) -> str:
        """A self-contained HTML page (figures embedded as base64 PNG)."""
        return render.to_html(self)

    def _repr_html_(self) -> str:
        """Notebook display: the summary, and every other section folded in a
        ``<details>`` that opens on a click (the whole page is many screens long)."""
        return render.to_html(self, notebook=True)

    # ------------------------------------------------------------------ files
    def file_stems(self) -> dict[str, dict[Any, str]]:
        """Safe, distinct file-name stems: ``{"figures": {name: stem}, "tables": {name: stem}}``.

        ASCII letters, digits, ``_`` and ``-`` only (no ``/``, no ``..``), unique
        case-insensitively among the figures and among the tables.
        """
        # .png and .csv never clash with each other or with report.md/.html
        figures = unique_slugs(self.figures)
        tables = unique_slugs(self.tables)
        return {"figures": figures, "tables": tables}

    def file_names(self) -> list[str]:
        """Every file :meth:`save` writes, in writing order."""
        stems = self.file_stems()
        return ([f"{s}.png" for s in stems["figures"].values()] + [f"{s}.csv" for s in stems["tables"].values()]
                + list(REPORT_FILES))

    @classmethod
    def load(cls, directory: str | Path) -> Report:
        """Read a report back from the ``results.json`` that :meth:`save` wrote.

        The tables equal the saved ones (values, column order and dtypes); settings,
        notes and provenance come back as JSON gives them (tuples as lists). Figures come
        back as the PNG bytes :meth:`save` wrote beside results.json (a figure whose PNG
        is missing is left out), so a loaded report saves and renders with them.

        Only a regular file of at most ``results_json.MAX_BYTES`` is read (a FIFO, a
        device or a link to one is refused without blocking), JSON nested at most
        ``results_json.MAX_DEPTH`` deep; a damaged file gives a sentence, not a traceback.

        Raises
        ------
        PylmeError
            No readable results.json in ``directory``, it is not a regular file or too
            large, or it was not written by :meth:`save` (or was altered since).
        """
        path = Path(directory).expanduser() / results_json.FILE_NAME
        parts = results_json.loads(results_json.read_text(path))
        return cls(tables=parts["tables"], figures=_saved_figures(path.parent, parts.get("figures", [])),
                   notes=parts["notes"], settings=parts["settings"], provenance=parts["provenance"])

    def save(self, directory: str | Path, *, overwrite: bool = False) -> Path:
        """Write report.md, report.html, results.json (see :meth:`load`), one PNG per
        figure and one CSV per table.

        Everything is rendered in memory first; then each file is written to a
        temporary file in ``directory`` and renamed into place, so an error or Ctrl-C
        leaves no partial report files.

        Parameters
        ----------
        directory : str or Path
            Created (with its parents) when missing.
        overwrite : bool
            False (default): when any file the report would write already exists
            (a symlink counts), raise before writing anything. True: replace the
            report's own files (a symlink is replaced, never written through); other
            files in the directory are left alone.

        Returns
        -------
        Path
            The directory.

        Raises
        ------
        PylmeError
            The directory is a file, is under a file or cannot be written, or a file
            exists and ``overwrite`` is false (the message names it).
        """
        names = self.file_names()
        check_directory(directory, files=names, overwrite=overwrite)  # fail before rendering
        stems = self.file_stems()
        contents: dict[str, bytes] = {}
        for name, fig in self.figures.items():
            contents[f"{stems['figures'][name]}.png"] = render.png_bytes(fig, dpi=110)
        for name, table in self.tables.items():
            contents[f"{stems['tables'][name]}.csv"] = table.to_csv(index=False).encode("utf-8")
        contents["report.md"] = self.to_markdown().encode("utf-8")
        contents["report.html"] = self.to_html().encode("utf-8")
        contents["results.json"] = results_json.dumps(self).encode("utf-8")
        return write_files(directory, contents, overwrite=overwrite)



#: the largest PNG a loaded report reads back (the report's own are well under 1 MB)
MAX_PNG_BYTES = 20 * 1024 * 1024
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _saved_figures(directory: Path, names: list[str]) -> dict[str, bytes]:
    """The PNGs :meth:`Report.save` wrote for ``names`` (under the same safe stems), as
    bytes; a regular file only (no FIFO, device or symlink), bounded in size, with a PNG
    signature -- anything else is left out."""
    figures: dict[str, bytes] = {}
    for name, stem in unique_slugs(names).items():
        path = directory / f"{stem}.png"
        try:
            info = path.lstat()
            if not stat.S_ISREG(info.st_mode) or info.st_size > MAX_PNG_BYTES:
                continue
            data = path.read_bytes()
        except OSError:
            continue
        if data.startswith(_PNG_MAGIC):
            figures[name] = data
    return figures
