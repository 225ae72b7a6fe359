"""Object identifiers: ``<prefix>_<13 hex digits of microseconds><10 random chars>``.

The time part makes ids of the same kind sort in creation order, so ordering
by ``(created, id)`` is also creation order within one second.
"""

from __future__ import annotations

import secrets
import string
import threading
import time

_ALPHABET = string.ascii_lowercase + string.digits
_lock = threading.Lock()
_last_us = 0


def new_id(prefix: str) -> str:
    global _last_us
    with _lock:
        now_us = max(time.time_ns() // 1000, _last_us + 1)
        _last_us = now_us
    suffix = "".join(secrets.choice(_ALPHABET) for _ in range(10))
    return f"{prefix}_{now_us:013x}{suffix}"
