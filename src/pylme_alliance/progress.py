"""Progress bars for batch work (tqdm when it is installed and wanted)."""
from __future__ import annotations

import sys
from typing import Any, Iterable, Iterator, TypeVar

T = TypeVar("T")


def progress_bar(items: Iterable[T], *, enabled: bool = True, desc: str = "", total: int | None = None) -> Iterator[T]:
    """Iterate ``items``, drawing a tqdm bar on stderr when ``enabled``."""
    if not enabled:
        yield from items
        return
    try:
        from tqdm.auto import tqdm
    except ImportError:  # progress is a nicety, never a requirement
        yield from items
        return
    yield from tqdm(items, desc=desc, total=total, leave=False)


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

    def __init__(self, total: int, *, enabled: bool = True, desc: str = "") -> None:
        self.total = total
        self.enabled = enabled
        self.desc = desc
        self.done = 0
        self.failed = 0
        self._bar: Any = None
        if enabled:
            try:
                from tqdm.auto import tqdm
            except ImportError:
                pass
            else:
                self._bar = tqdm(total=total, desc=desc, leave=False)

    def advance(self, *, failed: bool = False) -> None:
        """One item finished (``failed=True`` when it came back as a failure)."""
        self.done += 1
        self.failed += int(failed)
        if self._bar is not None:
            if failed:
                self._bar.set_postfix_str(f"{self.failed} failed", refresh=False)
            self._bar.update(1)

    def close(self) -> None:
        """Remove the bar; leave a summary line on stderr when something failed."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        if self.enabled and self.failed:
            print(f"{self.desc}: {self.done} of {self.total} done, {self.failed} failed", file=sys.stderr)

    def __enter__(self) -> "Counter":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
