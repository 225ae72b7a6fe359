"""Background thread that completes async-card transactions when they are due."""

from __future__ import annotations

import logging
import threading
from typing import Callable

logger = logging.getLogger("psp_simulator.settler")


class AsyncSettler:
    """Background thread completing async-card transactions when they are due."""

    def __init__(self, settle_due: Callable[[], int], interval: float = 0.05) -> None:
        self._settle_due = settle_due
        self._interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="psp-sim-settler", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self._settle_due()
            except Exception:
                logger.exception("async settlement failed")
