"""Long work (scoring a study, building a bank) in a thread, with its progress readable meanwhile.

The scoring and bank code report progress through the project's tqdm bars
(:mod:`adaptclip_med.utils.progress`) and take no callback.  Rather than duplicate their loops to
get one, the page runs the work in a thread and reads the live bars tqdm keeps in its class-level
registry, picking its own bars by their description (which names the scan being processed).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any, Callable, Generic, TypeVar

from tqdm.std import tqdm

T = TypeVar("T")


@dataclass(frozen=True)
class BarState:
    description: str
    done: int
    total: int | None

    @property
    def fraction(self) -> float:
        return min(1.0, self.done / self.total) if self.total else 0.0


class BackgroundTask(Generic[T]):
    """``fn()`` running in a daemon thread; :meth:`bars` shows the progress bars matching ``markers``."""

    def __init__(self, fn: Callable[[], T], markers: tuple[str, ...]) -> None:
        self._fn = fn
        self._markers = markers
        self._result: Any = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="adaptclip-review-task", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            self._result = self._fn()
        except BaseException as exc:  # re-raised in the page's thread by result()
            self._error = exc

    def done(self) -> bool:
        return not self._thread.is_alive()

    def wait(self, seconds: float) -> bool:
        self._thread.join(seconds)
        return self.done()

    def bars(self) -> list[BarState]:
        with tqdm.get_lock():
            live = list(tqdm._instances)  # type: ignore[attr-defined]
        return [BarState(str(bar.desc), int(bar.n), bar.total) for bar in live
                if any(marker in str(bar.desc) for marker in self._markers)]

    def result(self) -> T:
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self._result
