"""Progress bars for batch work (tqdm when it is installed and wanted)."""
from __future__ import annotations

from typing import Iterable, Iterator, TypeVar

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
