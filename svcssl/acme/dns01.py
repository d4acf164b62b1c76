"""DNS-01 through an administrator's hook command: `HOOK… add NAME VALUE` before, `HOOK… remove NAME VALUE` after.

The hook is an argv list (never a shell string). It must publish the TXT record NAME (for example
``_acme-challenge.mail.example.com``) with VALUE and return once the record is visible to the CA
(waiting for propagation is the hook's business); exit 0 on success. Its output is shown when it fails.
"""

from __future__ import annotations

import logging
import subprocess
from typing import Mapping

from ..errors import SvcsslError

log = logging.getLogger(__name__)
OUTPUT_LIMIT = 2000


class DNS01Error(SvcsslError):
    """The hook command failed; nothing was answered."""


def _run(argv: tuple[str, ...], timeout: float) -> tuple[int, str]:
    try:
        proc = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              timeout=timeout, check=False)
    except FileNotFoundError:
        return 127, f"command not found: {argv[0]}"
    except subprocess.TimeoutExpired:
        return 124, f"timed out after {timeout:g} s"
    return proc.returncode, proc.stdout.decode("utf-8", "replace")[:OUTPUT_LIMIT].strip()


class HookResponder:
    """Publishes every record on entry and removes them on exit (even when validation failed)."""

    def __init__(self, hook: tuple[str, ...], records: Mapping[str, str], timeout: float = 300.0):
        self.hook = tuple(hook)
        self.records = dict(records)
        self.timeout = timeout
        self._added: list[tuple[str, str]] = []

    def __enter__(self) -> "HookResponder":
        for name, value in self.records.items():
            code, output = _run(self.hook + ("add", name, value), self.timeout)
            if code != 0:
                self.__exit__(None, None, None)
                raise DNS01Error(f"the DNS-01 hook could not add the TXT record {name} (exit {code})"
                                 + (f": {output}" if output else ""))
            self._added.append((name, value))
            log.info("DNS-01: TXT record %s published by the hook", name)
        return self

    def __exit__(self, *exc_info) -> None:
        for name, value in self._added:
            code, output = _run(self.hook + ("remove", name, value), self.timeout)
            if code != 0:
                log.warning("DNS-01: the hook could not remove %s (exit %d): %s", name, code, output)
        self._added.clear()
