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

ERROR_PREFIX = "urn:ietf:params:acme:error:"
TRANSIENT = frozenset({"rateLimited", "serverInternal", "badNonce"})
_REASON = re.compile(r"certificate verify failed: ([^(')\"]+)|\[Errno -?\d+\] ([^'\")]+)|"
                     r"(Read timed out|Connection refused|Name or service not known)")


class AcmeError(SvcsslError):
    """An ACME operation failed; ``problem_type``/``detail``/``status`` come from the CA's problem document.

    ``problem_type`` (e.g. ``urn:ietf:params:acme:error:connection``) is ``None`` when the CA reported
    nothing (no connection, timeout, local listener or hook could not publish the challenge).
    """

    def __init__(self, message: str, *, problem_type: str | None = None, detail: str = "",
                 status: int | None = None):
        super().__init__(message)
        self.problem_type, self.detail, self.status = problem_type, detail or message, status

    @property
    def code(self) -> str | None:
        """The short ACME error code (``connection``, ``rateLimited``, ...) when the type is an ACME one."""
        acme_type = self.problem_type and self.problem_type.startswith(ERROR_PREFIX)
        return self.problem_type[len(ERROR_PREFIX):] if acme_type else None


class OrderFailed(AcmeError):
    """The order itself is dead at the CA (invalid): its pending state must go."""


def problem_error(what: str, problem_type: str | None, detail: str | None, status: int | None,
                  cls: type[AcmeError] = AcmeError) -> AcmeError:
    detail = (detail or "").strip() or "no detail given"
    label = (problem_type or "unknown problem").removeprefix(ERROR_PREFIX)
    return cls(f"{what}: {detail} ({label})", problem_type=problem_type, detail=detail, status=status)


def _short_reason(exc: BaseException) -> str:
    text = str(exc)
    found = re.search(_REASON, text)
    return next(part for part in found.groups() if part).strip() if found else text[:300]


@contextmanager
def translated(what: str, net: object = None, server: str = "") -> Iterator[None]:
    """Turn an ``acme``/``requests``/``josepy`` error into an :class:`AcmeError` about ``what``.

    ``net.last_status``, where given, is the HTTP status of the response that carried a problem document.
    """
    try:
        yield
    except messages.Error as exc:
        raise problem_error(what, exc.typ, exc.detail, getattr(net, "last_status", None)) from exc
    except acme_errors.TimeoutError as exc:
        raise AcmeError(f"{what}: gave up after the time limit; the order is kept and will be resumed") from exc
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
