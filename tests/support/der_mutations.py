"""Malformed certificates for the fuzz tests: DER surgery on valid certificates (no signatures are fixed up:
parsing must fail cleanly or succeed, whatever the bytes say)."""

from __future__ import annotations

import random
from dataclasses import dataclass, field


@dataclass
class Node:
    tag: int
    content: bytes = b""  # for primitive nodes
    children: list["Node"] = field(default_factory=list)
    constructed: bool = False

    def encode(self) -> bytes:
        body = b"".join(c.encode() for c in self.children) if self.constructed else self.content
        return bytes([self.tag]) + encode_length(len(body)) + body


def encode_length(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(raw)]) + raw


def parse(data: bytes) -> Node:
    node, rest = _parse_one(data)
    assert not rest
    return node


def _parse_one(data: bytes) -> tuple[Node, bytes]:
    tag = data[0]
    first = data[1]
    if first < 0x80:
        length, offset = first, 2
    else:
        count = first & 0x7F
        length, offset = int.from_bytes(data[2:2 + count], "big"), 2 + count
    body, rest = data[offset:offset + length], data[offset + length:]
    if tag & 0x20:
        children = []
        while body:
            child, body = _parse_one(body)
            children.append(child)
        return Node(tag, children=children, constructed=True), rest
    return Node(tag, content=body), rest


def _tbs(cert: Node) -> Node:
    return cert.children[0]


def _extensions(tbs: Node) -> Node:
    wrapper = next(c for c in tbs.children if c.tag == 0xA3)
    return wrapper.children[0]


def _oid(der_oid_hex: str) -> bytes:
    return bytes.fromhex(der_oid_hex)


SAN_OID = _oid("551d11")


def with_version(der: bytes, version: int) -> bytes:
    cert = parse(der)
    tbs = _tbs(cert)
    tbs.children[0] = Node(0xA0, children=[Node(0x02, content=bytes([version]))], constructed=True)
    return cert.encode()


def with_duplicate_extension(der: bytes) -> bytes:
    cert = parse(der)
    extensions = _extensions(_tbs(cert))
    extensions.children.append(extensions.children[0])
    return cert.encode()


def with_san_names(der: bytes, general_names: list[Node]) -> bytes:
    """Replace the SAN extension's names with ``general_names`` (e.g. x400Address [3], ediPartyName [5])."""
    cert = parse(der)
    names = Node(0x30, children=general_names, constructed=True)
    extensions = _extensions(_tbs(cert))
    for extension in extensions.children:
        if extension.children[0].content == SAN_OID:
            extension.children[-1] = Node(0x04, content=names.encode())
            return cert.encode()
    extensions.children.append(Node(0x30, children=[Node(0x06, content=SAN_OID), Node(0x04, content=names.encode())],
                                    constructed=True))
    return cert.encode()


def x400_address() -> Node:
    # [3] ORAddress: SEQUENCE { BuiltInStandardAttributes SEQUENCE { country-name [APPLICATION 1] ... } }
    country = Node(0x61, children=[Node(0x13, content=b"DE")], constructed=True)
    return Node(0xA3, children=[Node(0x30, children=[country], constructed=True)], constructed=True)


def edi_party_name() -> Node:
    # [5] EDIPartyName: SEQUENCE { partyName [1] DirectoryString }
    return Node(0xA5, children=[Node(0xA1, children=[Node(0x0C, content=b"party")], constructed=True)],
                constructed=True)


def other_name() -> Node:
    return Node(0xA0, children=[Node(0x06, content=_oid("2b0601040182371402 03"[:18])),
                                Node(0xA0, children=[Node(0x0C, content=b"u@x")], constructed=True)], constructed=True)


def registered_id_garbage() -> Node:
    return Node(0x88, content=b"\xff\xff\xff")


def truncated(der: bytes, at: int) -> bytes:
    return der[:at]


def huge_length(der: bytes, position: int) -> bytes:
    """Claim a 4 GiB length at the TLV that starts at ``position``."""
    return der[:position + 1] + b"\x84\xff\xff\xff\xff" + der[position + 2:]


def wrong_tag(der: bytes, position: int, tag: int) -> bytes:
    return der[:position] + bytes([tag]) + der[position + 1:]


def tlv_positions(der: bytes) -> list[int]:
    """The offsets of every TLV header in the certificate (walking the tree)."""
    positions: list[int] = []

    def walk(data: bytes, base: int) -> None:
        offset = 0
        while offset < len(data):
            positions.append(base + offset)
            tag, first = data[offset], data[offset + 1]
            if first < 0x80:
                length, header = first, 2
            else:
                count = first & 0x7F
                length, header = int.from_bytes(data[offset + 2:offset + 2 + count], "big"), 2 + count
            if tag & 0x20:
                walk(data[offset + header:offset + header + length], base + offset + header)
            offset += header + length

    walk(der, 0)
    return positions


def mutations(der: bytes, *, random_count: int = 200, seed: int = 11) -> list[tuple[str, bytes]]:
    """Named malformed variants of ``der``."""
    out: list[tuple[str, bytes]] = []
    for version in (0, 1, 3, 5, 0x7F):
        out.append((f"version {version}", with_version(der, version)))
    out.append(("duplicated extension", with_duplicate_extension(der)))
    for label, names in (("x400Address", [x400_address()]), ("ediPartyName", [edi_party_name()]),
                         ("otherName", [other_name()]), ("registeredID garbage", [registered_id_garbage()]),
                         ("empty SAN", []), ("x400 and dNSName", [x400_address(), Node(0x82, content=b"a.example")])):
        out.append((f"SAN {label}", with_san_names(der, names)))
    positions = tlv_positions(der)
    for at in sorted({1, 2, 4, 10, len(der) // 3, len(der) // 2, len(der) - 40, len(der) - 1}):
        out.append((f"truncated at {at}", truncated(der, at)))
    for position in positions[:: max(1, len(positions) // 12)]:
        out.append((f"huge length at {position}", huge_length(der, position)))
        for tag in (0x05, 0x31, 0xA7):
            out.append((f"tag {tag:#x} at {position}", wrong_tag(der, position, tag)))
    rng = random.Random(seed)
    for n in range(random_count):
        data = bytearray(der)
        for _ in range(rng.randint(1, 4)):
            i = rng.randrange(len(data))
            data[i] = rng.randrange(256)
        out.append((f"random {n}", bytes(data)))
    return out
