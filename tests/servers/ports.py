"""Loopback ports for the test servers: one free-port source for every fixture, so none hands out a port twice."""

from __future__ import annotations

import socket

HOST = "127.0.0.1"
_handed_out: set[int] = set()


def free_port(udp_too: bool = False) -> int:
    """A TCP port on 127.0.0.1 that is free now (and UDP too when asked), not handed out before."""
    for _ in range(100):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind((HOST, 0))
            port = sock.getsockname()[1]
        if port in _handed_out:
            continue
        if udp_too:
            try:
                with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as usock:
                    usock.bind((HOST, port))
            except OSError:
                continue
        _handed_out.add(port)
        return port
    raise RuntimeError("could not find a free port on 127.0.0.1")


def port_accepts(port: int) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=0.5):
            return True
    except OSError:
        return False
