"""power()'s fast path builds the same model frames as the general path.

power() makes a model frame for every replicate, so the Python work per replicate was cut
(issue 12): ``outcome_before`` matches rows by packed integer keys instead of a pandas
merge, ``AllianceModel._prior_rows`` / ``_mean_session_varies`` count and average with
``numpy.bincount`` instead of groupby, and the batch decides ``prior_outcome="auto"``
once per replicate. These tests hold the new code to the old one: the reference
implementations below are the code before that change, and every frame and formula
must be equal to the last bit.
"""
from __future__ import annotations

import itertools
import warnings

import numpy as np
import pandas as pd
import pytest

import pylme_alliance as pa
from pylme_alliance.models import frame as frame_module
from pylme_alliance.models.frame import _outcome_before_merge, outcome_before
from pylme_alliance.models.model import AllianceModel
from pylme_alliance.simulation import _power_fit


# ----------------------------------------------------------------------- the references
def _prior_rows_reference(self, panel):
    if self.control_outcome is False or self.lead == 0:
        return float("inf")
    kept = self.replace(prior_outcome=True)._kept_rows(panel)
    patient = panel.data[panel.roles["patient"]].to_numpy()
    counts = pd.Series(kept).groupby(patient).sum()
    return float(counts.median()) if len(counts) else 0.0


def _mean_session_varies_reference(self, panel):
    data, roles = panel.data, panel.roles
    session = data[roles["session"]].to_numpy(dtype=float)
    kept = self._kept_rows(panel)
    means = pd.Series(session[kept]).groupby(data[roles["patient"]].to_numpy()[kept]).mean()
    return bool(len(means) > 1 and means.max() - means.min() > 1e-9 * max(1.0, abs(means.mean())))


@pytest.fixture
def reference(monkeypatch):
    """Switch the model and frame code to the general (pre-issue-12) implementations."""

    def switch():
        # (the outcome before is prepare()'s column now; the lookup serves older panels)
        monkeypatch.setattr(frame_module, "outcome_before", _outcome_before_merge)
        monkeypatch.setattr(AllianceModel, "_prior_rows", _prior_rows_reference)
        monkeypatch.setattr(AllianceModel, "_mean_session_varies", _mean_session_varies_reference)

    return switch


# ----------------------------------------------------------------------- panels, models
def _panels():
    """simulate() trials with dropout and missed sessions, long and short series."""
    out = []
    for seed, extra in [(1, {}), (2, {"sessions_median": 3}), (3, {"missed": 0.3, "dropout": 0.5}),
                        (4, {"feedback": -0.01, "alliance_ar": 0.3})]:
        sim = pa.simulate(n_patients=48, n_therapists=8, seed=seed, **extra)
        out.append(pa.prepare(sim.data, patient="patient", session="session", alliance="alliance",
                              outcome="outcome", therapist="therapist", time="day", leads=(1, 2),
                              moderators=("severity", "arm"), outcome_better="lower"))
    return out


PANELS = _panels()
MODELS = [AllianceModel(prior_outcome=prior, control_outcome=control, lead=lead, effect=effect)
          for prior, control, lead, effect in itertools.product(
              ("auto", True, False), ("decomposed", "raw", False), (1, 2), ("total", "direct"))]
MODELS += [AllianceModel(moderators=("severity",)), AllianceModel(moderators=("arm",), therapist="crossed"),
           AllianceModel(random_slope=False, session_trend=False)]


def _general(model, panel):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return model.spec(panel), model.model_frame(panel), model.resolve(panel)


def _fast(model, panel):
    """What power()'s batch does (_power_fit._batch)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        resolved = model.resolve(panel)
        spec = resolved.spec(panel)
        return spec, _power_fit._frame(resolved, spec, panel), resolved


def test_short_series_panel_resolves_auto_both_ways():
    # the panels cover prior_outcome="auto" deciding True and deciding False
    decided = {AllianceModel().resolve(panel).prior_outcome for panel in PANELS}
    assert decided == {True, False}


@pytest.mark.parametrize("p", range(len(PANELS)))
def test_fast_frames_equal_general_frames(p, reference):
    panel = PANELS[p]
    fast = [_fast(model, panel) for model in MODELS]
    reference()
    for model, (spec, frame, resolved) in zip(MODELS, fast):
        ref_spec, ref_frame, ref_resolved = _general(model, panel)
        assert resolved == ref_resolved, model
        assert spec == ref_spec, model
        pd.testing.assert_frame_equal(frame, ref_frame, check_exact=True, obj=repr(model))


@pytest.mark.parametrize("p", range(len(PANELS)))
def test_row_rules_equal_the_reference(p):
    panel = PANELS[p]
    for model in MODELS:
        assert model._prior_rows(panel) == _prior_rows_reference(model, panel)
        resolved = model.resolve(panel)
        assert resolved._mean_session_varies(panel) == _mean_session_varies_reference(resolved, panel)


def test_outcome_before_equals_the_merge_on_any_input():
    rng = np.random.default_rng(12)
    for trial in range(300):
        n = int(rng.integers(0, 50))
        ids = rng.choice(np.array(["a", "b", "c", None, "e"], dtype=object), n)
        rows = pd.DataFrame({"p": ids, "s": rng.integers(0, 12, n)}).drop_duplicates()
        if trial % 3 == 0:
            rows = rows.sort_values(["p", "s"], na_position="last")
        y = rng.normal(size=len(rows)).round(1)
        y[rng.random(len(rows)) < 0.2] = np.nan
        patients = [rows["p"].to_numpy(), rows["p"], pd.Categorical(rows["p"]),
                    rows["p"].astype("category"), rows["p"].fillna("z").astype(str)]
        for patient, session in itertools.product(patients, (rows["s"].to_numpy(), rows["s"].to_numpy(float),
                                                             rows["s"] + 3)):
            fast = outcome_before(patient, session, y)
            slow = _outcome_before_merge(patient, session, y)
            assert fast.dtype == slow.dtype == np.float64
            np.testing.assert_array_equal(fast, slow)


def test_outcome_before_general_cases_use_the_merge():
    # non-integer sessions and duplicated keys are left to the merge (which refuses duplicates)
    fast = outcome_before(np.array(["a", "a"]), np.array([1.5, 2.5]), np.array([1.0, 2.0]))
    np.testing.assert_array_equal(fast, [np.nan, 1.0])
    with pytest.raises(pd.errors.MergeError):
        outcome_before(np.array(["a", "a"]), np.array([1, 1]), np.array([1.0, 2.0]))


def test_frames_reach_r_as_the_general_conversion_makes_them():
    from pylme_alliance import bridge
    from pylme_alliance.bridge.rload import rinterface
    from pylme_alliance.engines._common import parse_formula
    from pylme_alliance.engines._names import NameMap
    from pylme_alliance.engines.datacheck import model_columns

    bridge.private_env()  # starts R
    identical = rinterface().baseenv["identical"]
    for model in (AllianceModel(), AllianceModel(moderators=("arm",)), AllianceModel(effect="direct", lead=2),
                  AllianceModel(control_outcome="raw", therapist="crossed")):
        for panel in PANELS:
            spec, frame, _ = _fast(model, panel)
            columns = [c for c in frame.columns if c in parse_formula(spec.formula).variables]
            names = NameMap(columns)
            fast = _power_fit._frames_to_r([frame, frame], columns, names)
            general = bridge.to_r(names.frame_to_r(model_columns(frame, columns)))
            assert identical(fast[0], general)[0] and identical(fast[1], general)[0], model


def test_frames_to_r_refuses_what_model_columns_refuses():
    from pylme_alliance.engines._names import NameMap

    frame = pd.DataFrame({"y": [1.0, np.inf, 3.0], "x": [1.0, 2.0, 3.0]})
    with pytest.raises(pa.PylmeError, match="infinite"):
        _power_fit._frames_to_r([frame], ["y", "x"], NameMap(["y", "x"]))
    text = pd.DataFrame({"y": [1.0, 2.0, 3.0], "x": pd.Series(["a", "b", "a"], dtype=object)})
    r_frame = _power_fit._frames_to_r([text], ["y", "x"], NameMap(["y", "x"]))[0]
    assert [str(c) for c in r_frame.rclass] == ["data.frame"]


def _calibrate_dropout_reference(z, can_drop, target, slope):
    """simulate()'s dropout calibration over the whole n x T grid (before issue 12)."""
    if target <= 0 or not can_drop.any():
        return -np.inf
    lo, hi = -20.0, 20.0
    zz = np.where(can_drop, z, 0.0)
    for _ in range(50):
        mid = 0.5 * (lo + hi)
        h = np.where(can_drop, 1.0 / (1.0 + np.exp(-(mid + slope * zz))), 0.0)
        share = float(np.mean(1.0 - np.exp(np.log1p(-np.minimum(h, 1 - 1e-12)).sum(axis=1))))
        if share < target:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


def test_dropout_calibration_equals_the_whole_grid_version():
    from pylme_alliance.simulation import _generate

    rng = np.random.default_rng(7)
    for trial in range(200):
        n, T = int(rng.integers(1, 300)), int(rng.integers(1, 40))
        z = rng.normal(scale=float(rng.uniform(0.1, 4)), size=(n, T))
        can_drop = rng.random((n, T)) < rng.uniform(0, 1)
        target, slope = float(rng.uniform(0, 0.9)), float(rng.normal(scale=3))
        fast = _generate._calibrate_dropout(z, can_drop, target, slope)
        slow = _calibrate_dropout_reference(z, can_drop, target, slope)
        assert np.float64(fast).view(np.int64) == np.float64(slow).view(np.int64), trial


def test_lean_truth_leaves_the_data_and_the_rest_of_the_truth_unchanged():
    from pylme_alliance.simulation._generate import lean_truth

    for kwargs in ({}, {"feedback": -0.01, "moderation": {"severity": 0.02}}):
        full = pa.simulate(n_patients=60, n_therapists=10, seed=4, **kwargs)
        with lean_truth(between=False):
            lean = pa.simulate(n_patients=60, n_therapists=10, seed=4, **kwargs)
        with lean_truth(between=True):
            between = pa.simulate(n_patients=60, n_therapists=10, seed=4, **kwargs)
        pd.testing.assert_frame_equal(lean.data, full.data, check_exact=True)
        pd.testing.assert_frame_equal(between.data, full.data, check_exact=True)
        assert set(full.truth) - set(lean.truth) == {"within_expected", "between_level"}
        assert set(full.truth) - set(between.truth) == {"within_expected"}
        assert repr({k: full.truth[k] for k in lean.truth}) == repr(lean.truth)
        assert repr(between.truth["between_level"]) == repr(full.truth["between_level"])
    assert "between_level" in pa.simulate(n_patients=20, n_therapists=4, seed=1).truth  # the block ended


def test_power_counts_are_integers_and_the_figure_is_an_image():
    from pylme_alliance.simulation.power_result import build_result

    rows = [dict(point=p, replicate=r, seed=r, effect="within", test="Wald z", estimate=-1.0, std_error=0.5,
                 statistic=-2.0, p_value=0.04, ci_low=-2.0, ci_high=0.0, detected=r % 2 == 0, truth=-1.0,
                 converged=True, singular=False, failed=r == 2 and p == 1, error="", warnings="")
            for p in range(2) for r in range(3)]
    res = build_result(rows, points=[{"n_patients": 40}, {"n_patients": 80}], swept=["n_patients"],
                       effects=["within"], n_sims=3, alpha=0.05, seed=1, model=None)
    for column in ("n_sims", "n_ok", "n_failed"):
        assert str(res.table[column].dtype) == "int64"
    assert "<td>2</td>" in res._repr_html_()
    header, _, second = res.table.to_csv(index=False).split("\n")[:3]
    assert second.split(",")[header.split(",").index("n_ok")] == "2"
    png = res.figure()._repr_png_()
    assert png.startswith(b"\x89PNG")
