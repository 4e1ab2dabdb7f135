"""read_data(): the files psychology labs keep (issue 11), read to the same frame."""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from pylme_alliance.errors import PylmeError, PylmeWarning
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


# ---- lab files as they come (issue 20) ---------------------------------------------


def _sav_with_dates_labels_and_user_missing(path, pyreadstat):
    import datetime as dt

    frame = pd.DataFrame({
        "id": [1.0, 1, 2, 2, 3],
        "visit": [dt.date(2021, 3, 1), dt.date(2021, 3, 8), dt.date(2021, 4, 1), None, dt.date(2021, 5, 2)],
        "wai": [5.5, -99, 6.0, 4.75, 5.0],
        "oq": [80.0, 77, 60, 61, 90],
        "arm": [1.0, 2, 1, 3, 2],
    })
    pyreadstat.write_sav(frame, str(path), column_labels={"wai": "Working Alliance Inventory", "oq": "OQ-45 total"},
                         missing_ranges={"wai": [-99]}, variable_value_labels={"arm": {1: "control", 2: "feedback"}})
    return frame


def test_spss_dates_labels_user_missing_and_partial_value_labels(tmp_path):
    pyreadstat = pytest.importorskip("pyreadstat")
    path = tmp_path / "lab.sav"
    _sav_with_dates_labels_and_user_missing(path, pyreadstat)
    with pytest.warns(PylmeWarning, match=r"lab.sav: value labels cover only some values of 'arm' \(no label for 3\)"):
        back = read_data(path)
    assert pd.api.types.is_datetime64_any_dtype(back["visit"])
    assert back["visit"].iloc[1] == pd.Timestamp("2021-03-08") and pd.isna(back["visit"].iloc[3])
    assert back.attrs["labels"] == {"wai": "Working Alliance Inventory", "oq": "OQ-45 total"}
    assert np.isnan(back["wai"].iloc[1])  # the SPSS user-missing -99
    assert pd.api.types.is_numeric_dtype(back["arm"])


def test_scale_with_labelled_end_points_gives_no_warning(sessions, tmp_path):
    pyreadstat = pytest.importorskip("pyreadstat")
    path = tmp_path / "items.sav"
    pyreadstat.write_sav(sessions.drop(columns="arm").assign(item=[0, 1, 4, 2, 3]), str(path),
                         variable_value_labels={"item": {0: "never", 4: "always"}})
    with warnings.catch_warnings():
        warnings.simplefilter("error", PylmeWarning)
        assert pd.api.types.is_numeric_dtype(read_data(path)["item"])


def test_stata_dates_labels_and_extended_missing(tmp_path):
    pyreadstat = pytest.importorskip("pyreadstat")
    import datetime as dt

    frame = pd.DataFrame({"id": [1.0, 2, 3], "wai": [5.5, -99, 6.0], "oq": [80.0, "a", 60.0],
                          "visit": [dt.date(2021, 3, 1), dt.date(2021, 3, 8), dt.date(2021, 4, 1)]})
    path = tmp_path / "lab.dta"
    # Stata's extended missing value .a ("not asked") in the outcome
    pyreadstat.write_dta(frame, str(path), column_labels={"wai": "WAI-SR"}, missing_user_values={"oq": ["a"]})
    back = read_data(path)
    assert pd.api.types.is_datetime64_any_dtype(back["visit"])
    assert back.attrs["labels"] == {"wai": "WAI-SR"}
    assert back["wai"].iloc[1] == -99  # a plain number in Stata: prepare() flags it, not the reader
    assert np.isnan(back["oq"].iloc[1]) and back["oq"].iloc[2] == 60


def test_utf8_file_with_a_few_windows_1252_lines_keeps_utf8_names(tmp_path):
    path = tmp_path / "mixed.csv"
    path.write_bytes("id;terapeuta\n1;Muñoz\n".encode() + "2;Peña\n".encode("cp1252") + "3;Zoë\n".encode())
    with pytest.warns(PylmeWarning, match=r"UTF-8 except line\(s\) 3, which were read as Windows-1252"):
        back = read_data(path)
    assert list(back["terapeuta"]) == ["Muñoz", "Peña", "Zoë"]


def test_utf16_csv_with_bom_is_read(sessions, tmp_path):
    path = tmp_path / "excel_unicode.csv"
    path.write_bytes(sessions.to_csv(index=False, sep=";").replace("control", "contról").encode("utf-16"))
    back = read_data(path)
    assert back["arm"].iloc[0] == "contról"
    np.testing.assert_allclose(back["wai"], sessions["wai"])


def test_repeated_header_is_refused(sessions, tmp_path):
    path = tmp_path / "twice.csv"
    path.write_text("id,alliance,oq,alliance\n1,5,80,6\n2,4,70,5\n")
    with pytest.raises(PylmeError, match=r"names column 'alliance' twice \(columns 2 and 4\)"):
        read_data(path)
    sheet = tmp_path / "twice.xlsx"
    pd.DataFrame([[1, 5, 80, 6]], columns=["id", "alliance", "oq", "alliance2"]).rename(
        columns={"alliance2": "alliance"}).to_excel(sheet, index=False)
    with pytest.raises(PylmeError, match="names column 'alliance' twice"):
        read_data(sheet)


def test_fifo_and_device_are_refused_before_reading(tmp_path):
    import os
    import threading

    fifo = tmp_path / "pipe.csv"
    os.mkfifo(fifo)
    outcome: list = []
    reader = threading.Thread(target=lambda: outcome.append(_error_of(read_data, fifo)), daemon=True)
    reader.start()
    reader.join(10)
    assert not reader.is_alive(), "read_data blocked on a FIFO"
    assert "FIFO" in outcome[0]
    zero = tmp_path / "zero.sav"
    zero.symlink_to("/dev/zero")
    with pytest.raises(PylmeError, match="is a device; read_data reads regular files only"):
        read_data(zero)


def _error_of(fn, *args, **kwargs) -> str:
    try:
        fn(*args, **kwargs)
    except PylmeError as exc:
        return str(exc)
    return "no error"


def test_size_limit_is_named(sessions, tmp_path):
    from pylme_alliance.readers import MAX_FILE_BYTES

    path = tmp_path / "s.csv"
    sessions.to_csv(path, index=False)
    with pytest.raises(PylmeError, match=r"over the limit of 50 .*MAX_FILE_BYTES"):
        read_data(path, max_bytes=50)
    assert MAX_FILE_BYTES >= 1024 ** 3


def test_damaged_spss_and_stata_files_give_a_sentence(sessions, tmp_path):
    pyreadstat = pytest.importorskip("pyreadstat")
    import os

    frame = sessions.drop(columns="arm")
    pyreadstat.write_sav(frame, str(tmp_path / "full.sav"))
    pyreadstat.write_dta(frame, str(tmp_path / "full.dta"))
    for name in ("full.sav", "full.dta"):
        raw = (tmp_path / name).read_bytes()
        cut = tmp_path / f"cut_{name}"
        cut.write_bytes(raw[: len(raw) // 2])
        with pytest.raises(PylmeError, match=r"cannot read cut_full\.(sav as SPSS|dta as Stata): .*truncated"):
            read_data(cut)
    noise = tmp_path / "noise.zsav"
    noise.write_bytes(os.urandom(4096))
    with pytest.raises(PylmeError, match="cannot read noise.zsav as SPSS"):
        read_data(noise)
    # a .dta whose header declares 2**40 rows
    raw = (tmp_path / "full.dta").read_bytes()
    at = raw.index(b"<N>") + 3
    huge = tmp_path / "huge.dta"
    huge.write_bytes(raw[:at] + (2 ** 40).to_bytes(8, "little") + raw[at + 8:])
    with pytest.raises(PylmeError, match="cannot read huge.dta as Stata: .*damaged"):
        read_data(huge)
