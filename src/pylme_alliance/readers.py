"""read_data(): session files as psychology labs keep them, read into pandas.

CSV (comma or semicolon separated, decimal point or comma, UTF-8 or Windows-1252),
TSV, Parquet, Excel, SPSS (``.sav``/``.zsav``, value labels become categories) and
Stata (``.dta``). The format comes from the file extension; the separator and the
decimal mark of text files are sniffed unless given.
"""
from __future__ import annotations

import csv
import re
from pathlib import Path

import pandas as pd

from .errors import PylmeError

#: extension -> reader name; the error for an unknown extension lists these.
FORMATS: dict[str, str] = {
    ".csv": "text", ".txt": "text", ".tsv": "text", ".tab": "text",
    ".parquet": "parquet", ".pq": "parquet",
    ".xlsx": "excel", ".xlsm": "excel", ".xls": "excel",
    ".sav": "spss", ".zsav": "spss",
    ".dta": "stata",
}

# Windows-1252 covers the Spanish and German exports that are not UTF-8.
_ENCODINGS = ("utf-8-sig", "cp1252")
# the encoding is checked on the whole file up to this size (a cp1252 "ñ" may first
# appear late), on its head beyond it
_CHECK_BYTES = 256 * 1024 * 1024
# "5,3" or "-0,25" as a whole field: a number written with a decimal comma.
_DECIMAL_COMMA = re.compile(r"^\s*[-+]?\d+,\d+\s*$")


def read_data(path: str | Path, *, sep: str | None = None, decimal: str | None = None,
              encoding: str | None = None, sheet: str | int = 0) -> pd.DataFrame:
    """Read a data file into a DataFrame, choosing the reader by extension.

    Parameters
    ----------
    path : str or Path
        ``.csv``/``.txt`` (separator sniffed), ``.tsv``/``.tab``, ``.parquet``,
        ``.xlsx``/``.xls``, ``.sav``/``.zsav`` (SPSS) or ``.dta`` (Stata).
    sep : str, optional
        Field separator of a text file (default: sniffed among ``,`` ``;`` tab ``|``).
    decimal : str, optional
        Decimal mark of a text file (default: ``,`` when the separator is ``;`` and
        the fields look like ``5,3``; else ``.``).
    encoding : str, optional
        Text encoding (default: UTF-8, falling back to Windows-1252).
    sheet : str or int
        Excel sheet name or position.

    Returns
    -------
    pandas.DataFrame
        SPSS variables whose every value carries a value label come back as
        categoricals (labels in code order); Stata value labels likewise.

    Raises
    ------
    FileNotFoundError
        When the file does not exist.
    PylmeError
        For a directory, an unknown extension, or a file its reader cannot parse.
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
    try:
        if kind == "text":
            return _read_text(path, sep=sep, decimal=decimal, encoding=encoding)
        if kind == "parquet":
            return pd.read_parquet(path)
        if kind == "excel":
            return pd.read_excel(path, sheet_name=sheet)
        if kind == "spss":
            return _read_spss(path)
        return _read_stata(path)
    except ImportError as exc:
        raise PylmeError(f"reading {path.name} needs an optional package ({exc}); "
                         "install it with: pip install 'pylme-alliance[io]'") from None
    except (ValueError, OSError, pd.errors.ParserError, pd.errors.EmptyDataError,
            UnicodeDecodeError) as exc:
        raise PylmeError(f"cannot read {path.name} as {kind}: {' '.join(str(exc).split())}") from None


def _decode_head(path: Path, encoding: str | None) -> tuple[str, str]:
    with path.open("rb") as handle:
        raw = handle.read(_CHECK_BYTES)
    if b"\x00" in raw:
        raise PylmeError(f"{path.name} holds binary data (NUL bytes), not text; "
                         "is it an SPSS/Stata/Excel file with the wrong extension?")
    for candidate in ((encoding,) if encoding else _ENCODINGS):
        try:
            return raw.decode(candidate), candidate
        except UnicodeDecodeError as exc:
            # a multi-byte character cut at the sniff boundary is not an encoding error
            if len(raw) == _CHECK_BYTES and exc.start >= len(raw) - 3:
                return raw[:exc.start].decode(candidate), candidate
            continue
        except LookupError:
            raise PylmeError(f"unknown text encoding {encoding!r}") from None
    raise PylmeError(f"{path.name} is neither UTF-8 nor Windows-1252 text; pass encoding=")


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


def _read_text(path: Path, *, sep: str | None, decimal: str | None, encoding: str | None) -> pd.DataFrame:
    head, used_encoding = _decode_head(path, encoding)
    sep = sep if sep is not None else _sniff_sep(head, path.suffix.lower())
    decimal = decimal if decimal is not None else _sniff_decimal(head, sep)
    if sep == decimal:
        raise PylmeError(f"the separator and the decimal mark of {path.name} cannot both be {sep!r}")
    return pd.read_csv(path, sep=sep, decimal=decimal, encoding=used_encoding)


def _read_spss(path: Path) -> pd.DataFrame:
    import pyreadstat

    reader = pyreadstat.read_sav
    data, meta = reader(str(path), apply_value_formats=False, user_missing=False)
    return _apply_labels(data, meta.variable_value_labels)


def _read_stata(path: Path) -> pd.DataFrame:
    try:
        import pyreadstat
    except ImportError:
        return pd.read_stata(path, convert_categoricals=True)
    data, meta = pyreadstat.read_dta(str(path), apply_value_formats=False)
    return _apply_labels(data, meta.variable_value_labels)


def _apply_labels(data: pd.DataFrame, labels: dict[str, dict]) -> pd.DataFrame:
    """Labelled variables become categoricals, but only when every value has a label.

    A scale scored 0-4 with labels only on its end points stays numeric: turning the
    unlabelled values into missing or into text would change the data.
    """
    out = data.copy()
    for column, mapping in labels.items():
        if column not in out or not mapping:
            continue
        values = out[column].dropna()
        if not set(values.unique()) <= set(mapping):
            continue
        names = [str(mapping[code]) for code in sorted(mapping)]
        if len(set(names)) != len(names):
            continue  # two codes share a label: keep the codes
        codes = {code: str(mapping[code]) for code in mapping}
        out[column] = pd.Categorical(out[column].map(codes), categories=names)
    return out
