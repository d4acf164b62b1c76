"""The standalone HTTP-01 listener (acme.standalone's servers, threaded): an idle client does not hold the port."""

from __future__ import annotations

import socket
import time
import urllib.request

import josepy as jose
from acme import challenges

from support import pki
from servers.ports import free_port
from svcssl.acme.http01 import Resource, StandaloneResponder


def test_an_idle_connection_does_not_stop_the_ca_from_fetching_the_challenge():
    account_key = jose.JWKEC(key=pki.ec_key(70))
    chall = challenges.HTTP01(token=b"t" * 32)
    response, validation = chall.response_and_validation(account_key)
    port = free_port()
    with StandaloneResponder(f"127.0.0.1:{port}", [Resource(chall, response, validation)]):
        idle = socket.create_connection(("127.0.0.1", port), timeout=5)  # connects, then sends nothing
        try:
            started = time.monotonic()
            url = f"http://127.0.0.1:{port}{chall.path}"
            with urllib.request.build_opener(urllib.request.ProxyHandler({})).open(url, timeout=5) as answer:
                assert answer.read().decode() == validation
            assert time.monotonic() - started < 2
        finally:
            idle.close()
