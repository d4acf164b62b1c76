"""Who a client is, for connection caps and login throttles: IPv4 by address, IPv6 by its network.

One IPv6 /64 is one household, office or server, and holds 2^64 addresses: counting IPv6 clients
by address would give an attacker a fresh quota for every connection. An IPv4-mapped IPv6 address
(::ffff:192.0.2.1) is its IPv4 address.
"""

from __future__ import annotations

import ipaddress
from functools import lru_cache

DEFAULT_IPV6_PREFIX = 64


@lru_cache(maxsize=4096)
def client_group(address: str, ipv6_prefix: int = DEFAULT_IPV6_PREFIX) -> str:
    """"192.0.2.1" for an IPv4 client, "2001:db8:1:2::/64" for any address of that IPv6 /64."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return address  # not an IP address (a Unix socket, "-"): itself
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, ipv6_prefix), strict=False))
    return str(ip)
