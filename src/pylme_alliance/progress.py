"""Progress bars for batch work (tqdm when it is installed and wanted)."""
from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, TypeVar

T = TypeVar("T")


def _in_notebook() -> bool:
    """True inside a Jupyter kernel (where stderr is not a tty but a bar is wanted)."""
    if "ipykernel" not in sys.modules:
        return False
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and hasattr(shell, "kernel")


def _bar_class(stream: Any) -> Any:
    """tqdm's bar for this output, or None when the output is not interactive.

    tqdm's convention: a widget bar in a notebook (text bar when ipywidgets is missing,
    without tqdm's "IProgress not found" warning), a text bar on a terminal, nothing
    when output goes to a file or pipe.
    """
    notebook = _in_notebook() and stream is None
    isatty = getattr(stream if stream is not None else sys.stderr, "isatty", None)
    if not notebook and not (callable(isatty) and isatty()):
        return None
    try:
        from tqdm.std import tqdm as text_bar
    except ImportError:  # progress is a nicety, never a requirement
        return None
    if notebook:
        try:
            import ipywidgets  # noqa: F401
            from tqdm.notebook import tqdm as widget_bar
        except ImportError:
            # a text bar would print each refresh to stderr, which an exported notebook
            # keeps as lines of history; one display updated in place leaves nothing
            return LineBar
        return widget_bar
    return text_bar


def progress_bar(items: Iterable[T], *, enabled: bool = True, desc: str = "", total: int | None = None,
                 file: Any = None) -> Iterator[T]:
    """Iterate ``items``, drawing a bar named ``desc`` when ``enabled`` and the output
    (``file``, default stderr) is a terminal or a notebook."""
    bar = _bar_class(file) if enabled else None
    if bar is None:
        yield from items
        return
    yield from bar(items, desc=desc, total=total, leave=False, file=file)


def named_steps(items: Sequence[T], names: Sequence[str], *, enabled: bool = True, desc: str = "",
                file: Any = None) -> Iterator[T]:
    """Iterate ``items``, the bar naming each one as it runs (``names``, e.g. "lead 2 of 3")."""
    with Counter(len(items), enabled=enabled, desc=desc, file=file) as bar:
        for item, name in zip(items, names):
            bar.describe(name)
            yield item
            bar.advance()


class Counter:
    """A progress bar advanced by hand that counts failures.

    The bar shows ``N failed`` beside the count while it runs; when it closes with
    failures a one-line summary stays on stderr (the bar itself is not left behind), so
    a batch that lost jobs never ends looking clean.

    Parameters
    ----------
    total : int
        Number of items.
    enabled : bool
        Draw the bar and the summary (stderr).
    desc : str
        Label of the bar and the summary.
    """

    def __init__(self, total: int, *, enabled: bool = True, desc: str = "", file: Any = None) -> None:
        self.total = total
        self.enabled = enabled
        self.desc = desc
        self.done = 0
        self.failed = 0
        self.step = ""
        self._bar: Any = None
        bar = _bar_class(file) if enabled else None
        if bar is not None:
            self._bar = bar(total=total, desc=desc, leave=False, file=file)

    def advance(self, *, failed: bool = False) -> None:
        """One item finished (``failed=True`` when it came back as a failure)."""
        self.done += 1
        self.failed += int(failed)
        if self._bar is not None:
            if failed:
                self._bar.set_postfix_str(f"{self.failed} failed", refresh=False)
            self._bar.update(1)

    def describe(self, step: str) -> None:
        """Name the step in progress beside the bar's label ("analyze: lead 2 of 3")."""
        self.step = step
        if self._bar is not None:
            self._bar.set_description_str(f"{self.desc}: {step}" if self.desc else step, refresh=True)

    def close(self) -> None:
        """Remove the bar; leave a summary line on stderr when something failed."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        if self.enabled and self.failed:
            print(f"{self.desc}: {self.done} of {self.total} done, {self.failed} failed", file=sys.stderr)

    def __enter__(self) -> Counter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class LineBar:
    """A one-line progress display for a notebook without ipywidgets.

    One output of the cell (``IPython.display`` with a ``display_id``) is updated in
    place and cleared on close, so the saved notebook keeps no progress history. Takes
    the part of tqdm's interface that this module uses.
    """

    def __init__(self, iterable: Iterable[Any] | None = None, *, total: int | None = None, desc: str = "",
                 leave: bool = False, file: Any = None) -> None:
        from IPython.display import display

        self.iterable = iterable
        self.total = total if total is not None else (len(iterable) if hasattr(iterable, "__len__") else None)
        self.desc, self.postfix, self.n = desc, "", 0
        self._handle = display({"text/plain": self._line()}, raw=True, display_id=True)

    def _line(self) -> str:
        of = f"/{self.total}" if self.total is not None else ""
        return f"{self.desc}: {self.n}{of}" + (f" ({self.postfix})" if self.postfix else "")

    def _show(self) -> None:
        if self._handle is not None:
            self._handle.update({"text/plain": self._line()}, raw=True)

    def __iter__(self) -> Iterator[Any]:
        try:
            for item in self.iterable or ():
                yield item
                self.update(1)
        finally:
            self.close()

    def update(self, n: int = 1) -> None:
        self.n += n
        self._show()

    def set_postfix_str(self, text: str, refresh: bool = True) -> None:
        self.postfix = text
        if refresh:
            self._show()

    def set_description_str(self, text: str, refresh: bool = True) -> None:
        self.desc = text
        if refresh:
            self._show()

    def close(self) -> None:
        if self._handle is not None:
            self._handle.update({"text/plain": ""}, raw=True)
            self._handle = None
