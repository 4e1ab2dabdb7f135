"""power(): seeds, executors, the batch in R against the public fit, failures, files, CLI."""
from __future__ import annotations

import multiprocessing
import warnings
from concurrent.futures import ProcessPoolExecutor

import numpy as np
import pandas as pd
import pytest

import pylme_alliance as pa
from pylme_alliance import PylmeError
from pylme_alliance.cli import main
from pylme_alliance.models.model import AllianceModel
from pylme_alliance.models.slope_test import slope_test
from pylme_alliance.simulation import _power_fit
from pylme_alliance.simulation.power_result import wilson

SMALL = dict(n_patients=(40,), design={"n_therapists": 8}, n_sims=4, progress=False)
EFFECTS = ("within", "slope", "moderator:severity")


@pytest.fixture(scope="module")
def small():
    return pa.power(**SMALL, seed=11, effects=EFFECTS)


def _prepared(seed, moderators=()):
    sim = pa.simulate(n_patients=40, n_therapists=8, seed=int(seed))
    return sim, _power_fit._prepare(sim.data, AllianceModel(), tuple(moderators))


def test_table_shape_and_columns(small):
    table = small.table
    assert list(table["effect"]) == list(EFFECTS)
    assert (table["n_sims"] == 4).all() and (table["n_ok"] + table["n_failed"] == 4).all()
    for col in ("n_patients", "power", "power_lo", "power_hi", "mean_estimate", "truth", "bias", "coverage",
                "nonconverged", "singular"):
        assert col in table
    assert (table["power_lo"] <= table["power"]).all() and (table["power"] <= table["power_hi"]).all()
    assert len(small.replicates) == 4 * len(EFFECTS)
    within = table.set_index("effect").loc["within"]
    assert within["truth"] == -2.0  # the lag-1 effect simulate() used
    assert pa.PowerResult is type(small)


def test_same_seed_same_numbers_other_seed_differs(small):
    again = pa.power(**SMALL, seed=11, effects=EFFECTS)
    pd.testing.assert_frame_equal(small.replicates, again.replicates)
    other = pa.power(**SMALL, seed=12, effects=("within",))
    mine = small.replicates[small.replicates["effect"] == "within"]
    assert not np.allclose(other.replicates["estimate"].to_numpy(), mine["estimate"].to_numpy())


def test_seed_recorded_per_replicate_redraws_the_trial(small):
    row = small.replicates[small.replicates["effect"] == "within"].iloc[2]
    sim, panel = _prepared(row["seed"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = AllianceModel().fit(panel)
    # equal, unless a lmerTest-only flag moved model.fit to bobyqa's optimum (see power())
    moved = "bobyqa's fit is used" in fit.stats.get("convergence_check", "")
    assert fit.fixef_values["alliance_within"] == pytest.approx(row["estimate"], **(
        {"abs": 0.05} if moved else {"rel": 1e-7}))


def test_batch_in_r_matches_the_public_fit(small):
    """The one-call batch gives model.fit()'s estimate and SE, and slope_test()'s LR."""
    reps = small.replicates
    for seed in reps["seed"].unique()[:2]:
        _, panel = _prepared(seed, ("severity",))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fit = AllianceModel().fit(panel)
            mod = AllianceModel(moderators=("severity",)).fit(panel)
            lr = slope_test(fit, method="mixture")  # the batch's test (REML, asymptotic mixture)
        mine = reps[reps["seed"] == seed].set_index("effect")
        if "bobyqa's fit is used" in fit.stats.get("convergence_check", "") + mod.stats.get("convergence_check", ""):
            continue  # a lmerTest-only flag moved model.fit to bobyqa's optimum (see the test below)
        row = fit.fixed_table.set_index("term").loc["alliance_within"]
        # the batch fits the model as specified; model.fit() then removes the intercepts at 0
        # by design and refits: the same optimum to the optimizer's tolerance (3e-6 measured)
        rel = 1e-5 if fit.removed_terms else 1e-6
        assert mine.loc["within", "estimate"] == pytest.approx(row["estimate"], rel=rel)
        assert mine.loc["within", "std_error"] == pytest.approx(row["std_error"], rel=rel)
        inter = mod.fixed_table.set_index("term").loc["alliance_within:severity"]
        # (after a removal: the same optimum, to 1e-4 of the term's standard error)
        assert mine.loc["moderator:severity", "estimate"] == pytest.approx(
            inter["estimate"], rel=1e-6, abs=1e-4 * inter["std_error"] if mod.removed_terms else 0)
        assert mine.loc["slope", "statistic"] == pytest.approx(lr.statistic, rel=1e-5, abs=1e-6)
        assert mine.loc["slope", "p_value"] == pytest.approx(lr.p_value, rel=1e-5, abs=1e-6)
        # the batch's flag is the model's as specified (its intercepts at 0 make it singular)
        assert bool(mine.loc["within", "singular"]) == (bool(fit.singular) or bool(fit.removed_terms))


def test_process_pool_gives_identical_detections(small):
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(2, mp_context=ctx) as pool:
        pooled = pa.power(**SMALL, seed=11, effects=EFFECTS, executor=pool)
    pd.testing.assert_frame_equal(small.replicates, pooled.replicates)
    pd.testing.assert_frame_equal(small.table, pooled.table)


def test_huge_effect_has_power_one():
    result = pa.power(n_patients=40, design={"n_therapists": 8, "within_effect": -40.0}, n_sims=3, seed=5,
                      progress=False)
    row = result.table.iloc[0]
    assert row["power"] == 1.0 and row["power_hi"] == 1.0
    assert row["truth"] == -40.0


def test_null_effect_is_rarely_detected():
    result = pa.power(n_patients=30, design={"n_therapists": 6, "within_effect": 0.0, "slope_sd": 0.0},
                      n_sims=24, seed=8, progress=False)
    row = result.table.iloc[0]
    assert row["truth"] == 0.0
    # 24 replicates at alpha .05: P(>= 6 detections) < 0.001 if the test holds its level
    assert row["power"] * row["n_ok"] < 6


def test_sweep_of_a_design_keyword():
    result = pa.power(n_patients=(40,), design={"n_therapists": 8, "within_effect": [0.0, -40.0]}, n_sims=2,
                      seed=3, progress=False)
    assert list(result.table["within_effect"]) == [0.0, -40.0]
    assert list(result.table["truth"]) == [0.0, -40.0]
    assert result.table["power"].iloc[1] == 1.0


def test_failed_replicate_is_recorded_not_fatal(monkeypatch):
    original = _power_fit._frame
    calls = {"n": 0}

    def second_one_has_no_outcome(model, spec, panel):
        frame = original(model, spec, panel)
        calls["n"] += 1
        if calls["n"] == 2:
            frame[spec.response] = np.nan  # lme4 refuses: 0 complete cases
        return frame

    monkeypatch.setattr(_power_fit, "_frame", second_one_has_no_outcome)
    result = pa.power(**{**SMALL, "n_sims": 3}, seed=4)
    reps = result.replicates
    assert reps["failed"].tolist() == [False, True, False]
    assert "RError" in reps["error"].iloc[1]
    row = result.table.iloc[0]
    assert row["n_ok"] == 2 and row["n_failed"] == 1
    assert "1 replicate fit(s) failed" in str(result)


def test_simulation_failure_is_recorded(monkeypatch):
    import pylme_alliance.simulation.simulate as sim_module

    original = sim_module.simulate
    seen = []

    def flaky(**kwargs):
        seen.append(kwargs["seed"])
        if len(seen) == 2:  # the first call is power()'s check of the design point
            raise RuntimeError("disk full")
        return original(**kwargs)

    monkeypatch.setattr(sim_module, "simulate", flaky)
    result = pa.power(**{**SMALL, "n_sims": 2}, seed=4)
    assert result.replicates["failed"].tolist() == [True, False]
    assert "disk full" in result.replicates["error"].iloc[0]


def test_refit_path_in_r_matches_full_fits():
    """lme4::refit(fit, newresp) is taken only for identical designs, and agrees."""
    from pylme_alliance import bridge
    from pylme_alliance.engines._names import NameMap

    _, panel = _prepared(21)
    model = AllianceModel(lead=0, control_outcome=False)
    frame = model.model_frame(panel)
    spec = model.spec(panel)
    y = spec.response
    cols = [y, "session", "alliance_within", "alliance_between", "therapist", "patient"]
    rng = np.random.default_rng(0)
    frames = [frame[cols].assign(**{y: frame[y] + rng.normal(0, 5, len(frame))}) for _ in range(3)]
    assert _power_fit.same_design(frames, y)
    assert not _power_fit.same_design([frames[0], frames[1].iloc[::-1].reset_index(drop=True)], y)
    names = NameMap(cols)
    rows = [names.frame_to_r(f) for f in frames]
    tests = [[names.to_r["alliance_within"]]]
    calls = {}
    for reml in (False, True):
        for refit in (False, True):
            value, _ = bridge.call("pylme_power_fits", rows, spec.formula, names.r_names(), reml, tests,
                                   refit=refit)
            assert all(e is None for e in np.atleast_1d(value["error"])), value["error"]
            calls[reml, refit] = np.asarray(value["loglik"], float), np.asarray(value["estimate"], float)
    # ML: refit starts from the first fit's variance parameters, same optimum to the
    # optimizer's tolerance
    assert np.allclose(calls[False, True][0], calls[False, False][0], atol=1e-4)
    assert np.allclose(calls[False, True][1], calls[False, False][1], rtol=2e-3)
    # REML: lme4 1.1-31's refit() would land elsewhere, so REML batches are fitted in full
    assert np.array_equal(calls[True, True][0], calls[True, False][0])


def test_wilson_interval():
    low, high = wilson(0, 10)
    assert low == 0.0 and 0.25 < high < 0.35
    low, high = wilson(50, 100)
    assert low == pytest.approx(0.4038, abs=1e-3) and high == pytest.approx(0.5962, abs=1e-3)


@pytest.mark.parametrize("kwargs, words", [
    ({"design": {"n_therapist": 8}}, "unknown simulate() keyword"),
    ({"design": {"seed": 1}}, "seed"),
    ({"design": {"n_patients": [10]}}, "n_patients"),
    ({"effects": ["moderator:x`); system('touch /tmp/pwned')"]}, "names no moderator"),
    ({"effects": ["withn"]}, "unknown effect"),
    ({"design": {"n_therapists": 80}}, "n_therapists (80) cannot exceed"),
    ({"alpha": 1.5}, "alpha"),
    ({"n_sims": 0}, "n_sims"),
    ({"model": AllianceModel(random_slope=False), "effects": ["slope"]}, "random_slope=False"),
])
def test_hostile_arguments_are_clear_errors(kwargs, words, tmp_path):
    args = {**SMALL, "seed": 1, **kwargs}
    with pytest.raises(PylmeError) as info:
        pa.power(**args)
    assert words in str(info.value)
    assert not (tmp_path / "pwned").exists()


def test_save_files_and_symlinks(small, tmp_path):
    out = small.save(tmp_path / "out")
    assert {p.name for p in out.iterdir()} == {"power.csv", "replicates.csv", "power.png"}
    back = pd.read_csv(out / "power.csv")
    assert list(back["effect"]) == list(EFFECTS)
    assert (out / "power.png").read_bytes()[:4] == b"\x89PNG"
    with pytest.raises(PylmeError, match="overwrite"):
        small.save(out)
    # a symlinked directory is refused
    link = tmp_path / "link"
    link.symlink_to(out, target_is_directory=True)
    with pytest.raises(PylmeError, match="symlink"):
        small.save(link, overwrite=True)
    # a symlinked file: refused without overwrite, replaced (never written through) with it
    target = tmp_path / "victim.txt"
    target.write_text("keep me")
    other = tmp_path / "other"
    other.mkdir()
    (other / "power.csv").symlink_to(target)
    with pytest.raises(PylmeError, match="overwrite"):
        small.save(other)
    small.save(other, overwrite=True)
    assert target.read_text() == "keep me" and not (other / "power.csv").is_symlink()


def test_figure_and_html(small):
    fig = small.figure()
    assert len(fig.axes) == len(EFFECTS)
    assert any(line.get_linestyle() == "--" for line in fig.axes[0].lines)  # the alpha line
    html = small._repr_html_()
    assert "<table" in html and "power_lo" in html


def test_cli_power_end_to_end(tmp_path, capsys):
    out = tmp_path / "power"
    code = main(["power", "--patients", "40", "--therapists", "8", "--sims", "2", "--seed", "2",
                 "--out", str(out)])
    assert code == 0, capsys.readouterr().err
    table = pd.read_csv(out / "power.csv")
    assert table["n_sims"].tolist() == [2] and table["effect"].tolist() == ["within"]
    assert "Power by simulation" in capsys.readouterr().out
    code = main(["power", "--patients", "40", "--sims", "2", "--effects", "moderator:$(rm)", "--out",
                 str(tmp_path / "p2")])
    err = capsys.readouterr().err
    assert code == 1 and err.startswith("error: ") and "names no moderator" in err
    code = main(["power", "--patients", "40", "--sims", "2", "--workers", "2", "--scheduler", "tcp://x:1",
                 "--out", str(tmp_path / "p3")])
    assert code == 1 and "not both" in capsys.readouterr().err


def test_batch_against_the_checked_fit_and_the_decided_prior_outcome():
    """power()'s R batch against AllianceModel.fit where the fit's bobyqa check replaced the
    optimum (simulate(seed=1)), and the batch's frame is that of the model prior_outcome="auto"
    decided (short series: without t - 1; before, the frame kept t - 1 and dropped rows)."""
    sim = pa.simulate(seed=1)
    panel = _power_fit._prepare(sim.data, AllianceModel(), ())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = AllianceModel().fit(panel)
    numbers = _power_fit._batch(AllianceModel(), [_power_fit._Replicate(replicate=0, seed=1, panel=panel)],
                                [], False)[0]
    assert numbers.error is None and numbers.converged == fit.converged
    if "bobyqa's fit is used" in fit.stats.get("convergence_check", ""):
        # lmerTest's Hessian check (model.fit) flagged the boundary fit and bobyqa found a
        # better optimum; lme4 alone (the batch) does not flag it, so the batch keeps the
        # default optimizer's point: close, not equal (documented in power())
        assert numbers.loglik <= fit.stats["logLik"] + 1e-6
        assert numbers.tests[0][0] == pytest.approx(fit.fixef_values["alliance_within"], abs=0.05)
    else:  # the model as specified; fit may have dropped intercepts at 0 (same optimum)
        rel = 1e-5 if fit.removed_terms else 1e-6
        assert numbers.tests[0][0] == pytest.approx(fit.fixef_values["alliance_within"], rel=rel)
    short = pa.simulate(n_patients=40, n_therapists=8, sessions=3, max_sessions=3, within_effect=(-2.0, -1.0),
                        seed=3).data
    short_panel = _power_fit._prepare(short, AllianceModel(), ())
    model = AllianceModel(random_slope=False)
    frame = _power_fit._frame(model, model.spec(short_panel), short_panel)
    assert "outcome_before_within" not in frame
    pd.testing.assert_frame_equal(frame, model.model_frame(short_panel))
