"""Where a report goes: safe file names, the output directory checked before the work,
and files written whole (temporary file + rename) or not at all.

Nothing here follows a symlink it is about to replace, and nothing is written until every
file of the report has been rendered and every check has passed. An output path with a
symlink among its components (the directory itself, or ``sub`` in ``base/sub/x``) is
refused, naming the symlink and its target: a planted link on a shared drive must not
redirect a report. New files get the mode the umask gives (0644 under umask 022), a
replaced file keeps its mode; ``overwrite=True`` replaces all of the files or none.
"""
from __future__ import annotations

import os
import re
import stat
import tempfile
import unicodedata
from collections.abc import Iterable, Mapping
from pathlib import Path

from .errors import PylmeError

# Windows refuses these as file names whatever the extension; a report is often opened there.
_RESERVED = {"con", "prn", "aux", "nul", *(f"com{i}" for i in range(1, 10)), *(f"lpt{i}" for i in range(1, 10))}
MAX_STEM = 80


def slug(name: object) -> str:
    """A file-name stem made from ``name``: ASCII letters, digits, ``_`` and ``-`` only,
    no leading dot, at most 80 characters, never empty or a reserved device name.

    >>> slug("simple_slopes_x/../../etc")
    'simple_slopes_x_etc'
    """
    text = unicodedata.normalize("NFKD", str(name)).encode("ascii", "ignore").decode("ascii")
    text = re.sub(r"[^A-Za-z0-9_-]+", "_", text)
    text = re.sub(r"_{2,}", "_", text).strip("_-")[:MAX_STEM].strip("_-")
    if not text:
        text = "x"
    if text.lower() in _RESERVED:
        text = f"{text}_"
    return text


def unique_slugs(names: Iterable[object], taken: Iterable[str] = ()) -> dict[object, str]:
    """One distinct :func:`slug` per name (``_2``, ``_3``... on a clash), clashes judged
    case-insensitively as on macOS and Windows file systems. ``taken`` stems are avoided."""
    used = {t.lower() for t in taken}
    out: dict[object, str] = {}
    for name in names:
        base = slug(name)
        stem, k = base, 1
        while stem.lower() in used:
            k += 1
            stem = f"{base[: MAX_STEM - len(str(k)) - 1]}_{k}"
        used.add(stem.lower())
        out[name] = stem
    return out


def check_directory(directory: str | Path, *, files: Iterable[str] = (), overwrite: bool = False) -> Path:
    """Check that a report can be written to ``directory`` (before any work is done).

    Refused with a :class:`PylmeError` naming the path: ``directory`` is an existing
    non-directory; a path component above it is a file; the nearest existing directory
    cannot be written (probed by creating and removing a temporary file there, so the
    answer is the file system's, not the permission bits'); one of ``files`` already
    exists in it and ``overwrite`` is false. Nothing is created.
    """
    path = Path(directory).expanduser()
    if "\x00" in str(path):
        raise PylmeError("the output path contains a NUL character")
    refuse_symlinks(path)
    if path.exists() and not path.is_dir():
        raise PylmeError(f"the output path {str(path)!r} exists and is not a directory")
    ancestor = path
    while not ancestor.exists():
        if ancestor.is_symlink():
            raise PylmeError(f"the output path {str(path)!r} goes through a broken symlink {str(ancestor)!r}")
        parent = ancestor.parent
        if parent == ancestor:
            break
        ancestor = parent
    if ancestor.exists() and not ancestor.is_dir():
        raise PylmeError(f"the output path {str(path)!r} is under {str(ancestor)!r}, which is a file, "
                         "not a directory")
    try:
        with tempfile.TemporaryFile(dir=ancestor, prefix=".pylme-write-test-"):
            pass
    except OSError as exc:
        raise PylmeError(f"cannot write the report under {str(ancestor)!r}: {exc.strerror or exc}") from None
    if path.is_dir():
        _refuse_non_files(path, files)
        if not overwrite:
            existing = [name for name in files if os.path.lexists(path / name)]
            if existing:
                raise PylmeError(_exists_message(path, existing))
    return path


def refuse_symlinks(path: Path) -> None:
    """Refuse ``path`` when it, or a component of it as written, is a symlink.

    A relative path is checked from the working directory down (the components the
    caller named); an absolute one from the root. Refusing is the one rule for every
    writer (Report.save, PowerResult.save, the CLI's --out): the message names the link
    and its target, so the caller can pass the real path if that is what they meant.
    """
    current = Path(path.anchor) if path.is_absolute() else Path()
    for part in path.parts[1:] if path.is_absolute() else path.parts:
        current = current / part
        if current.is_symlink():
            target = os.path.realpath(current)
            raise PylmeError(f"the output path {str(path)!r} goes through the symlink {str(current)!r} "
                             f"(to {target!r}); refusing to write through a symlink: give the real path, "
                             f"e.g. {str(Path(target) / path.relative_to(current))!r}, if that is meant")


def _refuse_non_files(path: Path, files: Iterable[str]) -> None:
    """An existing target that is a directory (or a device, FIFO, socket) cannot be
    replaced by a file: refused before anything is written, whatever ``overwrite``."""
    for name in files:
        target = path / name
        try:
            mode = os.lstat(target).st_mode
        except FileNotFoundError:
            continue
        if not (stat.S_ISREG(mode) or stat.S_ISLNK(mode)):
            kind = "a directory" if stat.S_ISDIR(mode) else "not a regular file"
            raise PylmeError(f"cannot write {str(target)!r}: it exists and is {kind}; move it away "
                             "(nothing was written)")


def _umask() -> int:
    """The process umask, read without changing it where Linux shows it (/proc)."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)  # elsewhere: read by setting it, and put it straight back
    os.umask(mask)
    return mask


def _file_mode(target: Path, umask: int) -> int:
    """The mode a written file gets: an existing regular file's own, else 0666 less the umask."""
    try:
        st = os.lstat(target)
    except FileNotFoundError:
        return 0o666 & ~umask
    if stat.S_ISREG(st.st_mode):
        return stat.S_IMODE(st.st_mode)
    return 0o666 & ~umask


def _exists_message(path: Path, existing: list[str]) -> str:
    shown = ", ".join(repr(str(path / n)) for n in existing[:5])
    more = f" and {len(existing) - 5} more" if len(existing) > 5 else ""
    return (f"the report would overwrite {shown}{more}; choose another directory or pass overwrite=True "
            "(CLI: --overwrite) to replace the report's own files")


def write_files(directory: str | Path, contents: Mapping[str, bytes], *, overwrite: bool = False) -> Path:
    """Write ``contents`` (file name -> bytes) into ``directory``, all or nothing.

    Every name must be a plain file name (no separator, no ``..``). Without ``overwrite``
    an existing file (or symlink) of the same name is an error raised before anything is
    written. Each file is written to a temporary file in the same directory and renamed
    into place with :func:`os.replace`, which replaces a symlink at the target instead of
    writing through it. On any error or interrupt the temporary files are removed; a
    directory this call created is removed again when nothing was written to it.
    """
    for name in contents:
        if not name or name in (".", "..") or "/" in name or "\\" in name or "\x00" in name:
            raise PylmeError(f"refusing to write the file name {name!r}: not a plain file name")
    path = check_directory(directory, files=contents, overwrite=overwrite)
    created = not path.exists()
    path.mkdir(parents=True, exist_ok=True)
    if not overwrite:  # again, now that the directory is certain: nothing is written if one exists
        existing = [name for name in contents if os.path.lexists(path / name)]
        if existing:
            raise PylmeError(_exists_message(path, existing))
    _refuse_non_files(path, contents)  # again: all or nothing even with overwrite
    temporary: dict[str, str] = {}
    renamed = 0
    umask = _umask()
    try:
        for name, data in contents.items():
            handle, tmp = tempfile.mkstemp(dir=path, prefix=f".{name}.", suffix=".tmp")
            temporary[name] = tmp
            with os.fdopen(handle, "wb") as stream:
                stream.write(data)
                # mkstemp makes 0600: colleagues on a shared drive could not read the report
                os.fchmod(stream.fileno(), _file_mode(path / name, umask))
        for name, tmp in temporary.items():
            os.replace(tmp, path / name)
            renamed += 1
    finally:
        for tmp in temporary.values():
            if os.path.lexists(tmp):
                os.unlink(tmp)
        if created and renamed == 0:
            try:
                path.rmdir()
            except OSError:
                pass
    return path
