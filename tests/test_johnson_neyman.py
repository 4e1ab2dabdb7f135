"""Johnson-Neyman regions, readable (issue 9, item 8): each region has the sign of the
effect there, regions are split at the observed moderator range (extrapolated parts
marked), boundaries use simple_slopes()' df, and the figure shades nothing when the
interaction does not survive the multiplicity correction; figures use the user's outcome
words (item 4)."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
from matplotlib.patches import Polygon, Rectangle
from matplotlib.text import Text

import pylme_alliance as pa
from pylme_alliance.models.heterogeneity import heterogeneity
from pylme_alliance.report import figures


def quiet(func, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return func(*args, **kwargs)


@pytest.fixture(scope="module")
def data():
    # the within effect is -2 at average severity and changes by 0.12 per point: it is
    # negative for mild and positive for the most severe patients
    return pa.simulate(n_patients=300, n_therapists=30, sessions=10, missed=0, dropout=0,
                       moderation={"severity": 0.12}, seed=8).data


def _panel(data, **kwargs):
    return quiet(pa.prepare, data, patient="patient", session="session", alliance="alliance",
                 outcome="outcome", therapist="therapist", leads=(1,), moderators=["severity"], **kwargs)


@pytest.fixture(scope="module")
def fit(data):
    return quiet(pa.AllianceModel(moderators=("severity",)).fit, _panel(data, outcome_better="lower"))


@pytest.fixture(scope="module")
def jn(fit):
    return quiet(fit.johnson_neyman, "severity")


def test_regions_have_signs_and_cover_the_line(fit, jn):
    assert jn["from"].iloc[0] == -np.inf and jn["to"].iloc[-1] == np.inf
    np.testing.assert_array_equal(jn["from"].to_numpy()[1:], jn["to"].to_numpy()[:-1])  # contiguous
    observed = jn[~jn["extrapolated"]]
    assert set(observed["sign"][observed["significant"]]) == {"negative", "positive"}
    for _, row in jn.iterrows():
        finite = [v for v in (row["from"], row["to"]) if np.isfinite(v)]
        mid = np.mean(finite) if len(finite) == 2 else (finite[0] - 1 if row["from"] == -np.inf else finite[0] + 1)
        slope = quiet(fit.simple_slopes, "severity", at=[mid]).query("term == 'alliance_within'").iloc[0]
        assert row.significant == (slope["p_value"] < 0.05)
        if row.significant:
            assert row.sign == ("negative" if slope["estimate"] < 0 else "positive")
            assert row.effect == f"significantly {row.sign}"
        elif row.sign != "changes sign":
            assert row.sign == ("negative" if slope["estimate"] < 0 else "positive")


def test_regions_are_split_at_the_observed_range(fit, jn):
    lo, hi = jn["observed_min"].iloc[0], jn["observed_max"].iloc[0]
    values = fit.panel.data["severity"]
    assert (lo, hi) == (values.min(), values.max())
    inside = jn[~jn["extrapolated"]]
    assert inside["from"].min() == lo and inside["to"].max() == hi
    outside = jn[jn["extrapolated"]]
    assert ((outside["to"] <= lo) | (outside["from"] >= hi)).all()
    assert len(outside) == 2  # below and above the observed range


def test_boundaries_use_the_df_of_simple_slopes(fit, jn):
    # at each boundary the simple slope (Satterthwaite df for lme4) has p = alpha exactly;
    # with the interaction's df (the old rule) it does not
    bounds = [v for v in jn["to"] if np.isfinite(v) and v not in (jn["observed_min"].iloc[0],
                                                                   jn["observed_max"].iloc[0])]
    assert len(bounds) == 2
    slopes = quiet(fit.simple_slopes, "severity", at=bounds).query("term == 'alliance_within'")
    np.testing.assert_allclose(slopes["p_value"], 0.05, rtol=1e-6)
    assert "Satterthwaite" in jn["df_method"].iloc[0]


def test_nlme_boundaries_match_its_simple_slopes(data):
    fit = quiet(pa.AllianceModel(engine="nlme", moderators=("severity",)).fit, _panel(data))
    jn = quiet(fit.johnson_neyman, "severity")
    bounds = [v for v in jn["to"] if np.isfinite(v) and v not in (jn["observed_min"].iloc[0],
                                                                   jn["observed_max"].iloc[0])]
    slopes = fit.simple_slopes("severity", at=bounds).query("term == 'alliance_within'")
    np.testing.assert_allclose(slopes["p_value"], 0.05, rtol=1e-6)


def test_reversed_outcome_flips_the_regions(data, jn):
    flipped = data.assign(outcome=180 - data["outcome"])
    fit = quiet(pa.AllianceModel(moderators=("severity",)).fit, _panel(flipped, outcome_better="higher"))
    other = quiet(fit.johnson_neyman, "severity")
    assert len(other) == len(jn)
    np.testing.assert_allclose(other["to"].to_numpy()[:-1], jn["to"].to_numpy()[:-1], rtol=1e-4)
    flip = {"negative": "positive", "positive": "negative", "changes sign": "changes sign"}
    assert list(other["sign"]) == [flip[s] for s in jn["sign"]]
    assert list(other["significant"]) == list(jn["significant"])


# ------------------------------------------------------------------ figure
def _shaded(fig):
    ax = fig.axes[0]
    return [p for p in ax.patches if isinstance(p, (Polygon, Rectangle)) and p.get_zorder() == 0]


def _texts(fig):
    # the words, whatever line breaks the layout puts in them (long remarks are wrapped)
    return " ".join(" ".join(t.get_text().split()) for t in fig.findobj(Text))


def _grid(fit):
    info = fit.panel.moderators["severity"]
    values = fit.panel.data[info.column].astype(float) + info.mean
    return np.linspace(values.min(), values.max(), 25)


def test_figure_shades_nothing_when_not_significant_after_correction(fit, jn):
    slopes = quiet(fit.simple_slopes, "severity", at=_grid(fit))
    shown = figures.simple_slopes_plot(slopes, "severity", "numeric", jn=jn, adjusted_p=0.001)
    assert len(_shaded(shown)) == (jn["significant"] & ~jn["extrapolated"]).sum() == 2
    text = _texts(shown)
    assert "significantly negative (beneficial)" not in text  # no direction given to the figure
    assert "significantly negative" in text and "significantly positive" in text
    hidden = figures.simple_slopes_plot(slopes, "severity", "numeric", jn=jn, adjusted_p=0.2)
    assert _shaded(hidden) == []
    assert "not significant after the multiplicity correction" in _texts(hidden)
    assert "adjusted p = 0.2" in _texts(hidden)
    assert _shaded(figures.simple_slopes_plot(slopes, "severity", "numeric", jn=jn, significant=False)) == []
    unadjusted = figures.simple_slopes_plot(slopes, "severity", "numeric", jn=jn)
    assert "not corrected for multiplicity" in _texts(unadjusted)


def test_figures_use_the_users_outcome_words(fit, jn):
    slopes = quiet(fit.simple_slopes, "severity", at=_grid(fit))
    het = quiet(fit.heterogeneity, interval=False, test=False)  # the panel says lower is better
    plain = quiet(heterogeneity, fit, interval=False, test=False, outcome_better=None)
    rows = fit.alliance_effects()
    neutral = [figures.simple_slopes_plot(slopes, "severity", "numeric", jn=jn, adjusted_p=0.001),
               figures.caterpillar_plot(plain.patients, plain.summary),
               figures.duration_plot(rows)]
    for fig in neutral:
        text = _texts(fig)
        for word in ("OQ-45", "distress", "beneficial", "harmful"):
            assert word not in text
        assert "outcome points per alliance point" in text
    named = [figures.simple_slopes_plot(slopes, "severity", "numeric", jn=jn, adjusted_p=0.001,
                                        outcome_label="CORE $10$", outcome_better="lower"),
             figures.caterpillar_plot(het.patients, het.summary, outcome_label="CORE $10$", outcome_better="lower"),
             figures.duration_plot(rows, outcome_label="CORE $10$", outcome_better="lower")]
    for fig in named:
        text = _texts(fig)
        assert r"CORE \$10\$ points per alliance point" in text  # $ kept out of mathtext
        assert "lower (better)" in text
        fig.savefig(__import__("io").BytesIO(), format="png")  # draws without a mathtext error
    assert "significantly negative (beneficial)" in _texts(named[0])
    assert "clearly beneficial (interval)" in _texts(named[1]) or "uncertain (interval)" in _texts(named[1])
