"""Rendering a :class:`~pylme_alliance.report.report.Report` as Markdown and HTML.

Every string that can come from the user (column, moderator and level names, notes,
warnings, file names) is escaped where it lands: ``html.escape`` (quotes included) in
HTML text and attributes, ``&``/``<``/``>`` as entities plus Markdown's link and table
characters in Markdown. Figures are referenced by their safe file names
(:func:`~pylme_alliance.outfiles.slug`) and captioned with their real names.
"""
from __future__ import annotations

import base64
import html
import io
import math
import re
from typing import Any

import pandas as pd

from . import provenance, wording

TITLE = "Alliance-outcome analysis"


#: table and figure keys said in words; other keys: underscores as spaces, first letter capital
HEADINGS = {
    "data_summary": "Data summary", "alliance_effects": "Alliance effects", "fixed_effects": "Fixed effects",
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


def md_text(text: object) -> str:
    """User-derived text for Markdown: one line, no raw HTML. A ``<`` that could open a
    tag (followed by a letter, ``/``, ``!`` or ``?``) and an ``&`` that could open an
    entity become entities; "p < .001" and "->" stay readable."""
    line = " ".join(str(text).split())
    line = re.sub(r"&(?=#?[A-Za-z0-9]+;)", "&amp;", line)
    return re.sub(r"<(?=[A-Za-z/!?])", "&lt;", line)


def md_label(text: object) -> str:
    """Text inside Markdown link/image brackets or a table cell."""
    return re.sub(r"([\\\[\]|`])", r"\\\1", md_text(text))


def _fence(text: str) -> str:
    longest = max((len(m) for m in re.findall(r"`+", text)), default=0)
    return "`" * max(3, longest + 1)


def to_markdown(report: Any) -> str:
    """The report as Markdown (figures referenced by their file names)."""
    texts = wording.lead_ins(report)
    stems = report.file_stems()
    summary = str(report)
    fence = _fence(summary)
    out = [f"# {TITLE}", ""]
    made = provenance.lines(getattr(report, "provenance", {}))
    if made:
        out += ["## How this report was made", ""] + [f"- {md_text(line)}" for line in made] + [""]
    out += [fence, summary, fence, ""]
    for key, title, tables, figs in report.sections():
        out += [f"## {title}", ""]
        if key in texts:
            out += [md_text(texts[key]), ""]
        for name in figs:
            out += [f"![{md_label(heading(name))}]({stems['figures'][name]}.png)", "",
                    f"*Figure: {md_label(heading(name))}*", ""]
        for name in tables:
            shown, note = shorten(report.tables[name], f"{stems['tables'][name]}.csv")
            out += [f"### {md_label(heading(name))}", "", markdown_table(shown), ""] + ([md_text(note), ""] if note else [])
    if report.notes:
        out += ["## Notes", ""] + [f"- {md_text(n)}" for n in report.notes] + [""]
    closing = wording.closing_note(report)
    if closing:
        out += ["## Closing note: the headline sentences", ""] + [f"> {md_text(q)}" + "\n>" for q in closing] + [""]
    return "\n".join(out)


def to_html(report: Any) -> str:
    """A self-contained HTML page (figures embedded as base64 PNG), every user-derived
    string escaped."""
    esc = html.escape  # quote=True: safe in attributes and text alike
    texts = wording.lead_ins(report)
    stems = report.file_stems()
    body = [f"<h1>{esc(TITLE)}</h1>"]
    made = provenance.lines(getattr(report, "provenance", {}))
    if made:
        body.append("<h2>How this report was made</h2><ul>" + "".join(f"<li>{esc(line)}</li>" for line in made)
                    + "</ul>")
    body.append(f"<pre>{esc(str(report))}</pre>")
    for key, title, tables, figs in report.sections():
        body.append(f"<h2>{esc(title)}</h2>")
        if key in texts:
            body.append(f"<p>{esc(texts[key])}</p>")
        for name in figs:
            body.append(f'<figure><img alt="{esc(heading(name))}" data-file="{esc(stems["figures"][name])}.png" '
                        f'src="data:image/png;base64,{png_base64(report.figures[name])}">'
                        f"<figcaption>{esc(heading(name))}</figcaption></figure>")
        for name in tables:
            shown, note = shorten(report.tables[name], f"{stems['tables'][name]}.csv")
            body.append(f"<h3>{esc(heading(name))}</h3>")
            body.append(html_table(shown))
            if note:
                body.append(f"<p><em>{esc(note)}</em></p>")
    if report.notes:
        body.append("<h2>Notes</h2><ul>" + "".join(f"<li>{esc(str(n))}</li>" for n in report.notes) + "</ul>")
    closing = wording.closing_note(report)
    if closing:
        body.append("<h2>Closing note: the headline sentences</h2>"
                    + "".join(f"<blockquote><p>{esc(q)}</p></blockquote>" for q in closing))
    return (f"<!DOCTYPE html>\n<html><head><meta charset='utf-8'><title>{esc(TITLE)}</title>"
            f"<style>{_CSS}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n")


def html_table(table: pd.DataFrame) -> str:
    """A table as HTML, every header and cell escaped (pandas escapes with escape=True;
    the column labels are made strings first so none is passed through as markup)."""
    shown = display(table)
    shown.columns = [str(c) for c in shown.columns]
    # wide tables (the moderators table is ~1,400 px) scroll inside their own box instead of
    # being cut off at the page width
    return ('<div class="table-scroll">'
            + shown.to_html(index=False, na_rep="", border=0, classes="table", escape=True) + "</div>")


_CSS = """
body { font-family: -apple-system, Segoe UI, Helvetica, Arial, sans-serif; max-width: 1100px; margin: 2em auto;
       padding: 0 1em; color: #222; line-height: 1.45; }
h1 { border-bottom: 2px solid #1f5fa8; padding-bottom: .2em; }
h2 { color: #1f5fa8; margin-top: 2em; border-bottom: 1px solid #ddd; }
h3 { font-size: 1em; color: #555; }
.table-scroll { overflow-x: auto; max-width: 100%; }
table.table { border-collapse: collapse; font-size: .85em; margin: .5em 0 1.5em; }
table.table th, table.table td { border: 1px solid #ccc; padding: .2em .5em; text-align: right; }
table.table th { background: #f0f4fa; }
figure { margin: 1em 0; } img { max-width: 100%; } figcaption { font-size: .8em; color: #777; }
pre { background: #f6f6f6; padding: .7em; }
"""


def shorten(table: pd.DataFrame, file_name: str, limit: int = 100, keep: int = 10) -> tuple[pd.DataFrame, str]:
    """Long tables (one row per patient) show their first and last rows in the documents;
    the CSV keeps every row."""
    if len(table) <= limit:
        return table, ""
    shown = pd.concat([table.head(keep), table.tail(keep)])
    return shown, (f"Showing the first and last {keep} of {len(table)} rows; "
                   f"all rows are in {file_name}.")


def png_base64(fig: Any) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


#: columns shown as p values ("< .001" or three decimals)
P_COLUMNS = frozenset({"p_value", "p_adjusted", "interaction_p", "p"})


def number_text(value: float) -> str:
    """A number for reading: whole numbers as such, large ones without an exponent
    (an AIC of 19904.5, not 1.99e+04), others to 4 significant digits."""
    if pd.isna(value):
        return ""
    if float(value).is_integer() and abs(value) < 1e15:
        return f"{int(value)}"
    if abs(value) >= 1000:
        return f"{value:.1f}"
    return f"{value:.4g}"


def display(table: pd.DataFrame) -> pd.DataFrame:
    """Numbers formatted for reading (CSV keeps full precision): p values as
    ``< .001`` or three decimals, other numbers by :func:`number_text`."""
    out = table.copy()
    for column in out.columns:
        if str(column) in P_COLUMNS and pd.api.types.is_float_dtype(out[column]):
            out[column] = out[column].map(lambda v: "" if pd.isna(v) else wording.p_digits(v))
        elif pd.api.types.is_float_dtype(out[column]):
            out[column] = out[column].map(number_text)
        elif out[column].dtype == object:
            out[column] = out[column].map(lambda v: number_text(v) if isinstance(v, float) else ("" if v is None else v))
    return out


def markdown_table(table: pd.DataFrame) -> str:
    shown = display(table)
    # our own writer (not tabulate): every header and cell goes through md_label
    header = [md_label(c) for c in shown.columns]
    cells = [[_cell(v) for v in row] for row in shown.itertuples(index=False)]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in cells]
    return "\n".join(lines)


def _cell(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return md_label(value)


