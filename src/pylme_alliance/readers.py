"""read_data(): session files as psychology labs keep them, read into pandas.

CSV (comma or semicolon separated, decimal point or comma; UTF-8, UTF-16 with a byte
order mark, Windows-1252, or UTF-8 with a few Windows-1252 lines), TSV, Parquet, Excel,
SPSS (``.sav``/``.zsav``) and Stata (``.dta``). The format comes from the file
extension; the separator and the decimal mark of text files are sniffed unless given.

Only regular files up to :data:`MAX_FILE_BYTES` are read: a FIFO or a device (a link
to ``/dev/zero``) would block or never end. SPSS and Stata files keep what they know:
dates become datetime64, fully labelled codes categoricals, variable labels go to
``df.attrs["labels"]`` (which :func:`~pylme_alliance.panel.prepare.prepare` uses as
display names), and user-missing / extended missing codes become missing.
"""
from __future__ import annotations

import csv
import io
import os
import re
import stat
import warnings
from pathlib import Path
from typing import Any

import pandas as pd

from .errors import PylmeError, PylmeWarning, user_stacklevel

#: extension -> reader name; the error for an unknown extension lists these.
FORMATS: dict[str, str] = {
    ".csv": "text", ".txt": "text", ".tsv": "text", ".tab": "text",
    ".parquet": "parquet", ".pq": "parquet",
    ".xlsx": "excel", ".xlsm": "excel", ".xls": "excel",
    ".sav": "spss", ".zsav": "spss",
    ".dta": "stata",
}
#: Files larger than this are refused before reading (``read_data(max_bytes=...)``
#: raises or lowers it): a session table of a trial is megabytes, and a text file is
#: held in memory whole while it is decoded.
MAX_FILE_BYTES = 2 * 1024 ** 3

_BOMS = (("utf-32", (b"\xff\xfe\x00\x00", b"\x00\x00\xfe\xff")),
         ("utf-16", (b"\xff\xfe", b"\xfe\xff")))
# "5,3" or "-0,25" as a whole field: a number written with a decimal comma.
_DECIMAL_COMMA = re.compile(r"^\s*[-+]?\d+,\d+\s*$")
_FORMAT_NAMES = {"text": "text", "parquet": "Parquet", "excel": "Excel", "spss": "SPSS", "stata": "Stata"}


def read_data(path: str | Path, *, sep: str | None = None, decimal: str | None = None,
              encoding: str | None = None, sheet: str | int = 0,
              max_bytes: int = MAX_FILE_BYTES) -> pd.DataFrame:
    """Read a data file into a DataFrame, choosing the reader by extension.

    Parameters
    ----------
    path : str or Path
        ``.csv``/``.txt`` (separator sniffed), ``.tsv``/``.tab``, ``.parquet``,
        ``.xlsx``/``.xls``, ``.sav``/``.zsav`` (SPSS) or ``.dta`` (Stata). Must be a
        regular file (a symlink to one is followed).
    sep : str, optional
        Field separator of a text file (default: sniffed among ``,`` ``;`` tab ``|``).
    decimal : str, optional
        Decimal mark of a text file (default: ``,`` when the separator is ``;`` and
        the fields look like ``5,3``; else ``.``).
    encoding : str, optional
        Text encoding (default: a UTF-16/32 byte order mark, else UTF-8; a line that
        is not UTF-8 is read as Windows-1252, with a warning naming the lines when
        the rest of the file is UTF-8).
    sheet : str or int
        Excel sheet name or position.
    max_bytes : int
        Larger files are refused before reading (default :data:`MAX_FILE_BYTES`).

    Returns
    -------
    pandas.DataFrame
        SPSS/Stata: variables whose every value carries a value label come back as
        categoricals (labels in code order); dates and date-times as datetime64;
        SPSS user-missing values and Stata/SAS extended missing codes (``.a``-``.z``)
        as missing; variable labels in ``df.attrs["labels"]`` ({column: label}).
        A variable labelled on only some of its values stays numeric, with a
        :class:`~pylme_alliance.errors.PylmeWarning` naming it.

    Raises
    ------
    FileNotFoundError
        When the file does not exist.
    PylmeError
        For a directory or another non-regular file (FIFO, device, socket), a file
        over ``max_bytes``, an unknown extension, a header naming a column twice, or
        a file its reader cannot parse (truncated or damaged).
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no such file: {path}")
    if path.is_dir():
        raise PylmeError(f"{path} is a directory, not a data file")
    suffix = path.suffix.lower()
    kind = FORMATS.get(suffix)
    if kind is None:
        known = ", ".join(sorted(FORMATS))
        raise PylmeError(f"cannot tell the format of {path.name!r} from its extension "
                         f"{suffix or '(none)'!r}; supported: {known}")
    _check_regular(path, os.stat(path), max_bytes)
    try:
        if kind == "text":
            return _read_text(path, sep=sep, decimal=decimal, encoding=encoding, max_bytes=max_bytes)
        if kind == "parquet":
            return pd.read_parquet(path)
        if kind == "excel":
            return _read_excel(path, sheet)
        if kind == "spss":
            return _read_spss(path)
        return _read_stata(path)
    except ImportError as exc:
        raise PylmeError(f"reading {path.name} needs an optional package ({exc}); "
                         "install it with: pip install 'pylme-alliance[io]'") from None
    except (ValueError, OSError, IndexError, OverflowError, MemoryError, pd.errors.ParserError,
            pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        # IndexError/OverflowError/MemoryError: a damaged header (a .dta declaring 2**40 rows)
        raise PylmeError(f"cannot read {path.name} as {_FORMAT_NAMES[kind]}: "
                         f"{' '.join(str(exc).split()) or type(exc).__name__}") from None


def _check_regular(path: Path, info: os.stat_result, max_bytes: int) -> None:
    """Refuse a FIFO, a device or a socket (reading would block or never end) and a file
    over ``max_bytes``, before opening it."""
    if not stat.S_ISREG(info.st_mode):
        what = ("a FIFO (named pipe)" if stat.S_ISFIFO(info.st_mode) else
                "a device" if stat.S_ISCHR(info.st_mode) or stat.S_ISBLK(info.st_mode) else
                "a socket" if stat.S_ISSOCK(info.st_mode) else "not a regular file")
        raise PylmeError(f"{path} is {what}; read_data reads regular files only")
    if info.st_size > max_bytes:
        raise PylmeError(f"{path.name} is {info.st_size:,} bytes, over the limit of {max_bytes:,} "
                         "(read_data(max_bytes=...), default MAX_FILE_BYTES)")


def _read_bytes(path: Path, max_bytes: int) -> bytes:
    # O_NONBLOCK: should the path have become a FIFO since it was checked, opening does
    # not wait for a writer, and fstat below refuses it
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    with os.fdopen(fd, "rb") as handle:
        _check_regular(path, os.fstat(handle.fileno()), max_bytes)
        raw = handle.read(max_bytes + 1)
    if len(raw) > max_bytes:
        raise PylmeError(f"{path.name} is over the limit of {max_bytes:,} bytes "
                         "(read_data(max_bytes=...), default MAX_FILE_BYTES)")
    return raw


def _decode(raw: bytes, name: str, encoding: str | None) -> str:
    """The file's text: the given encoding; a UTF-16/32 byte order mark; UTF-8; or, line
    by line, UTF-8 where a line is UTF-8 and Windows-1252 where it is not."""
    if encoding:
        try:
            return raw.decode(encoding)
        except LookupError:
            raise PylmeError(f"unknown text encoding {encoding!r}") from None
        except UnicodeDecodeError as exc:
            line = raw.count(b"\n", 0, exc.start) + 1
            raise PylmeError(f"{name} is not {encoding} text (line {line}: {exc.reason})") from None
    for codec, marks in _BOMS:
        if raw.startswith(marks):
            try:
                return raw.decode(codec)
            except UnicodeDecodeError as exc:
                raise PylmeError(f"{name} starts with a {codec.upper()} byte order mark but is not "
                                 f"{codec.upper()} text ({exc.reason}); pass encoding=") from None
    if b"\x00" in raw:
        raise PylmeError(f"{name} holds binary data (NUL bytes), not text; "
                         "is it an SPSS/Stata/Excel file with the wrong extension, or UTF-16 text "
                         "without a byte order mark (then pass encoding='utf-16-le')?")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        pass
    return _decode_lines(raw, name)


def _decode_lines(raw: bytes, name: str) -> str:
    # A file that is not UTF-8 as a whole: each line that is UTF-8 stays UTF-8 (a lab
    # file exported as UTF-8 and edited in Excel on Windows has both kinds), the rest is
    # Windows-1252, the one 8-bit encoding of the Spanish and German exports we see.
    parts: list[str] = []
    legacy: list[int] = []
    utf8_non_ascii = False
    for number, line in enumerate(raw.splitlines(keepends=True), start=1):
        if line.isascii():
            parts.append(line.decode("ascii"))
            continue
        try:
            parts.append(line.decode("utf-8-sig" if number == 1 else "utf-8"))
            utf8_non_ascii = True
        except UnicodeDecodeError:
            try:
                parts.append(line.decode("cp1252"))
            except UnicodeDecodeError:
                raise PylmeError(f"line {number} of {name} is neither UTF-8 nor Windows-1252 text; "
                                 "pass encoding=") from None
            legacy.append(number)
    if utf8_non_ascii:
        shown = ", ".join(map(str, legacy[:10])) + (f" and {len(legacy) - 10} more" if len(legacy) > 10 else "")
        warnings.warn(f"{name} is UTF-8 except line(s) {shown}, which were read as Windows-1252; "
                      "check those lines' accented letters, or pass encoding=", PylmeWarning,
                      stacklevel=user_stacklevel())
    return "".join(parts)


def _sniff_sep(head: str, suffix: str) -> str:
    if suffix in (".tsv", ".tab"):
        return "\t"
    lines = [line for line in head[:65536].splitlines()[:50] if line.strip()]
    if not lines:
        return ","
    try:
        return csv.Sniffer().sniff("\n".join(lines), delimiters=",;\t|").delimiter
    except csv.Error:
        # one column, or a file the sniffer finds ambiguous: the most frequent candidate
        counts = {d: lines[0].count(d) for d in ",;\t|"}
        best = max(counts, key=counts.get)
        return best if counts[best] else ","


def _sniff_decimal(head: str, sep: str) -> str:
    if sep == ",":
        return "."
    rows = list(csv.reader(head[:65536].splitlines()[1:50], delimiter=sep))
    fields = [f for row in rows for f in row]
    return "," if any(_DECIMAL_COMMA.match(f) for f in fields) else "."


def _check_header(names: list[Any], file_name: str) -> None:
    """Refuse a header naming a column twice: pandas would call the second one
    ``alliance.1`` and the analysis would use one of them without a word."""
    seen: dict[str, int] = {}
    for position, value in enumerate(names, start=1):
        if value is None or (isinstance(value, float) and value != value) or not str(value).strip():
            continue  # blank header cells become "Unnamed: k", never a clash
        key = str(value)
        if key in seen:
            raise PylmeError(f"the header of {file_name} names column {key!r} twice (columns {seen[key]} and "
                             f"{position}); rename one of them in the file so each column has its own name")
        seen[key] = position


def _read_text(path: Path, *, sep: str | None, decimal: str | None, encoding: str | None,
               max_bytes: int) -> pd.DataFrame:
    text = _decode(_read_bytes(path, max_bytes), path.name, encoding)
    sep = sep if sep is not None else _sniff_sep(text, path.suffix.lower())
    decimal = decimal if decimal is not None else _sniff_decimal(text, sep)
    if sep == decimal:
        raise PylmeError(f"the separator and the decimal mark of {path.name} cannot both be {sep!r}")
    header = pd.read_csv(io.StringIO(text), sep=sep, header=None, nrows=1, dtype=str)
    _check_header(header.iloc[0].tolist() if len(header) else [], path.name)
    return pd.read_csv(io.StringIO(text), sep=sep, decimal=decimal)


def _read_excel(path: Path, sheet: str | int) -> pd.DataFrame:
    header = pd.read_excel(path, sheet_name=sheet, header=None, nrows=1, dtype=str)
    _check_header(header.iloc[0].tolist() if len(header) else [], path.name)
    return pd.read_excel(path, sheet_name=sheet)


def _readstat(read: Any, path: Path, kind: str, **options: Any) -> tuple[pd.DataFrame, Any]:
    """Call a pyreadstat reader; its own errors on a damaged file become a sentence."""
    import pyreadstat

    try:
        return read(str(path), apply_value_formats=False, dates_as_pandas_datetime=True, **options)
    except (pyreadstat.ReadstatError, pyreadstat.PyreadstatError) as exc:
        raise PylmeError(f"cannot read {path.name} as {kind}: the file is truncated, damaged or not a "
                         f"valid {kind} file ({' '.join(str(exc).split())})") from None
    except (IndexError, OverflowError, MemoryError) as exc:
        # a damaged header: a .dta declaring 2**40 rows ends in IndexError inside pyreadstat
        raise PylmeError(f"cannot read {path.name} as {kind}: its header does not match its contents "
                         f"(a truncated or damaged file; {type(exc).__name__} while reading)") from None


def _read_spss(path: Path) -> pd.DataFrame:
    import pyreadstat

    # user_missing=False: values declared missing in SPSS (e.g. -99 "not rated") are NaN
    data, meta = _readstat(pyreadstat.read_sav, path, "SPSS", user_missing=False)
    return _finish(data, meta, path.name)


def _read_stata(path: Path) -> pd.DataFrame:
    try:
        import pyreadstat
    except ImportError:
        with pd.io.stata.StataReader(path, convert_categoricals=True) as reader:
            data = reader.read()
            data.attrs["labels"] = {k: v for k, v in reader.variable_labels().items() if v}
        return data
    # extended missing values (.a-.z) are NaN unless user_missing=True
    data, meta = _readstat(pyreadstat.read_dta, path, "Stata")
    return _finish(data, meta, path.name)


def _finish(data: pd.DataFrame, meta: Any, file_name: str) -> pd.DataFrame:
    out = _apply_labels(data, meta.variable_value_labels, getattr(meta, "variable_measure", None) or {},
                        file_name)
    labels = getattr(meta, "column_names_to_labels", None) or {}
    out.attrs["labels"] = {column: " ".join(str(label).split()) for column, label in labels.items()
                           if column in out.columns and label is not None and str(label).strip()}
    return out


def _apply_labels(data: pd.DataFrame, labels: dict[str, dict], measures: dict[str, str],
                  file_name: str) -> pd.DataFrame:
    """Labelled variables become categoricals, but only when every value has a label.

    A scale scored 0-4 with labels only on its end points stays numeric: turning the
    unlabelled values into missing or into text would change the data. A variable
    labelled on some values that are not just the end points (or that SPSS calls
    nominal) stays numeric too, with a warning: used as a moderator it would be a
    continuous score.
    """
    out = data.copy()
    partial: list[str] = []
    for column, mapping in labels.items():
        if column not in out or not mapping:
            continue
        observed = set(out[column].dropna().unique())
        if not observed <= set(mapping):
            if _looks_nominal(observed, set(mapping), measures.get(column, "unknown")):
                unlabelled = ", ".join(f"{v:g}" if isinstance(v, float) else repr(v)
                                       for v in sorted(observed - set(mapping))[:5])
                partial.append(f"{column!r} (no label for {unlabelled})")
            continue
        names = [str(mapping[code]) for code in sorted(mapping)]
        if len(set(names)) != len(names):
            continue  # two codes share a label: keep the codes
        codes = {code: str(mapping[code]) for code in mapping}
        out[column] = pd.Categorical(out[column].map(codes), categories=names)
    if partial:
        warnings.warn(
            f"{file_name}: value labels cover only some values of {'; '.join(partial)}. These columns "
            "stay numeric, so a moderator made of one would be treated as a continuous score. If one "
            "is a category, label every code in the file, or convert it before prepare(): "
            "data[column] = data[column].astype('category').", PylmeWarning, stacklevel=user_stacklevel())
    return out


def _looks_nominal(observed: set, labelled: set, measure: str) -> bool:
    """Whether a partly labelled variable looks like a category code rather than a
    scale whose anchors carry labels ("0 = never ... 4 = always")."""
    if measure == "nominal":
        return True
    if measure in ("scale", "ordinal"):
        return False
    values = observed | labelled
    try:
        ends = {min(values), max(values)}
    except TypeError:  # labels on text values: nothing to compare
        return True
    return not labelled <= ends
