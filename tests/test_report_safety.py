"""Nothing of the user's is lost and nothing of theirs becomes markup (issue 8):
HTML/Markdown escaping of user-derived names, Report.save(overwrite=...) that never
writes through symlinks nor half-writes, output paths checked before the work, safe
figure file names."""
from __future__ import annotations

import os
import warnings
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

import pylme_alliance as pa
from pylme_alliance import outfiles
from pylme_alliance.outfiles import check_directory, slug, unique_slugs
from pylme_alliance.report.figures import new_figure

HOSTILE = 'x"><img src=x onerror=alert(1)>'
SLASHED = "a/../b"
ALLOWED_TAGS = {"html", "head", "meta", "title", "style", "body", "h1", "h2", "h3", "pre", "p", "figure", "img",
                "figcaption", "table", "thead", "tbody", "tr", "th", "td", "ul", "li", "em", "strong", "blockquote",
                "div", "dl", "dt", "dd", "details", "summary"}  # div: the scroll box around each table
# (class="table-scroll") and the figure grid; dl: the glossary; details/summary: the notebook view
ALLOWED_ATTRS = {"charset", "alt", "src", "data-file", "class", "border", "style", "name", "content"}


class _Collect(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data):
        self.text.append(data)


def _parse(text: str) -> _Collect:
    parser = _Collect()
    parser.feed(text)
    parser.close()
    return parser


def _assert_no_injection(page: str, n_figures: int) -> _Collect:
    parsed = _parse(page)
    tags = {t for t, _ in parsed.tags}
    assert tags <= ALLOWED_TAGS, tags - ALLOWED_TAGS
    for tag, attrs in parsed.tags:
        assert set(attrs) <= ALLOWED_ATTRS, (tag, attrs)
        assert not any(name.startswith("on") for name in attrs)
    images = [attrs for tag, attrs in parsed.tags if tag == "img"]
    assert len(images) == n_figures
    assert all(a["src"].startswith("data:image/png;base64,") for a in images)
    return parsed


@pytest.fixture(scope="module")
def hostile_report():
    data = pa.simulate(n_patients=60, seed=1).data
    data[HOSTILE] = data["severity"]
    data[SLASHED] = data["arm"]
    panel = pa.prepare(data, patient="patient", session="session", alliance="alliance", outcome="outcome",
                       therapist="therapist", leads=(1,), moderators=[HOSTILE, SLASHED])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pa.analyze(panel, leads=(1,), moderators=[HOSTILE, SLASHED], progress=False)


def _hand_report() -> pa.Report:
    """A report whose every user-derived slot (table headers, cells, levels, notes, figure
    names) holds markup."""
    table = pd.DataFrame({HOSTILE: [1.5, 2.0], "level": ["<script>alert(2)</script>", "a|b"],
                          "note": ['"><b onclick=x>', "]](javascript:alert(3))"]})
    return pa.Report(tables={"moderators": table.assign(kind="x", moderator=HOSTILE, p_adjusted=1.0)},
                     figures={f"simple_slopes_{HOSTILE}": new_figure(2, 2)},
                     notes=[f"Moderator {HOSTILE}: <iframe src=x></iframe>"])


def test_analyze_html_has_no_injected_markup(hostile_report):
    page = hostile_report.to_html()
    parsed = _assert_no_injection(page, len(hostile_report.figures))
    text = "".join(parsed.text)
    assert HOSTILE in text  # the real name is shown, as text
    alts = [a["alt"] for t, a in parsed.tags if t == "img"]
    assert f"Simple slopes by {HOSTILE}" in alts and f"Simple slopes by {SLASHED}" in alts  # text, not markup


def test_hand_made_report_escapes_headers_cells_notes():
    report = _hand_report()
    parsed = _assert_no_injection(report.to_html(), 1)
    text = "".join(parsed.text)
    for value in (HOSTILE, "<script>alert(2)</script>", '"><b onclick=x>', "<iframe src=x></iframe>"):
        assert value in text
    md = report.to_markdown()
    # Markdown renderers pass raw HTML through: none may be left
    for raw in ("<img", "<script", "<iframe", "<b "):
        assert raw not in md
    assert "](javascript" not in md.replace("\\]", "")
    assert "a\\|b" in md  # a pipe in a cell does not split the table


def test_figure_files_are_safe_slugs_with_real_names_in_captions(hostile_report, tmp_path):
    out = hostile_report.save(tmp_path / "rep")
    names = sorted(os.listdir(out))
    assert all(n.isascii() and "/" not in n and ".." not in n and not n.startswith(".") for n in names)
    assert set(names) == set(hostile_report.file_names())
    assert not (tmp_path / "b").exists() and not any(tmp_path.rglob("*onerror*\"*"))
    md = (out / "report.md").read_text()
    stems = hostile_report.file_stems()["figures"]
    for name, stem in stems.items():
        assert (out / f"{stem}.png").stat().st_size > 500
        assert f"({stem}.png)" in md
    assert "a/../b" in md and "x&quot;" not in md and "&lt;img" in md and "<img" not in md


def test_slugs():
    assert slug("a/b") == "a_b" and slug("../../etc/passwd") == "etc_passwd"
    assert slug("Schwere_ä") == "Schwere_a" and slug("..") == "x" and slug("") == "x"
    assert slug("CON") == "CON_" and len(slug("y" * 500)) <= 80
    stems = unique_slugs(["a/b", "a_b", "A_B", "a b"])
    assert len(set(s.lower() for s in stems.values())) == 4


# ---------------------------------------------------------------------------- save

def _small_report() -> pa.Report:
    fig = new_figure(2, 2)
    fig.subplots().plot([0, 1], [0, 1])
    table = pd.DataFrame({"lead": [1], "term": ["alliance_within"], "estimate": [-0.5], "conf_low": [-0.9],
                          "conf_high": [-0.1], "p_value": [0.01]})
    return pa.Report(tables={"duration": table},
                     figures={"duration": fig}, notes=["a note"])


def test_save_refuses_to_overwrite_before_writing_anything(tmp_path):
    out = tmp_path / "rep"
    out.mkdir()
    (out / "report.md").write_text("the user's own notes")
    with pytest.raises(pa.PylmeError, match="report.md"):
        _small_report().save(out)
    assert sorted(os.listdir(out)) == ["report.md"]  # no PNG, CSV or HTML written first
    assert (out / "report.md").read_text() == "the user's own notes"
    # a dangling symlink counts as existing
    (out / "report.md").unlink()
    (out / "duration.csv").symlink_to(tmp_path / "nowhere.csv")
    with pytest.raises(pa.PylmeError, match="duration.csv"):
        _small_report().save(out)
    assert sorted(os.listdir(out)) == ["duration.csv"]


def test_overwrite_replaces_symlink_never_follows_it(tmp_path):
    victim = tmp_path / "precious.txt"
    victim.write_text("precious")
    out = tmp_path / "rep"
    out.mkdir()
    (out / "report.html").symlink_to(victim)
    (out / "unrelated.txt").write_text("keep me")
    report = _small_report()
    report.save(out, overwrite=True)
    assert victim.read_text() == "precious"
    assert not (out / "report.html").is_symlink()
    assert (out / "report.html").read_text().startswith("<!DOCTYPE html>")
    assert (out / "unrelated.txt").read_text() == "keep me"
    assert sorted(os.listdir(out)) == sorted(report.file_names() + ["unrelated.txt"])  # no temp files left


def test_interrupted_save_leaves_no_files(tmp_path, monkeypatch):
    calls = []

    def interrupted(src, dst):
        calls.append(dst)
        raise KeyboardInterrupt

    monkeypatch.setattr(outfiles.os, "replace", interrupted)
    out = tmp_path / "new" / "rep"
    with pytest.raises(KeyboardInterrupt):
        _small_report().save(out)
    assert calls and not out.exists()  # the directory it created is gone again
    # in an existing directory: the temporary files are cleaned up
    (tmp_path / "existing").mkdir()
    with pytest.raises(KeyboardInterrupt):
        _small_report().save(tmp_path / "existing")
    assert os.listdir(tmp_path / "existing") == []


def test_bad_output_paths_are_refused_and_nothing_is_created(tmp_path):
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    with pytest.raises(pa.PylmeError, match="not a directory"):
        _small_report().save(a_file)
    with pytest.raises(pa.PylmeError, match="which is a file"):
        _small_report().save(a_file / "sub" / "rep")
    assert a_file.read_text() == "x"
    # /proc refuses new files even to root: the probe asks the file system, not the mode bits
    with pytest.raises(pa.PylmeError, match="cannot write"):
        check_directory("/proc/pylme-report-test/rep")
    assert not Path("/proc/pylme-report-test").exists()


def test_save_round_trip_still_complete(tmp_path):
    report = _small_report()
    out = report.save(tmp_path / "a" / "b")
    assert (out / "duration.png").stat().st_size > 500
    assert pd.read_csv(out / "duration.csv")["estimate"].tolist() == [-0.5]
    assert isinstance(report.figures["duration"], Figure)
    assert np.isclose(pd.read_csv(out / "duration.csv")["lead"], 1).all()


def test_dollar_signs_in_a_moderator_name_draw(tmp_path):
    from pylme_alliance.canvas import plain_text as _plain
    from pylme_alliance.report.figures import simple_slopes_plot

    slopes = pd.DataFrame({"term": ["alliance_within"] * 2, "label": ["a", "b"], "estimate": [-0.2, 0.1],
                           "conf_low": [-0.4, -0.1], "conf_high": [0.0, 0.3]})
    name = r"$\undefinedmacro$ cost"
    fig = simple_slopes_plot(slopes, _plain(name), "categorical")
    fig.savefig(tmp_path / "x.png")  # raw, the name makes mathtext raise while drawing
    with pytest.raises(ValueError):
        simple_slopes_plot(slopes, name, "categorical").savefig(tmp_path / "y.png")
