"""Where the API surprised users (issue 11): nothing of theirs overwritten, numbers in
numeric columns."""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import pylme_alliance as pa
from pylme_alliance.errors import PylmeError
from pylme_alliance.report.render import display


def test_augment_refuses_to_overwrite_a_users_fitted_column():
    import pylme_alliance as pa

    rng = np.random.default_rng(3)
    g = np.repeat(np.arange(12), 5)
    frame = pd.DataFrame({"y": rng.normal(size=60) + rng.normal(size=12)[g], "x": rng.normal(size=60),
                          "g": g, "fitted": np.arange(60.0)})
    fit = pa.lmer("y ~ x + (1 | g)", frame)
    with pytest.raises(PylmeError, match="fitted"):
        fit.augment()
    assert frame["fitted"].tolist() == list(np.arange(60.0))
    assert "fitted" in pa.lmer("y ~ x + (1 | g)", frame.drop(columns="fitted")).augment()


def test_panel_summary_and_moderator_table_are_numeric():
    trial = pa.load_example()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        panel = pa.prepare(trial, patient="patient", session="session", alliance="alliance",
                           outcome="outcome", leads=(1,), moderators=["severity", "arm"])
        table = pa.moderators(panel, ["severity", "arm"], therapist="none")
    summary = panel.summary()
    assert pd.api.types.is_float_dtype(summary["value"])
    assert summary.loc["patients", "value"] == panel.data["patient"].nunique()
    assert np.isnan(summary.loc["therapists", "value"])  # no therapist given
    assert pd.api.types.is_float_dtype(table["at"])
    numeric = table[(table["moderator"] == "severity") & (table["kind"] == "simple_slope")]
    assert numeric["at"].notna().all()
    levels = table[(table["moderator"] == "arm") & (table["kind"] == "simple_slope")]
    assert levels["at"].isna().all() and levels["label"].notna().all()


def test_numbers_for_reading():
    shown = display(pd.DataFrame({"AIC": [19904.4662, 12.0], "p_value": [5e-6, 0.04321],
                                  "estimate": [-2.43123, 0.000012]}))
    assert list(shown["AIC"]) == ["19904.5", "12"]
    assert list(shown["p_value"]) == ["< .001", "0.043"]
    assert list(shown["estimate"]) == ["-2.431", "1.2e-05"]


def test_cli_errors_speak_cli(tmp_path, capsys):
    from pylme_alliance.cli import main

    path = tmp_path / "trial.csv"
    pa.simulate(n_patients=40, seed=1).data.to_csv(path, index=False)
    code = main(["analyze", str(path), "--patient", "patient", "--session", "session", "--alliance", "alliance",
                 "--outcome", "outcome", "--therapist", "therapist", "--residual", "ar1", "--out", str(tmp_path / "r")])
    err = capsys.readouterr().err
    assert code == 1
    assert "--residual ar1" in err and "--engine nlme" in err
    assert "residual=" not in err and "engine=" not in err


def test_tidy_group_is_a_string_column():
    rng = np.random.default_rng(4)
    g = np.repeat(np.arange(10), 6)
    frame = pd.DataFrame({"y": rng.normal(size=60) + rng.normal(size=10)[g], "x": rng.normal(size=60), "g": g})
    fit = pa.lmer("y ~ x + (1 | g)", frame)
    table = fit.tidy(["fixed", "ran_pars"])
    assert pd.api.types.is_string_dtype(table["group"])
    assert table.loc[table["effect"] == "fixed", "group"].isna().all()
    assert pd.api.types.is_float_dtype(fit.tidy()["df"])


def test_glance_and_compare_name_the_parameter_count_alike():
    """glance()'s parameter count is npar, as in compare(); "df" is left to tests' degrees
    of freedom (tidy, compare's chi-square df)."""
    rng = np.random.default_rng(5)
    g = np.repeat(np.arange(12), 5)
    frame = pd.DataFrame({"y": rng.normal(size=60) + rng.normal(size=12)[g], "x": rng.normal(size=60), "g": g})
    small = pa.lmer("y ~ 1 + (1 | g)", frame, reml=False)
    big = pa.lmer("y ~ x + (1 | g)", frame, reml=False)
    glance = big.glance()
    assert "npar" in glance and "df" not in glance
    table = pa.compare(small, big)
    assert table["npar"].tolist() == [small.glance()["npar"].iloc[0], glance["npar"].iloc[0]]


def test_warnings_point_at_the_users_line():
    """R's warnings and the model's own point at the caller's line, not into the package,
    however deep they are raised (engine call, AllianceModel.fit, its auto-resolution)."""
    from pathlib import Path

    frame = pd.read_csv(Path(__file__).parent / "golden" / "data" / "singular.csv")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        pa.lmer("y ~ x + (1 | group)", frame)  # R: "boundary (singular) fit" (golden singular_fit)
    r_warnings = [w for w in caught if issubclass(w.category, pa.RWarning)]
    assert r_warnings and all(w.filename == __file__ for w in r_warnings), [w.filename for w in caught]
    short = pa.simulate(n_patients=30, n_therapists=6, sessions=3, max_sessions=3, within_effect=(-2.0, -1.0),
                        seed=2).data
    panel = pa.prepare(short, patient="patient", session="session", alliance="alliance", outcome="outcome",
                       therapist="therapist")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        pa.AllianceModel(random_slope=False).fit(panel)
    assert caught and all(w.filename == __file__ for w in caught), [(w.category, w.filename) for w in caught]
