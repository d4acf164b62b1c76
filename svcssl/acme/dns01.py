"""DNS-01 through the administrator's hook (argv): ``HOOK… add NAME VALUE`` before, ``HOOK… remove NAME VALUE`` after.
The hook publishes the TXT record NAME (e.g. ``_acme-challenge.mail.example.com``) and returns, exit 0, once the CA
can see it (waiting for propagation is the hook's business). Its output is shown when it fails."""

from __future__ import annotations

import logging
import subprocess
from contextlib import contextmanager
from typing import Iterator, Mapping

from ..errors import AcmeError

log = logging.getLogger(__name__)


class DNS01Error(AcmeError):
    """The hook command failed; nothing was answered."""


def _run(argv: tuple[str, ...], timeout: float) -> tuple[int, str]:
    try:
        proc = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              timeout=timeout, check=False)
    except FileNotFoundError:
        return 127, f"command not found: {argv[0]}"
    except subprocess.TimeoutExpired:
        return 124, f"timed out after {timeout:g} s"
    return proc.returncode, proc.stdout.decode("utf-8", "replace")[:2000].strip()


@contextmanager
def published(hook: tuple[str, ...], records: Mapping[str, str], timeout: float = 300.0) -> Iterator[None]:
    """Publish every TXT record through the hook; remove them afterwards (even when validation failed)."""
    added: list[tuple[str, str]] = []
    try:
        for name, value in records.items():
            code, output = _run((*hook, "add", name, value), timeout)
            if code != 0:
                raise DNS01Error(f"the DNS-01 hook could not add the TXT record {name} (exit {code})"
                                 + (f": {output}" if output else ""))
            added.append((name, value))
            log.info("DNS-01: TXT record %s published by the hook", name)
        yield
    finally:
        for name, value in added:
            code, output = _run((*hook, "remove", name, value), timeout)
            if code != 0:
                log.warning("DNS-01: the hook could not remove %s (exit %d): %s", name, code, output)
