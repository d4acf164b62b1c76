"""Poll for a condition instead of sleeping a fixed time."""

from __future__ import annotations

import time
from typing import Callable


def wait_until(condition: Callable[[], object], timeout: float = 10.0, interval: float = 0.05) -> bool:
    """Call ``condition`` until it is true or ``timeout`` seconds passed; OSError counts as not yet.

    Returns whether it came true: the caller asserts what it expects, with its own message.
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            if condition():
                return True
        except OSError:
            pass
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)
