"""svcssl keeps the TLS certificates of a server's own services valid."""

__version__ = "0.1.0"
