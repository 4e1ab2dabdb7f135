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

from . import layout, wording

TITLE = "Alliance-outcome analysis"
heading = layout.heading  # the one mapping of keys to words (tests and callers import it from here)


def md_text(text: object) -> str:
    """User-derived text for Markdown running text: one line, no raw HTML, no link,
    image or code span. A ``<`` that could open a tag and an ``&`` that could open an
    entity become entities; ``\\``, ``[``, ``]``, `````` ` `````` and ``*`` are
    backslash-escaped, so ``[click](javascript:...)`` and ``![t](http://...)`` stay
    text. "p < .001" and "->" stay readable."""
    line = " ".join(str(text).split())
    line = re.sub(r"&(?=#?[A-Za-z0-9]+;)", "&amp;", line)
    line = re.sub(r"<(?=[A-Za-z/!?])", "&lt;", line)
    return re.sub(r"([\\\[\]`*])", r"\\\1", line)


def md_label(text: object) -> str:
    """Text inside Markdown link/image brackets or a table cell (``|`` escaped too)."""
    return md_text(text).replace("|", "\\|")


# ------------------------------------------------------------------ Markdown

def to_markdown(report: Any) -> str:
    """The report as Markdown (figures referenced by their file names)."""
    stems = report.file_stems()
    out = [f"# {TITLE}", ""]
    for section in layout.sections(report):
        out += [f"## {md_text(section.title)}", ""]
        for block in section.blocks:
            out += _md_block(report, block, stems)
    return "\n".join(out)


def _md_block(report: Any, block: layout.Block, stems: dict[str, dict[Any, str]]) -> list[str]:
    if block.kind == "p":
        return [md_text(block.text), ""]
    if block.kind == "ul":
        head = [f"**{md_text(block.text)}**", ""] if block.text else []
        return head + [f"- {md_text(item)}" for item in block.items] + [""]
    if block.kind == "quote":
        return [line for q in block.items for line in (f"> {md_text(q)}", ">")] + [""]
    if block.kind == "dl":
        return ([f"### {md_text(block.text)}", ""]
                + [f"- **{md_text(term)}**: {md_text(words)}" for term, words in block.items] + [""])
    if block.kind == "figs":
        out = []
        for name, caption in block.items:
            out += [f"![{md_label(caption)}]({stems['figures'][name]}.png)", "", f"*{md_text(caption)}*", ""]
        return out
    shown, note = shorten(block.shown.table, _csv_name(stems, block.name))
    out = [f"### {md_label(block.text)}", "", markdown_table(shown), ""]
    out += [md_text(f) + "  " for f in block.footnotes] + ([""] if block.footnotes else [])
    return out + ([md_text(note), ""] if note else [])


def _csv_name(stems: dict[str, dict[Any, str]], name: str) -> str:
    stem = stems["tables"].get(name)
    return f"{stem}.csv" if stem else "the CSV files"


# ------------------------------------------------------------------ HTML

def to_html(report: Any, *, notebook: bool = False) -> str:
    """A self-contained, responsive HTML page (figures embedded as base64 PNG), every
    user-derived string escaped. ``notebook=True``: the summary open and every other
    section folded in a ``<details>`` (for :meth:`Report._repr_html_`), no page head."""
    esc = html.escape  # quote=True: safe in attributes and text alike
    stems = report.file_stems()
    body = [f"<h1>{esc(TITLE)}</h1>"]
    for section in layout.sections(report):
        inner = "\n".join(_html_block(report, block, stems) for block in section.blocks)
        if notebook and section.group != "summary":
            body.append(f"<details><summary>{esc(section.title)}</summary>\n{inner}\n</details>")
        else:
            body.append(f"<h2>{esc(section.title)}</h2>\n{inner}")
    if notebook:
        return f'<div class="pylme-report"><style>{_CSS}</style>\n' + "\n".join(body) + "\n</div>"
    return ("<!DOCTYPE html>\n<html><head><meta charset='utf-8'>"
            "<meta name='viewport' content='width=device-width, initial-scale=1'>"
            f"<title>{esc(TITLE)}</title><style>{_CSS}</style></head><body>\n" + "\n".join(body)
            + "\n</body></html>\n")


def _html_block(report: Any, block: layout.Block, stems: dict[str, dict[Any, str]]) -> str:
    esc = html.escape
    if block.kind == "p":
        return f"<p>{esc(block.text)}</p>"
    if block.kind == "ul":
        head = f"<h3>{esc(block.text)}</h3>" if block.text else ""
        return head + "<ul>" + "".join(f"<li>{esc(str(i))}</li>" for i in block.items) + "</ul>"
    if block.kind == "quote":
        return "".join(f"<blockquote><p>{esc(q)}</p></blockquote>" for q in block.items)
    if block.kind == "dl":
        return (f"<h3>{esc(block.text)}</h3><dl>"
                + "".join(f"<dt>{esc(str(t))}</dt><dd>{esc(str(w))}</dd>" for t, w in block.items) + "</dl>")
    if block.kind == "figs":
        return f'<div class="figs n{min(len(block.items), 3)}">' + "".join(
            f'<figure{_wide(report.figures[name], len(block.items))}><img alt="{esc(heading(name))}" '
            f'data-file="{esc(stems["figures"][name])}.png" '
            f'src="data:image/png;base64,{png_base64(report.figures[name])}">'
            f"<figcaption>{esc(caption)}</figcaption></figure>" for name, caption in block.items) + "</div>"
    shown, note = shorten(block.shown.table, _csv_name(stems, block.name))
    parts = [f"<h3>{esc(block.text)}</h3>", html_table(shown)]
    parts += [f'<p class="foot">{esc(f)}</p>' for f in block.footnotes]
    if note:
        parts.append(f'<p class="foot"><em>{esc(note)}</em></p>')
    return "".join(parts)


def _wide(fig: Any, count: int) -> str:
    """A figure alone in its row that is wide (the patients' caterpillar) spans the grid;
    others share a row two by two on a wide screen."""
    if isinstance(fig, (bytes, bytearray)):  # a loaded report's PNG (saved at 110 dpi): width from its header
        inches = int.from_bytes(bytes(fig[16:20]), "big") / 110 if len(fig) > 24 else 0.0
    else:
        size = getattr(fig, "get_size_inches", None)
        inches = float(size()[0]) if size is not None else 0.0
    return ' class="wide"' if count == 1 and inches > 8.5 else ""


def html_table(table: pd.DataFrame) -> str:
    """A table as HTML, every header and cell escaped (pandas escapes with escape=True;
    the column labels are made strings first so none is passed through as markup)."""
    shown = display(table)
    shown.columns = [str(c) for c in shown.columns]
    # wide tables scroll inside their own box instead of being cut off at the page width
    return ('<div class="table-scroll">'
            + shown.to_html(index=False, na_rep="", border=0, classes="table", escape=True) + "</div>")


_CSS = """
body, .pylme-report { font-family: -apple-system, Segoe UI, Helvetica, Arial, sans-serif; color: #222;
       line-height: 1.3; font-size: 14.5px; }
body { max-width: 1240px; margin: 1.2em auto; padding: 0 1em; }
h1 { border-bottom: 2px solid #1f5fa8; padding-bottom: .2em; font-size: 1.6em; }
h2 { color: #1f5fa8; margin: 1.1em 0 .3em; border-bottom: 1px solid #ddd; font-size: 1.3em; }
h3 { font-size: .95em; color: #555; margin: .7em 0 .2em; }
p { margin: .45em 0; }
p, li, dd, figcaption { overflow-wrap: anywhere; }  /* table cells break at spaces only: a wide table scrolls */
ul { padding-left: 1.3em; margin: .4em 0; } li { margin: .25em 0; }
.table-scroll { overflow-x: auto; max-width: 100%; }
table.table { border-collapse: collapse; font-size: .8em; margin: .3em 0 .2em; }
table.table th, table.table td { border: 1px solid #ccc; padding: .15em .45em; text-align: left;
       vertical-align: top; }
table.table th { background: #f0f4fa; }
p.foot { font-size: .78em; color: #555; margin: .1em 0 .6em; }
.figs { display: grid; grid-template-columns: repeat(auto-fill, minmax(min(100%, 370px), 1fr)); gap: .6em; }
.figs.n2 { grid-template-columns: repeat(auto-fill, minmax(min(100%, 520px), 1fr)); }
figure.wide { grid-column: 1 / -1; }
figure { margin: .4em 0; } img { max-width: 100%; height: auto; } figcaption { font-size: .8em; color: #555; }
dl { columns: 3 300px; column-gap: 1.6em; font-size: .8em; line-height: 1.3; margin: .2em 0; }
dt { font-weight: 600; break-after: avoid; } dd { margin: 0 0 .35em .8em; break-inside: avoid; }
blockquote { margin: .4em 0; padding-left: .8em; border-left: 3px solid #ddd; color: #444; font-size: .9em; }
pre { background: #f6f6f6; padding: .7em; white-space: pre-wrap; overflow-wrap: anywhere; }
details { margin: .4em 0; } summary { cursor: pointer; color: #1f5fa8; font-weight: 600; }
"""


def shorten(table: pd.DataFrame, file_name: str, limit: int = 100, keep: int = 5) -> tuple[pd.DataFrame, str]:
    """Long tables (one row per patient) show their first and last rows in the documents;
    the CSV keeps every row."""
    if len(table) <= limit:
        return table, ""
    shown = pd.concat([table.head(keep), table.tail(keep)])
    return shown, (f"Showing the first and last {keep} of {len(table)} rows; "
                   f"all rows are in {file_name}.")


def png_bytes(fig: Any, dpi: int = 100) -> bytes:
    """A figure as PNG; ``bbox_inches="tight"`` keeps every label inside the image."""
    if isinstance(fig, (bytes, bytearray)):  # a figure kept as its PNG (a loaded report)
        return bytes(fig)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight", pad_inches=0.08)
    return buffer.getvalue()


def png_base64(fig: Any) -> str:
    return base64.b64encode(png_bytes(fig)).decode("ascii")


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


