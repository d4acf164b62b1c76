"""The pure X.509 core: bytes in, frozen dataclasses out. No files, no clock, no Flask."""

from .bundle import Bundle, assemble_bundle  # noqa: F401
