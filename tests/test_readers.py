"""read_data(): the files psychology labs keep (issue 11), read to the same frame."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pylme_alliance.errors import PylmeError
from pylme_alliance.readers import read_data


@pytest.fixture
def sessions() -> pd.DataFrame:
    return pd.DataFrame({
        "id": [1, 1, 2, 2, 3],
        "session": [0, 1, 0, 1, 0],
        "wai": [5.25, 5.5, 6.0, 4.75, 5.125],
        "oq": [80.5, 77.0, 60.25, 61.0, 90.0],
        "arm": ["control", "feedback", "control", "feedback", "control"],
    })


def test_semicolon_csv_with_decimal_commas(sessions, tmp_path):
    text = "id;session;wai;oq;arm\n" + "\n".join(
        f"{r.id};{r.session};{str(r.wai).replace('.', ',')};{str(r.oq).replace('.', ',')};{r.arm}"
        for r in sessions.itertuples())
    path = tmp_path / "labs.csv"
    path.write_text(text, encoding="utf-8")
    back = read_data(path)
    assert list(back.columns) == list(sessions.columns)
    np.testing.assert_allclose(back["wai"], sessions["wai"])
    np.testing.assert_allclose(back["oq"], sessions["oq"])


def test_semicolon_csv_with_decimal_points_keeps_points(sessions, tmp_path):
    path = tmp_path / "points.csv"
    sessions.to_csv(path, sep=";", index=False)
    back = read_data(path)
    np.testing.assert_allclose(back["wai"], sessions["wai"])


def test_forced_separator_and_decimal(sessions, tmp_path):
    path = tmp_path / "pipes.txt"
    sessions.to_csv(path, sep="|", decimal=",", index=False)
    back = read_data(path, sep="|", decimal=",")
    np.testing.assert_allclose(back["oq"], sessions["oq"])


def test_tsv(sessions, tmp_path):
    path = tmp_path / "s.tsv"
    sessions.to_csv(path, sep="\t", index=False)
    pd.testing.assert_frame_equal(read_data(path), sessions)


def test_windows_1252_text(tmp_path):
    path = tmp_path / "chile.csv"
    path.write_bytes("id;terapeuta;wai\n1;Núñez;5,5\n2;Peña;6\n".encode("cp1252"))
    back = read_data(path)
    assert list(back["terapeuta"]) == ["Núñez", "Peña"]
    np.testing.assert_allclose(back["wai"], [5.5, 6.0])


def test_spss_value_labels_become_categories(sessions, tmp_path):
    pyreadstat = pytest.importorskip("pyreadstat")
    frame = sessions.drop(columns="arm").assign(arm=[1, 2, 1, 2, 1], item=[0, 1, 4, 2, 3])
    path = tmp_path / "trial.sav"
    pyreadstat.write_sav(frame, str(path), variable_value_labels={
        "arm": {1: "control", 2: "feedback"},
        # labels on the end points only: the scale must stay numeric
        "item": {0: "never", 4: "always"},
    })
    back = read_data(path)
    assert isinstance(back["arm"].dtype, pd.CategoricalDtype)
    assert list(back["arm"].cat.categories) == ["control", "feedback"]
    assert list(back["arm"]) == ["control", "feedback", "control", "feedback", "control"]
    assert pd.api.types.is_numeric_dtype(back["item"])
    np.testing.assert_allclose(back["wai"], sessions["wai"])
    zpath = tmp_path / "trial.zsav"
    pyreadstat.write_sav(frame, str(zpath), compress=True)
    np.testing.assert_allclose(read_data(zpath)["oq"], sessions["oq"])


def test_stata_with_labels(sessions, tmp_path):
    path = tmp_path / "trial.dta"
    sessions.assign(arm=sessions["arm"].astype("category")).to_stata(path, write_index=False)
    back = read_data(path)
    assert list(back["arm"].astype(str)) == list(sessions["arm"])
    np.testing.assert_allclose(back["oq"], sessions["oq"])


def test_unknown_extension_lists_supported(tmp_path):
    path = tmp_path / "data.rds"
    path.write_bytes(b"X\n")
    with pytest.raises(PylmeError, match=r"\.rds.*supported: .*\.sav"):
        read_data(path)


def test_binary_file_named_csv_is_a_clear_error(tmp_path):
    path = tmp_path / "actually_spss.csv"
    path.write_bytes(b"$FL2@(#) IBM SPSS\x00\xff\xfe")
    with pytest.raises(PylmeError, match="binary"):
        read_data(path)


def test_missing_and_directory(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_data(tmp_path / "nope.csv")
    with pytest.raises(PylmeError, match="directory"):
        read_data(tmp_path)


def test_caller_gets_same_frame_from_every_format(sessions, tmp_path):
    sessions.to_parquet(tmp_path / "s.parquet")
    sessions.to_excel(tmp_path / "s.xlsx", index=False)
    sessions.to_csv(tmp_path / "s.csv", index=False)
    for name in ("s.parquet", "s.xlsx", "s.csv"):
        pd.testing.assert_frame_equal(read_data(tmp_path / name), sessions, check_dtype=False)


def test_sessions_counted_from_zero_give_the_same_panel():
    from pylme_alliance.panel.prepare import prepare
    from pylme_alliance.simulation.example import load_example

    trial = load_example()
    shifted = trial.assign(session=trial["session"] - trial["session"].min())
    assert shifted["session"].min() == 0
    cols = dict(patient="patient", session="session", alliance="alliance", outcome="outcome", leads=(1, 2))
    one = prepare(trial, **cols).data
    zero = prepare(shifted, **cols).data
    for column in ("outcome_lead1", "outcome_lead2", "alliance_within", "alliance_between"):
        np.testing.assert_allclose(zero[column].to_numpy(float), one[column].to_numpy(float), equal_nan=True)
    with pytest.raises(PylmeError, match=">= 0"):
        prepare(trial.assign(session=trial["session"] - 5), **cols)


def test_cli_reads_a_semicolon_file_with_decimal_commas(tmp_path):
    from pylme_alliance.cli import build_parser
    from pylme_alliance.cli_commands import _panel
    from pylme_alliance.simulation.example import load_example

    trial = load_example().head(400)
    path = tmp_path / "trial.csv"
    trial.to_csv(path, sep=";", decimal=",", index=False)
    args = build_parser().parse_args(["analyze", str(path), "--patient", "patient", "--session", "session",
                                      "--alliance", "alliance", "--outcome", "outcome", "--out", str(tmp_path / "r")])
    panel = _panel(args, (1,))
    forced = build_parser().parse_args(["analyze", str(path), "--patient", "patient", "--session", "session",
                                        "--alliance", "alliance", "--outcome", "outcome",
                                        "--sep", ";", "--decimal", ",", "--out", str(tmp_path / "r")])
    np.testing.assert_allclose(_panel(forced, (1,)).data["alliance"], panel.data["alliance"])
    kept = panel.data[["patient", "session", "alliance"]].merge(
        trial[["patient", "session", "alliance"]], on=["patient", "session"], suffixes=("", "_csv"))
    assert len(kept) == len(panel.data) > 0
    np.testing.assert_allclose(kept["alliance"].to_numpy(float), kept["alliance_csv"].to_numpy(float))



def test_hostile_inputs(sessions, tmp_path):
    # a column named as R code is data to the reader, and reaches prepare() as a name
    evil = sessions.rename(columns={"wai": "system('touch marker')"})
    path = tmp_path / "evil.csv"
    evil.to_csv(path, sep=";", decimal=",", index=False)
    link = tmp_path / "link.csv"
    link.symlink_to(path)  # a symlink is read as the file it points to, never written
    back = read_data(link)
    assert "system('touch marker')" in back.columns
    np.testing.assert_allclose(back["system('touch marker')"], sessions["wai"])
    assert path.read_bytes() == link.read_bytes()
    with pytest.raises(PylmeError, match="separator and the decimal mark"):
        read_data(path, sep=",", decimal=",")
    assert not (tmp_path / "marker").exists()
