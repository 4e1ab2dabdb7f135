"""analyze() faster: its independent fits on an executor (same report as serially), the
AR(1) check optional and one fit cheaper, only the reported variance parameter profiled,
a progress bar naming each step, and the time of each part in the provenance."""
from __future__ import annotations

import json
import warnings

import numpy as np
import pandas as pd
import pytest

import pylme_alliance as pa
from pylme_alliance import executors, progress
from pylme_alliance.models.model import AllianceModel

COLUMNS = dict(patient="patient", session="session", alliance="alliance", outcome="outcome",
               therapist="therapist", time="day")


class FakeBar:
    """Stands in for tqdm: records every label the bar is given."""

    labels: list[str] = []

    def __init__(self, iterable=None, *, total=None, desc="", leave=True, file=None):
        self.iterable = iterable
        FakeBar.labels.append(desc)

    def __iter__(self):
        return iter(self.iterable or ())

    def set_description_str(self, text, refresh=True):
        FakeBar.labels.append(text)

    def set_postfix_str(self, text, refresh=True):
        pass

    def update(self, n=1):
        pass

    def close(self):
        pass


@pytest.fixture(scope="module")
def panel():
    data = pa.simulate(n_patients=80, seed=11).data
    return pa.prepare(data, **COLUMNS, leads=(1, 2), moderators=["severity", "arm"], outcome_better="lower")


def _analyze(panel, **options):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pa.analyze(panel, leads=(1, 2), moderators=["severity", "arm"], random_slope=True, **options)


@pytest.fixture(scope="module")
def serial(panel):
    mp = pytest.MonkeyPatch()
    FakeBar.labels = []
    mp.setattr(progress, "_bar_class", lambda stream: FakeBar)
    try:
        report = _analyze(panel, progress=True)
    finally:
        mp.undo()
    return report, list(FakeBar.labels)


@pytest.fixture(scope="module")
def pooled(panel):
    with executors.process_pool(2) as pool:
        return _analyze(panel, progress=False, executor=pool)


def _same_tables(a, b):
    assert list(a.tables) == list(b.tables)
    for name in a.tables:
        pd.testing.assert_frame_equal(a.tables[name], b.tables[name], check_exact=True, obj=name)


def test_pool_report_is_the_serial_report(serial, pooled):
    report, _ = serial
    _same_tables(report, pooled)
    assert report.notes == pooled.notes
    assert report.settings == pooled.settings
    assert "ProcessPoolExecutor (2 workers)" in pooled.provenance["timings"]["executor"]
    assert pooled.provenance["arguments"]["executor"].startswith("ProcessPoolExecutor")


def test_bar_names_each_step(serial):
    _, labels = serial
    for step in ("main model", "between level", "lead 2 of 2", "lead 2 of 2 (direct)", "moderator severity",
                 "moderator arm", "heterogeneity", "AR(1) check: nlme iid", "AR(1) check: nlme ar1",
                 "autocorrelation"):
        assert f"analyze: {step}" in labels, (step, labels)


def test_duration_and_moderators_bars_name_their_steps(panel, monkeypatch):
    FakeBar.labels = []
    monkeypatch.setattr(progress, "_bar_class", lambda stream: FakeBar)
    model = {"therapist": "nested", "random_slope": False}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pa.duration(panel, leads=(1, 2), progress=True, effect="direct", **model)
        pa.moderators(panel, ["arm"], progress=True, **model)
    assert "duration (direct): lead 1 of 2" in FakeBar.labels
    assert "duration (direct): lead 2 of 2" in FakeBar.labels
    assert "moderators: moderator arm" in FakeBar.labels


def test_lead_names_say_lead_and_place():
    from pylme_alliance.analyses.duration import lead_step_names

    assert lead_step_names((1, 2, 3)) == ["lead 1 of 3", "lead 2 of 3", "lead 3 of 3"]
    assert lead_step_names((0, 2)) == ["lead 0 (1 of 2)", "lead 2 (2 of 2)"]


def test_provenance_times_every_part(serial, tmp_path):
    report, _ = serial
    timings = report.provenance["timings"]
    parts = [t["part"] for t in timings["parts"]]
    assert parts[0] == "main model" and parts[-1] == "tables and figures"
    for step in ("lead 2 of 2", "moderator arm", "heterogeneity", "AR(1) check: nlme ar1", "autocorrelation"):
        assert step in parts
    assert all(t["seconds"] >= 0 and t["cpu_seconds"] >= 0 for t in timings["parts"])
    assert timings["total_seconds"] >= max(t["seconds"] for t in timings["parts"])
    assert timings["executor"] == "none (this process)"
    assert "Time:" in report.to_markdown() and "AR(1) check: nlme ar1" in report.to_markdown()
    assert "AR(1) check: nlme ar1" in report.to_html()
    report.save(tmp_path / "out")
    saved = json.loads((tmp_path / "out" / "results.json").read_text())
    assert [t["part"] for t in saved["provenance"]["timings"]["parts"]] == parts


def test_checks_empty_skips_the_ar1_comparison(panel):
    report = _analyze(panel, progress=False, checks=())
    assert "ar1_comparison" not in report.tables
    assert not report.tables["fits"]["model"].str.startswith("AR(1) check").any()
    assert any("AR(1) comparison" in n and "skipped" in n and "checks=()" in n for n in report.notes)
    assert report.provenance["arguments"]["checks"] == []
    assert "AR(1) check" not in " ".join(t["part"] for t in report.provenance["timings"]["parts"])


@pytest.mark.parametrize("checks", [("ar2",), "everything", 3])
def test_unknown_checks_are_refused(panel, checks):
    with pytest.raises(pa.PylmeError, match="check"):
        pa.analyze(panel, leads=(1,), checks=checks, progress=False)


def test_ar1_check_reuses_an_nlme_main_fit(panel, monkeypatch):
    """With engine='nlme' the main model IS the check's independent-residual model: it is
    fitted once, and the comparison uses its numbers."""
    real_fit = AllianceModel.fit
    fitted = []
    depth = [0]

    def counting(self, p):
        # count the fits analyze() asks for, not a fit() that resolves its options and
        # calls fit() again
        if depth[0] == 0:
            fitted.append((self.engine, self.residual, self.lead, self.effect, tuple(self.moderators)))
        depth[0] += 1
        try:
            return real_fit(self, p)
        finally:
            depth[0] -= 1

    monkeypatch.setattr(AllianceModel, "fit", counting)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        report = pa.analyze(panel, leads=(1,), engine="nlme", random_slope=False, progress=False)
    main = ("nlme", "iid", 1, "total", ())
    assert fitted.count(main) == 1, fitted
    assert ("nlme", "ar1", 1, "total", ()) in fitted
    table = report.tables["ar1_comparison"]
    assert table["AIC"].iloc[0] == report.tables["fit_statistics"]["AIC"].iloc[0]
    assert "AR(1) check: nlme iid" in set(report.tables["fits"]["model"])


def test_part_errors_propagate_and_pylme_errors_become_notes(panel, monkeypatch):
    from pylme_alliance.report import parts as analyze_parts

    real_fit = AllianceModel.fit

    def failing(self, p):
        if self.lead == 2:
            raise pa.PylmeError("lead two cannot be fitted")
        return real_fit(self, p)

    monkeypatch.setattr(AllianceModel, "fit", failing)
    report = _analyze(panel, progress=False, checks=())
    assert any("lead 2" in n and "lead two cannot be fitted" in n for n in report.notes)
    assert 2 not in set(report.tables["duration"]["lead"])

    def broken(part):
        raise ZeroDivisionError("not a PylmeError")

    monkeypatch.setitem(analyze_parts._RUNNERS, "moderator", broken)
    with pytest.raises(ZeroDivisionError):
        _analyze(panel, progress=False, checks=())


def test_parts_never_carry_an_r_object(panel):
    import pickle

    from pylme_alliance.report.parts import Part

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = AllianceModel(lead=1, random_slope=True).fit(panel)
    part = Part("heterogeneity", "heterogeneity", panel, fit.model, ("lower", "main"), fit=fit)
    copy = pickle.loads(pickle.dumps(part))
    assert copy.fit is None and copy.model == fit.model and copy.name == "heterogeneity"


# ---------------------------------------------------------------- profile only tau
def _profiled_parameters(call):
    """The `which` lme4's profile() is called with while ``call`` runs (R trace)."""
    import rpy2.robjects as ro

    from pylme_alliance.bridge import session

    with session.lock:
        seen = ro.r("new.env()")
        ro.r("function(seen) { seen$which <- list(); trace('profile.merMod', where = asNamespace('lme4'), "
             "print = FALSE, tracer = bquote(assign('which', c(get('which', envir = .(seen)), list(which)), "
             "envir = .(seen)))) }")(seen)
    try:
        result = call()
    finally:
        with session.lock:
            ro.r("untrace('profile.merMod', where = asNamespace('lme4'))")
    with session.lock:
        which = [list(w) for w in ro.r("function(seen) seen$which")(seen)]
    return result, which


def test_slope_sd_interval_profiles_only_the_slope_sd():
    import rpy2.robjects as ro

    from pylme_alliance.bridge import session

    rng = np.random.default_rng(7)
    groups, per = 40, 10
    g = np.repeat(np.arange(groups), per)
    x = np.tile(np.arange(per, dtype=float), groups)
    y = 5 + rng.normal(0, 3, groups)[g] + (1 + rng.normal(0, 0.8, groups)[g]) * x + rng.normal(0, 1, g.size)
    data = pd.DataFrame({"score": y, "dose": x, "ward": pd.Categorical(g)})
    fit = pa.lmer("score ~ dose + (1 + dose | ward)", data)
    interval, which = _profiled_parameters(lambda: fit.backend.sd_interval("ward", "dose", 0.95))
    assert len(which) == 1 and len(which[0]) == 1, which  # one parameter, not every SD
    low, high = interval
    sd = float(fit.ran_pars_table.query("term == 'sd__dose'")["estimate"].iloc[0])
    assert low < sd < high
    # the same interval as profiling every variance parameter
    backend = fit.backend
    name = "sd_{}|{}".format(backend.names.term_to_r("dose", backend.r_terms),
                             backend.names.term_to_r("ward", backend.r_terms))
    with session.lock:
        full = ro.r("function(f, n) confint(f, parm = 'theta_', method = 'profile', oldNames = FALSE, "
                    "quiet = TRUE)[n, ]")(backend.r, name)
    assert np.allclose([low, high], np.asarray(full, dtype=float), rtol=1e-10, atol=0)


def test_slope_sd_interval_of_an_unknown_parameter_is_missing():
    data = pd.DataFrame({"score": np.arange(40.0) % 7, "dose": np.arange(40.0) % 5,
                         "ward": pd.Categorical(np.arange(40) % 8)})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = pa.lmer("score ~ dose + (1 | ward)", data)
        low, high = fit.backend.sd_interval("ward", "dose", 0.95)  # no random slope of dose
    assert np.isnan(low) and np.isnan(high)
