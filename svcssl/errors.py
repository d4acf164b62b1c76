"""The exception hierarchy.

Every message here is meant for a person and never contains key material.
``InputError`` is what the user can fix; it is always raised before anything is
written. ``DeployError`` reports the stage that failed and whether the previous
files were put back; ``AcmeError`` carries the ACME CA's problem document.
"""

from __future__ import annotations

ECHO_LIMIT = 64  # characters of a user's input a message quotes back


def excerpt(value: object, limit: int = ECHO_LIMIT) -> str:
    """What a message may quote of a user's input: at most ``limit`` characters, control characters escaped."""
    text = str(value)
    short = text[:limit]
    short = "".join(c if c.isprintable() else repr(c)[1:-1] for c in short)
    return short + "…" if len(text) > limit else short



class SvcsslError(Exception):
    """Base of every error svcssl reports to a user."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:  # pragma: no cover - trivial
        return self.message


class ConfigError(SvcsslError):
    """The configuration file is wrong (unknown key, wrong type, bad value)."""


class InputError(SvcsslError):
    """Input the user can correct. ``field`` names the form/API field at fault."""

    field: str | None = None

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        if field is not None:
            self.field = field


class UnknownServiceError(InputError):
    field = "service"


class InputTooLargeError(InputError):
    pass


class CertificateParseError(InputError):
    field = "crt"


class KeyParseError(InputError):
    field = "key"


class PasswordError(InputError):
    field = "password"


class KeyMismatchError(InputError):
    field = "key"


class ChainError(InputError):
    field = "cabundle"


class CertificateValidityError(InputError):
    """Expired or not yet valid."""

    field = "crt"


class UnsupportedInputError(InputError):
    """The service does not accept this kind of input (e.g. PEM for mail_apns)."""

    field = "crt"


class UntrustedError(InputError):
    """Clients will not trust the certificate (no path to a trust anchor): installed only when confirmed."""

    field = "allow_untrusted"


class DaneMismatchError(InputError):
    """The certificate's key matches none of the validated TLSA records of a service: installed only when confirmed."""

    field = "allow_dane_mismatch"


class NothingToRollBackError(InputError):
    field = "service"


class AccessDeniedError(SvcsslError):
    """The user may not see this (a reseller asking for Apache, or for an account it does not own)."""


class StoreError(SvcsslError):
    """The state directory is unusable or inconsistent."""


class LockTimeoutError(SvcsslError):
    """Another process holds a lock for too long."""


class DeployError(SvcsslError):
    """A deployment failed at ``stage``; ``rolled_back`` tells whether the old files are back."""

    def __init__(self, message: str, *, service: str, stage: str, rolled_back: bool, output: str = ""):
        super().__init__(message)
        self.service = service
        self.stage = stage
        self.rolled_back = rolled_back
        self.output = output


class AcmeError(SvcsslError):
    """An ACME operation failed; ``problem_type``/``detail``/``status`` come from the CA's problem document.

    ``problem_type`` (e.g. ``urn:ietf:params:acme:error:connection``) is ``None`` when the CA reported
    nothing (no connection, timeout, local listener or DNS hook could not publish the challenge).
    """

    PREFIX = "urn:ietf:params:acme:error:"
    retry_after = None  # datetime (aware UTC) from the CA's Retry-After header, when it sent one

    def __init__(self, message: str, *, problem_type: str | None = None, detail: str = "",
                 status: int | None = None):
        super().__init__(message)
        self.problem_type, self.detail, self.status = problem_type, detail or message, status

    @property
    def code(self) -> str | None:
        """The short ACME error code (``connection``, ``rateLimited``, ...) when the type is an ACME one."""
        acme_type = self.problem_type and self.problem_type.startswith(self.PREFIX)
        return self.problem_type[len(self.PREFIX):] if acme_type else None


class FileSystemError(SvcsslError):
    """A file system cannot take a write (full, over quota, read-only, an immutable file, failing): one sentence
    that names it and says what to do. Raised before anything is written where it can be foreseen."""

    def __init__(self, message: str, *, path: str, cause: str):
        super().__init__(message)
        self.path, self.cause = path, cause  # cause: full | quota | read-only | immutable | io


class DamagedDatabaseError(StoreError):
    """The state database cannot be read (malformed, truncated, not a database)."""

    def __init__(self, message: str, *, path: str):
        super().__init__(message)
        self.path = path
