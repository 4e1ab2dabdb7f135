"""The report's layout, in the style of a journal's results section (issue 21, item 1).

A one-screen summary (the three objectives and heterogeneity, each one sentence with
estimate [95% CI], p, n and its figure); the data; the methods (what the design makes
expected is said here, once); the results with compact tables whose markers are
footnoted once under each table; a glossary (each estimand and statistical word once);
appendices with the model details, the diagnostics and every warning (each once, with
the fits it came from), the patients, and how the report was made.

:func:`sections` returns format-free blocks; :mod:`.render` writes them as Markdown or
HTML, escaping every string there.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from . import compact, glossary, provenance, wording
from . import status as fit_statuses

#: figures of the results, in reading order (simple slopes go after duration)
RESULT_FIGURES = ("duration", "duration_direct")
#: where the package's own files live for a reader of the installed package
SOURCE_ONLY = {"benchmarks/README.md": "the recovery study in the package's source repository (benchmarks)"}


@dataclass
class Block:
    """One piece of a section: ``kind`` is "p", "ul", "figs", "table", "dl" or "quote"."""

    kind: str
    text: str = ""
    items: list[Any] = field(default_factory=list)
    shown: compact.Shown | None = None
    name: str = ""                      # the table's key (its CSV file)
    footnotes: list[str] = field(default_factory=list)


@dataclass
class Section:
    key: str
    title: str
    blocks: list[Block]
    group: str  # "summary", "body" or "appendix"


def plain(text: Any) -> str:
    """Text with pointers to files the installed package does not have replaced by words."""
    text = str(text)
    for path, words in SOURCE_ONLY.items():
        text = text.replace(path, words)
    return text


def figure_numbers(report: Any) -> dict[str, int]:
    """Figure name -> its number in the document (results first, diagnostics last)."""
    order = [f for f in RESULT_FIGURES if f in report.figures]
    order += [f for f in report.figures if str(f).startswith("simple_slopes_")]
    order += [f for f in report.figures if f not in order and f != "residual_acf"]
    order += [f for f in report.figures if f == "residual_acf"]
    return {name: i + 1 for i, name in enumerate(order)}


#: table and figure keys said in words; other keys: underscores as spaces, first letter capital
HEADINGS = {
    "data_description": "Variables analysed", "data_summary": "Data summary",
    "alliance_effects": "Alliance effects", "fixed_effects": "Fixed effects",
    "variance_parameters": "Variance parameters", "fit_statistics": "Fit statistics",
    "duration": "Duration: total effect by lead", "duration_direct": "Duration: direct effect by lead",
    "moderators": "Moderators", "johnson_neyman": "Johnson-Neyman regions", "heterogeneity": "Heterogeneity",
    "patient_slopes": "Patient slopes", "fits": "Fits", "residual_acf": "Residual autocorrelation",
    "ar1_comparison": "Independent vs AR(1) residuals",
}


def heading(name: object) -> str:
    """The words a reader sees for a table or figure key (``simple_slopes_arm`` ->
    "Simple slopes by arm"); the one mapping the Markdown and HTML documents use."""
    key = str(name)
    if key in HEADINGS:
        return HEADINGS[key]
    if key.startswith("simple_slopes_"):
        return f"Simple slopes by {key[len('simple_slopes_'):]}"
    words = key.replace("_", " ").strip()
    return words[:1].upper() + words[1:] if words else key


def _figures(report: Any, names: list[Any], numbers: dict[Any, int]) -> list[Block]:
    shown = [(n, f"Figure {numbers[n]}. {heading(n)}") for n in names if n in report.figures]
    return [Block("figs", items=shown)] if shown else []


def _table(report: Any, name: str, markers: fit_statuses.Markers, *, title: str | None = None,
           source: pd.DataFrame | None = None) -> list[Block]:
    table = report.tables.get(name) if source is None else source
    if table is None:
        return []
    shown = compact.build(name, table, markers, main_status=report.settings.get("main_status", ""))
    if shown is None:
        shown = compact.Shown(table)  # shown whole, formatted by the renderer
    footnotes = markers.footnotes(shown.statuses) + ([shown.remark] if shown.remark else [])
    return [Block("table", text=title or heading(name), shown=shown, name=name, footnotes=footnotes)]


def _summary(report: Any, numbers: dict[Any, int]) -> Section | None:
    lines = wording.summary_lines(report, numbers)
    if not lines:
        return None
    blocks = [Block("ul", items=lines)]
    data = report.tables.get("data_summary")
    if data is not None and data.shape[1] == 2:
        values = dict(zip(data.iloc[:, 0].astype(str), data.iloc[:, 1]))
        known = [(k, compact.count(values[k])) for k in ("patients", "therapists", "sessions kept") if k in values]
        if known:
            blocks.append(Block("p", text="Data: " + ", ".join(f"{v} {k}" for k, v in known if v)
                                + ". Details in the sections below; statistical words in the glossary."))
    return Section("summary", "Summary", blocks, "summary")


def _methods(report: Any) -> Section:
    notes = [plain(n) for n in report.notes]
    statuses = _all_statuses(report)
    if any(fit_statuses.has_expected(s) for s in statuses):
        notes.append(fit_statuses.EXPECTED_METHODS)
    texts = wording.lead_ins(report)
    if "c" in texts:
        notes.append(texts["c"].split(" Moderators with")[0].split(" No interaction")[0])
    return Section("methods", "Methods", [Block("ul", items=notes)] if notes else [], "body")


def _all_statuses(report: Any) -> list[Any]:
    statuses = [report.settings.get("main_status", "")]
    for table in report.tables.values():
        if "status" in table.columns:
            statuses += list(table["status"])
    return statuses


def _results(report: Any, numbers: dict[Any, int], markers: fit_statuses.Markers) -> list[Section]:
    texts = wording.lead_ins(report)
    out = []
    slopes = [f for f in report.figures if str(f).startswith("simple_slopes_")]
    plan = [("a", "(a) Within- and between-patient alliance effects", [], ["alliance_effects"]),
            ("b", "(b) Duration of the alliance effect", list(RESULT_FIGURES), ["duration"]),
            ("c", "(c) Moderators of the alliance effect", slopes, ["moderators", "simple_slopes", "johnson_neyman"]),
            ("h", "Heterogeneity: one size does not fit all", ["patient_slopes"], ["heterogeneity"])]
    for key, title, figs, tables in plan:
        blocks = [Block("p", text=texts[key])] if key in texts and key != "c" else []
        if key == "c" and "c" in texts:
            blocks.append(Block("p", text=wording.moderators_result(report)))
        blocks += _figures(report, figs, numbers)
        for name in tables:
            if name == "simple_slopes" and "moderators" in report.tables:
                blocks += _table(report, name, markers, title="Simple slopes (the effect at moderator values)",
                                 source=report.tables["moderators"])
            else:
                blocks += _table(report, name, markers,
                                 title="Interactions with the alliance" if name == "moderators" else None)
        if any(b.kind != "p" for b in blocks) or blocks:
            out.append(Section(key, title, blocks, "body"))
    return out


def _glossary(report: Any) -> Section:
    blocks = []
    for title, items in glossary.entries(report):
        blocks.append(Block("dl", text=title, items=items))
    return Section("glossary", "Glossary", blocks, "body")


def warning_groups(report: Any) -> list[str]:
    """Every warning once: texts that differ only in their numbers are one warning,
    followed by the fits it came from."""
    groups: dict[str, tuple[str, list[str]]] = {}

    def add(text: str, source: str) -> None:
        text = " ".join(plain(text).split())
        if text.startswith("reduced fit: "):  # the heterogeneity test's fit without the slope
            text, source = text[len("reduced fit: "):], f"{source} (fit without the random slope)"
        # texts that differ only in numbers or in the names in parentheses are one warning
        key = re.sub(r"\([^()]*\)|[-+]?\d+(\.\d+)?(e[-+]?\d+)?", "#", text)
        first, sources = groups.setdefault(key, (text, []))
        if source not in sources:
            sources.append(source)

    fits = report.tables.get("fits")
    if fits is not None and {"model", "warnings"} <= set(fits.columns):
        for model, warned in zip(fits["model"], fits["warnings"]):
            for text in str(warned or "").split(" | "):
                if text.strip() and text != "nan":
                    add(text, str(model))
    het = report.tables.get("heterogeneity")
    if het is not None and {"statistic", "note"} <= set(het.columns):
        for name, note in zip(het["statistic"], het["note"]):
            for text in compact.split_note(note)[1]:
                add(text, f"heterogeneity: {name}")
    return [f"{text} (in: {', '.join(sources)})" for text, sources in groups.values()]


def _appendix(report: Any, numbers: dict[Any, int], markers: fit_statuses.Markers) -> list[Section]:
    texts = wording.lead_ins(report)
    model = [b for n in ("fixed_effects", "variance_parameters", "fit_statistics") for b in _table(report, n, markers)]
    diagnostics = [Block("p", text=texts["d"])] + _figures(report, ["residual_acf"], numbers)
    for name in ("fits", "residual_acf", "ar1_comparison"):
        diagnostics += _table(report, name, markers)
    warned = warning_groups(report)
    if warned:
        diagnostics.append(Block("ul", text="Warnings (each once, with the fits it came from)", items=warned))
    out = [Section("model", "Appendix A: model details", model, "appendix"),
           Section("d", "Appendix B: diagnostics", diagnostics, "appendix")]
    patients = _table(report, "patient_slopes", markers)
    if patients:
        out.append(Section("patients", "Appendix C: patients' own effects", patients, "appendix"))
    known = {"data_description", "data_summary", "alliance_effects", "duration", "moderators", "johnson_neyman",
             "heterogeneity", "fixed_effects", "variance_parameters", "fit_statistics", "fits", "residual_acf",
             "ar1_comparison", "patient_slopes"}
    other = [b for n in report.tables if n not in known for b in _table(report, n, markers)]
    other += _figures(report, [f for f in report.figures if f not in numbers], numbers)
    if other:
        out.append(Section("other", "Other tables", other, "appendix"))
    made = provenance.lines(getattr(report, "provenance", {}))
    if made:
        out.append(Section("made", "How this report was made", [Block("ul", items=[plain(m) for m in made])],
                           "appendix"))
    closing = wording.closing_note(report)
    if closing:
        out.append(Section("closing", "Closing note: the headline sentences", [Block("quote", items=closing)],
                           "appendix"))
    return [s for s in out if s.blocks]


def sections(report: Any) -> list[Section]:
    """The whole document, section by section."""
    numbers = figure_numbers(report)
    markers = fit_statuses.Markers()
    out = [s for s in (_summary(report, numbers),) if s is not None]
    data = [b for n in ("data_description", "data_summary") for b in _table(report, n, markers)]
    if data:
        out.append(Section("data", "Data", data, "body"))
    methods = _methods(report)
    if methods.blocks:
        out.append(methods)
    out += _results(report, numbers, markers)
    gloss = _glossary(report)
    if gloss.blocks:
        out.append(gloss)
    out += _appendix(report, numbers, markers)
    return out
