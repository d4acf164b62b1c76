"""ACME failures as :class:`AcmeError`: the CA's problem document (type, detail, HTTP status) or a plain reason."""

from __future__ import annotations

import re
from contextlib import contextmanager
from typing import Iterator

import josepy as jose
import requests
from acme import errors as acme_errors
from acme import messages

from ..errors import SvcsslError
from .dns01 import DNS01Error
from .http01 import HTTP01Error

ERROR_PREFIX = "urn:ietf:params:acme:error:"
TRANSIENT = frozenset({"rateLimited", "serverInternal", "badNonce"})


class AcmeError(SvcsslError):
    """An ACME operation failed; ``problem_type``/``detail``/``status`` come from the CA's problem document.

    ``problem_type`` is e.g. ``urn:ietf:params:acme:error:connection`` and ``None`` when the failure
    was not reported by the CA (no connection, timeout, local listener could not start).
    """

    def __init__(self, message: str, *, problem_type: str | None = None, detail: str = "",
                 status: int | None = None):
        super().__init__(message)
        self.problem_type, self.detail, self.status = problem_type, detail or message, status

    @property
    def code(self) -> str | None:
        """The short ACME error code (``connection``, ``rateLimited``, ...) when the type is an ACME one."""
        if self.problem_type and self.problem_type.startswith(ERROR_PREFIX):
            return self.problem_type[len(ERROR_PREFIX):]
        return None


class OrderFailed(AcmeError):
    """The order itself is dead at the CA (invalid): its pending state must go."""


def problem_error(what: str, problem_type: str | None, detail: str | None, status: int | None,
                  cls: type[AcmeError] = AcmeError) -> AcmeError:
    detail = (detail or "").strip() or "no detail given"
    label = (problem_type or "unknown problem").removeprefix(ERROR_PREFIX)
    return cls(f"{what}: {detail} ({label})", problem_type=problem_type, detail=detail, status=status)


def _short_reason(exc: BaseException) -> str:
    text = str(exc)
    for pattern in (r"certificate verify failed: ([^(')\"]+)", r"\[Errno -?\d+\] ([^'\")]+)",
                    r"(Read timed out|Connection refused|Name or service not known)"):
        if found := re.search(pattern, text):
            return found.group(1).strip()
    return text if len(text) <= 300 else text[:297] + "..."


@contextmanager
def translated(what: str, net: object = None, server: str = "") -> Iterator[None]:
    """Turn an ``acme``/``requests``/``josepy`` error into an :class:`AcmeError` about ``what``.

    ``net.last_status``, where given, is the HTTP status of the response that carried a problem document.
    """
    try:
        yield
    except AcmeError:
        raise
    except (HTTP01Error, DNS01Error) as exc:
        raise AcmeError(f"{what}: {exc.message}", detail=exc.message) from exc
    except messages.Error as exc:
        raise problem_error(what, exc.typ, exc.detail, getattr(net, "last_status", None)) from exc
    except acme_errors.TimeoutError as exc:
        raise AcmeError(f"{what}: gave up after the time limit; the order is kept and will be resumed") from exc
    except acme_errors.ConflictError as exc:
        raise AcmeError(f"{what}: the ACME server reported a conflict ({exc.location})",
                        status=getattr(net, "last_status", None)) from exc
    except acme_errors.Error as exc:
        raise AcmeError(f"{what}: {str(exc) or type(exc).__name__}", status=getattr(net, "last_status", None)) from exc
    except requests.exceptions.SSLError as exc:
        raise AcmeError(f"{what}: the TLS certificate of the ACME server {server} could not be verified "
                        f"({_short_reason(exc)}); configure the CA file that signed it") from exc
    except requests.exceptions.Timeout as exc:
        raise AcmeError(f"{what}: the ACME server {server} did not answer in time") from exc
    except requests.exceptions.ConnectionError as exc:
        raise AcmeError(f"{what}: cannot connect to the ACME server {server} ({_short_reason(exc)})") from exc
    except requests.exceptions.RequestException as exc:
        raise AcmeError(f"{what}: {_short_reason(exc)}") from exc
    except jose.errors.Error as exc:
        raise AcmeError(f"{what}: the ACME server sent a response svcssl cannot read ({exc})") from exc
