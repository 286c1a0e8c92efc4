"""Running a simulator in the foreground until SIGTERM/SIGINT (what both ``serve`` do)."""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from gai_research.models.types import Model

S = TypeVar("S")


def run_until_stopped(
    model: Model,
    build: Callable[[], S],
    *,
    on_ready: Callable[[S], None] | None = None,
    stop: threading.Event | None = None,
) -> None:
    """Build the simulator (a context manager), run it until ``stop`` is set or SIGTERM/
    SIGINT arrives (handlers only from the main thread, restored after), then close
    ``model``. ``on_ready(simulator)`` is called once it listens."""
    stop = stop if stop is not None else threading.Event()
    previous: dict[int, Any] = {}
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGTERM, signal.SIGINT):
            previous[signum] = signal.signal(signum, lambda *_: stop.set())
    try:
        with build() as simulator:  # type: ignore[attr-defined]
            if on_ready is not None:
                on_ready(simulator)
            stop.wait()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        with contextlib.suppress(Exception):
            model.close()
