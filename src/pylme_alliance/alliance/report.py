"""analyze(): the whole alliance-outcome analysis (objectives a, b, c, heterogeneity and
diagnostics) in one call, returned as a :class:`Report` of tables, figures and notes."""
from __future__ import annotations

import base64
import html
import io
import math
import warnings as _warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np
import pandas as pd

from ..errors import PylmeError
from ..progress import progress_bar
from . import diagnostics, figures
from .model import AllianceModel
from .duration import check_leads, lead_rows
from .moderation import adjust, moderator_rows
from .prepare import AlliancePanel

GRID_POINTS = 41

SECTIONS = [
    ("data", "Data", ["data_summary"], []),
    ("a", "(a) Within- and between-patient alliance effects",
     ["alliance_effects", "fixed_effects", "variance_parameters", "fit_statistics"], []),
    ("b", "(b) Duration of the alliance effect", ["duration"], ["duration"]),
    ("c", "(c) Moderators of the alliance effect", ["moderators", "johnson_neyman"], []),
    ("h", "Heterogeneity: one size does not fit all", ["heterogeneity", "patient_slopes"], ["patient_slopes"]),
    ("d", "Diagnostics", ["fits", "residual_acf", "ar1_comparison"], ["residual_acf"]),
]


@dataclass(frozen=True)
class Report:
    """The alliance-outcome analysis: tables, figures and notes.

    Tables (``.tables``; a name is absent when its part was not run):

    - ``data_summary``: the panel summary (patients, sessions, drops).
    - ``alliance_effects``: within and between alliance effects of the main model
      (lead = the first requested lead), with CI and standardised estimate.
    - ``fixed_effects``: every fixed effect of the main model, with CI.
    - ``variance_parameters``: the main model's ``tidy("ran_pars")``.
    - ``fit_statistics``: the main model's ``glance()``.
    - ``duration``: the :func:`~pylme_alliance.duration` table over the leads.
    - ``moderators``: the :func:`~pylme_alliance.moderators` table (interaction rows with
      Benjamini-Hochberg ``p_adjusted``, simple-slope rows at mean +/- 1 SD or per level).
    - ``johnson_neyman``: regions of continuous moderators where the within effect is
      significant.
    - ``heterogeneity``: ``heterogeneity().summary``; ``patient_slopes``: ``.patients``.
    - ``fits``: every fit made (name, engine, lead, moderator, converged, singular, warnings).
    - ``residual_acf``: lag, acf, n_pairs of the main model's residuals paired by session
      number within patient.
    - ``ar1_comparison``: independent vs AR(1) residuals by AIC (only when ``residual="iid"``).

    Figures (``.figures``): ``duration``, ``simple_slopes_<moderator>`` (one per moderator),
    ``patient_slopes`` (caterpillar), ``residual_acf``.
    """

    tables: dict[str, pd.DataFrame]
    figures: dict[str, Any]
    notes: list[str] = field(default_factory=list)
    settings: dict[str, Any] = field(default_factory=dict)

    # ------------------------------------------------------------------ text
    def _effect(self, term: str) -> pd.Series | None:
        table = self.tables.get("alliance_effects")
        if table is None:
            return None
        rows = table[table["term"] == term]
        return rows.iloc[0] if len(rows) else None

    def significant_moderators(self, alpha: float = 0.05) -> list[str]:
        """Moderators with an interaction significant after Benjamini-Hochberg."""
        table = self.tables.get("moderators")
        if table is None or table.empty:
            return []
        inter = table[(table["kind"] == "interaction") & (table["p_adjusted"] < alpha)]
        return list(dict.fromkeys(inter["moderator"].astype(str)))

    def __str__(self) -> str:
        lines = ["Alliance-outcome report"]
        for term, label in (("alliance_within", "within-patient"), ("alliance_between", "between-patient")):
            row = self._effect(term)
            if row is not None:
                lines.append(f"  {label:16s} effect (lead {int(row['lead'])}): {row['estimate']:.3f} "
                             f"[{row['conf_low']:.3f}, {row['conf_high']:.3f}], p {_p(row['p_value'])}")
        dur = self.tables.get("duration")
        if dur is not None and len(dur):
            parts = [f"t+{int(r.lead)}: {r.estimate:.3f} [{r.conf_low:.3f}, {r.conf_high:.3f}]"
                     for r in dur[dur["term"] == "alliance_within"].itertuples()]
            lines.append("  duration (within): " + "; ".join(parts))
        mods = self.tables.get("moderators")
        if mods is not None:
            n_mod = mods["moderator"].nunique()
            sig = self.significant_moderators()
            lines.append(f"  moderators significant after BH: {len(sig)} of {n_mod}"
                         + (f" ({', '.join(sig)})" if sig else ""))
        return "\n".join(lines)

    def summary_table(self) -> pd.DataFrame:
        """Main effects and duration in one short table (what the CLI prints)."""
        parts = []
        effects = self.tables.get("alliance_effects")
        if effects is not None:
            parts.append(effects.assign(part="main")[["part", "lead", "term", "estimate", "conf_low",
                                                        "conf_high", "p_value"]])
        dur = self.tables.get("duration")
        if dur is not None:
            parts.append(dur.assign(part="duration")[["part", "lead", "term", "estimate", "conf_low",
                                                      "conf_high", "p_value"]])
        return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()

    def _lead_ins(self) -> dict[str, str]:
        text: dict[str, str] = {}
        w, b = self._effect("alliance_within"), self._effect("alliance_between")
        if w is not None:
            lead = int(w["lead"])
            direction = "lower (better)" if w["estimate"] < 0 else "higher (worse)"
            sig = "significant" if w["p_value"] < 0.05 else "not significant"
            s = (f"Outcome is a symptom score (OQ; higher = more distress), so a NEGATIVE effect means better "
                 f"alliance predicts lower (better) outcome {lead} session(s) later. In sessions where a patient's "
                 f"alliance was one point above their own usual level, the outcome {lead} session(s) later was "
                 f"{abs(w['estimate']):.2f} points {direction} (95% CI {w['conf_low']:.2f} to "
                 f"{w['conf_high']:.2f}; {sig}), controlling the current outcome.")
            if b is not None:
                bdir = "lower (better)" if b["estimate"] < 0 else "higher (worse)"
                s += (f" Patients whose average alliance was one point higher had outcomes {abs(b['estimate']):.2f} "
                      f"points {bdir} (95% CI {b['conf_low']:.2f} to {b['conf_high']:.2f}).")
            text["a"] = s
        dur = self.tables.get("duration")
        if dur is not None and len(dur):
            within = dur[dur["term"] == "alliance_within"]
            sig = [int(k) for k, p, e in zip(within["lead"], within["p_value"], within["estimate"])
                   if p < 0.05 and e < 0]
            text["b"] = ("The same model for the outcome k sessions ahead (still controlling the current outcome). "
                         + (f"The within-patient effect is beneficial and significant at lead(s) "
                            f"{', '.join(map(str, sig))}." if sig else
                            "The within-patient effect is not significantly beneficial at any lead.")
                         + " Points below the dashed zero line are beneficial effects.")
        mods = self.tables.get("moderators")
        if mods is not None:
            sig = self.significant_moderators()
            text["c"] = ("Each moderator gets its own model with its interactions with the within and between "
                         "alliance; p values are Benjamini-Hochberg adjusted over all interaction terms. "
                         "A negative interaction with alliance_within means the (beneficial, negative) effect "
                         "gets stronger as the moderator increases. "
                         + (f"Significant after adjustment: {', '.join(sig)}." if sig else
                            "No interaction is significant after adjustment."))
        het = self.tables.get("heterogeneity")
        if het is not None and len(het):
            h = het.set_index("statistic")
            sd = h.loc["random-slope SD", "estimate"] if "random-slope SD" in h.index else np.nan
            share = h.loc["share beneficial (model)", "estimate"] if "share beneficial (model)" in h.index else np.nan
            pi = het[het["statistic"].str.contains("prediction interval")]
            s = f"The within-patient effect varies between patients: random-slope SD {sd:.2f}"
            if len(pi):
                s += f", 95% prediction interval {pi['conf_low'].iloc[0]:.2f} to {pi['conf_high'].iloc[0]:.2f}"
            s += f"; the model implies that {share:.0%} of patients have a beneficial (negative) own effect."
            text["h"] = s
        text["d"] = ("Convergence and singularity of every fit, the main model's residual autocorrelation "
                     "(pairs matched by session number within patient), and a comparison with AR(1) residuals.")
        return text

    def to_markdown(self) -> str:
        """The report as Markdown (figures referenced as ``<name>.png``)."""
        lead_ins = self._lead_ins()
        out = ["# Alliance-outcome analysis", "", "```", str(self), "```", ""]
        for key, title, tables, figs in self._sections():
            out += [f"## {title}", ""]
            if key in lead_ins:
                out += [lead_ins[key], ""]
            for name in figs:
                out += [f"![{name}]({name}.png)", ""]
            for name in tables:
                shown, note = _shorten(self.tables[name], name)
                out += [f"### {name}", "", _markdown_table(shown), ""] + ([note, ""] if note else [])
        if self.notes:
            out += ["## Notes", ""] + [f"- {n}" for n in self.notes] + [""]
        return "\n".join(out)

    def _sections(self) -> list[tuple[str, str, list[str], list[str]]]:
        sections = []
        for key, title, tables, figs in SECTIONS:
            tables = [t for t in tables if t in self.tables]
            if key == "c":
                figs = [f for f in self.figures if f.startswith("simple_slopes_")]
            figs = [f for f in figs if f in self.figures]
            if tables or figs:
                sections.append((key, title, tables, figs))
        return sections

    def to_html(self) -> str:
        """A self-contained HTML page (figures embedded as base64 PNG)."""
        lead_ins = self._lead_ins()
        body = ["<h1>Alliance-outcome analysis</h1>", f"<pre>{html.escape(str(self))}</pre>"]
        for key, title, tables, figs in self._sections():
            body.append(f"<h2>{html.escape(title)}</h2>")
            if key in lead_ins:
                body.append(f"<p>{html.escape(lead_ins[key])}</p>")
            for name in figs:
                body.append(f'<figure><img alt="{name}" src="data:image/png;base64,{_png_base64(self.figures[name])}">'
                            f"<figcaption>{html.escape(name)}</figcaption></figure>")
            for name in tables:
                shown, note = _shorten(self.tables[name], name)
                body.append(f"<h3>{html.escape(name)}</h3>")
                body.append(_display(shown).to_html(index=False, na_rep="", border=0, classes="table"))
                if note:
                    body.append(f"<p><em>{html.escape(note)}</em></p>")
        if self.notes:
            body.append("<h2>Notes</h2><ul>" + "".join(f"<li>{html.escape(n)}</li>" for n in self.notes) + "</ul>")
        return ("<!DOCTYPE html>\n<html><head><meta charset='utf-8'><title>Alliance-outcome analysis</title>"
                f"<style>{_CSS}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n")

    def save(self, directory: str | Path) -> Path:
        """Write report.md, report.html, one PNG per figure and one CSV per table.

        Returns the directory's Path.
        """
        path = Path(directory)
        path.mkdir(parents=True, exist_ok=True)
        for name, fig in self.figures.items():
            fig.savefig(path / f"{name}.png", dpi=110)
        for name, table in self.tables.items():
            table.to_csv(path / f"{name}.csv", index=False)
        (path / "report.md").write_text(self.to_markdown(), encoding="utf-8")
        (path / "report.html").write_text(self.to_html(), encoding="utf-8")
        return path


_CSS = """
body { font-family: -apple-system, Segoe UI, Helvetica, Arial, sans-serif; max-width: 1100px; margin: 2em auto;
       padding: 0 1em; color: #222; line-height: 1.45; }
h1 { border-bottom: 2px solid #1f5fa8; padding-bottom: .2em; }
h2 { color: #1f5fa8; margin-top: 2em; border-bottom: 1px solid #ddd; }
h3 { font-size: 1em; color: #555; }
table.table { border-collapse: collapse; font-size: .85em; margin: .5em 0 1.5em; }
table.table th, table.table td { border: 1px solid #ccc; padding: .2em .5em; text-align: right; }
table.table th { background: #f0f4fa; }
figure { margin: 1em 0; } img { max-width: 100%; } figcaption { font-size: .8em; color: #777; }
pre { background: #f6f6f6; padding: .7em; }
"""


def _shorten(table: pd.DataFrame, name: str, limit: int = 100, keep: int = 10) -> tuple[pd.DataFrame, str]:
    """Long tables (one row per patient) show their first and last rows in the documents;
    the CSV keeps every row."""
    if len(table) <= limit:
        return table, ""
    shown = pd.concat([table.head(keep), table.tail(keep)])
    return shown, (f"Showing the first and last {keep} of {len(table)} rows; "
                   f"all rows are in {name}.csv.")


def _p(value: float) -> str:
    return "< .001" if value < 0.001 else f"= {value:.3f}"


def _png_base64(fig: Any) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _display(table: pd.DataFrame) -> pd.DataFrame:
    """Round floats to 4 significant digits for display (CSV keeps full precision)."""
    out = table.copy()
    for column in out.columns:
        if pd.api.types.is_float_dtype(out[column]):
            out[column] = out[column].map(lambda v: "" if pd.isna(v) else f"{v:.4g}")
        elif out[column].dtype == object:
            out[column] = out[column].map(lambda v: f"{v:.4g}" if isinstance(v, float) else ("" if v is None else v))
    return out


def _markdown_table(table: pd.DataFrame) -> str:
    shown = _display(table)
    try:
        import tabulate  # noqa: F401
    except ImportError:
        pass
    else:
        return shown.to_markdown(index=False)
    header = [str(c) for c in shown.columns]
    cells = [[_cell(v) for v in row] for row in shown.itertuples(index=False)]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in cells]
    return "\n".join(lines)


def _cell(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return str(value).replace("|", "\\|").replace("\n", " ")


# ---------------------------------------------------------------------------------- analyze

def _choose_therapist(panel: AlliancePanel, therapist: str | None) -> tuple[str, str | None]:
    if therapist is not None:
        return therapist, None
    if panel.roles.get("therapist") is None:
        return "none", "No therapist column: the models have no therapist term (therapist='none')."
    multi = len(panel.multi_therapist_patients)
    if multi:
        return "crossed", (f"{multi} patient(s) saw more than one therapist, so therapists are crossed with "
                           "patients (therapist='crossed').")
    return "nested", "Every patient saw one therapist: patients nested in therapists (therapist='nested')."


def _main_lead(leads: tuple[int, ...]) -> int:
    return 1 if 1 in leads else leads[0]


def _fit(model: AllianceModel, panel: AlliancePanel) -> Any:
    # R's warnings are kept on the fit (fit.warnings) and reported in the fits table;
    # do not also print them while the report is built.
    with _warnings.catch_warnings():
        _warnings.simplefilter("ignore")
        return model.fit(panel)


def _quiet(func: Callable[[], Any]) -> Any:
    with _warnings.catch_warnings():
        _warnings.simplefilter("ignore")
        return func()


def _moderator_grid(panel: AlliancePanel, info: Any) -> tuple[np.ndarray, np.ndarray]:
    """Observed patient-level values (original scale) and an even grid over their range."""
    data = panel.data
    values = data[info.column].astype(float) + float(info.mean)
    per_patient = values.groupby(data[panel.roles["patient"]], observed=True).first().to_numpy(dtype=float)
    per_patient = per_patient[np.isfinite(per_patient)]
    low, high = float(per_patient.min()), float(per_patient.max())
    if high <= low:
        high = low + 1.0
    return per_patient, np.linspace(low, high, GRID_POINTS)


def analyze(panel: AlliancePanel, *, leads: Iterable[int] = (1, 2, 3), moderators: Iterable[Any] = (),
            engine: str = "lme4", residual: str = "iid", therapist: str | None = None,
            progress: bool = True) -> Report:
    """Run the alliance-outcome analysis and return a :class:`Report`.

    Parameters
    ----------
    panel : AlliancePanel
        From :func:`pylme_alliance.prepare`, with ``leads`` covering ``leads`` and
        ``moderators`` covering ``moderators``.
    leads : iterable of int
        Leads for the duration analysis; the main model uses lead 1 (or the first lead).
    moderators : iterable of str
        Moderators to test, one model each.
    engine, residual : str
        As in :class:`AllianceModel`.
    therapist : {"nested", "crossed", "none"}, optional
        Default: "none" without a therapist column, "crossed" when some patient saw
        several therapists, else "nested". An engine that cannot express the choice
        raises :class:`~pylme_alliance.EngineCannotExpress`.
    progress : bool
        A progress bar over the fits (stderr).
    """
    if not isinstance(panel, AlliancePanel):
        raise PylmeError("analyze() takes the AlliancePanel made by prepare()")
    leads = check_leads(panel, leads, "analyze()")
    moderators = [m for m in ([moderators] if isinstance(moderators, str) else list(moderators))]
    unknown = [m for m in moderators if m not in panel.moderators]
    if unknown:
        raise PylmeError(f"{unknown} were not prepared as moderators; call prepare(..., moderators={moderators!r})")

    notes = list(panel.notes)
    therapist, why = _choose_therapist(panel, therapist)
    if why:
        notes.append(why)
    main_lead = _main_lead(leads)
    main_model = AllianceModel(lead=main_lead, therapist=therapist, residual=residual, engine=engine)
    notes.append(f"Main model: lead {main_lead}, engine {main_model.engine}, residual {residual}, "
                 f"therapist {therapist}, random within-patient slope.")

    tables: dict[str, pd.DataFrame] = {"data_summary": panel.summary().reset_index()}
    figs: dict[str, Any] = {}
    fits: dict[str, Any] = {}
    state: dict[str, Any] = {}

    def main() -> None:
        fit = _fit(main_model, panel)
        fits[f"main (lead {main_lead})"] = fit
        state["main"] = fit
        tables["alliance_effects"] = fit.alliance_effects()
        tables["fixed_effects"] = fit.tidy("fixed", conf_int=True)
        tables["variance_parameters"] = fit.tidy("ran_pars")
        tables["fit_statistics"] = fit.glance()

    def lead_fit(k: int) -> Callable[[], None]:
        def run() -> None:
            fit = state["main"] if k == main_lead else _fit(main_model.replace(lead=k), panel)
            if k != main_lead:
                fits[f"duration (lead {k})"] = fit
            state.setdefault("durations", []).append(lead_rows(fit))
        return run

    def moderator_fit(name: Any) -> Callable[[], None]:
        def run() -> None:
            try:
                fit = _fit(main_model.replace(moderators=(name,)), panel)
            except PylmeError as exc:
                notes.append(f"Moderator {name}: the model failed ({' '.join(str(exc).split())}).")
                return
            fits[f"moderator {name}"] = fit
            state.setdefault("moderators", []).append(_quiet(lambda: moderator_rows(fit, name)))
            info = panel.moderators[name]
            if info.kind == "numeric":
                observed, grid = _moderator_grid(panel, info)
                slopes = _quiet(lambda: fit.simple_slopes(name, at=grid))
                jn = None
                try:
                    jn = _quiet(lambda: fit.johnson_neyman(name))
                    state.setdefault("jn", []).append(jn)
                except PylmeError as exc:
                    notes.append(f"Johnson-Neyman for {name} not available: {exc}")
                figs[f"simple_slopes_{name}"] = figures.simple_slopes_plot(slopes, str(name), "numeric",
                                                                           observed=observed, jn=jn)
            else:
                slopes = _quiet(lambda: fit.simple_slopes(name))
                figs[f"simple_slopes_{name}"] = figures.simple_slopes_plot(slopes, str(name), "categorical")
        return run

    def heterogeneity() -> None:
        try:
            het = _quiet(lambda: state["main"].heterogeneity())
        except PylmeError as exc:
            notes.append(f"Heterogeneity not available: {exc}")
            return
        tables["heterogeneity"] = het.summary
        tables["patient_slopes"] = het.patients
        if len(het.patients):
            figs["patient_slopes"] = figures.caterpillar_plot(het.patients, het.summary)

    def autocorrelation() -> None:
        acf = diagnostics.residual_acf(state["main"].augment())
        tables["residual_acf"] = acf
        figs["residual_acf"] = figures.acf_plot(acf)

    def ar1_check() -> None:
        table, ar_notes, ar_fits = _quiet(lambda: diagnostics.ar1_alternative(panel, main_model))
        tables["ar1_comparison"] = table
        notes.extend(ar_notes)
        fits.update(ar_fits)

    steps: list[tuple[str, Callable[[], None]]] = [("main model", main)]
    steps += [(f"lead {k}", lead_fit(k)) for k in leads]
    steps += [(f"moderator {m}", moderator_fit(m)) for m in moderators]
    steps += [("heterogeneity", heterogeneity), ("autocorrelation", autocorrelation)]
    if residual == "iid":
        steps.append(("AR(1) check", ar1_check))
    else:
        notes.append(f"The main model already has {residual} residuals; no AR(1) comparison was run.")

    for _label, step in progress_bar(steps, enabled=progress, desc="analyze", total=len(steps)):
        step()

    duration_table = pd.concat(state["durations"], ignore_index=True)
    duration_table = duration_table.sort_values(["lead"], kind="stable").reset_index(drop=True)
    tables["duration"] = duration_table
    figs["duration"] = figures.duration_plot(duration_table)
    if state.get("moderators"):
        tables["moderators"] = adjust(pd.concat(state["moderators"], ignore_index=True))
    if state.get("jn"):
        tables["johnson_neyman"] = pd.concat(state["jn"], ignore_index=True)
    tables["fits"] = diagnostics.fit_flags(fits)

    flagged = tables["fits"][(~tables["fits"]["converged"]) | tables["fits"]["singular"]]
    for row in flagged.itertuples():
        notes.append(f"Fit '{row.model}': " + ", ".join(
            x for x, bad in (("did not converge", not row.converged), ("singular", row.singular)) if bad) + ".")
    main_warnings = state["main"].warnings
    for w in dict.fromkeys(" ".join(str(x).split()) for x in main_warnings or ()):
        notes.append(f"Main model warning from {state['main'].engine}: {w}")

    # order the tables as the report reads
    order = [t for _, _, names, _ in SECTIONS for t in names]
    tables = {k: tables[k] for k in order if k in tables}
    settings = {"leads": leads, "main_lead": main_lead, "moderators": [str(m) for m in moderators],
                "engine": main_model.engine, "residual": residual, "therapist": therapist}
    return Report(tables=tables, figures=figs, notes=notes, settings=settings)
