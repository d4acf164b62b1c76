"""The cost of opening a password-protected PKCS#12 file or encrypted private key, read before any key is derived.

A PKCS#12 file names its own key-derivation parameters (for its MAC and for each encrypted part:
PBKDF2 or PKCS#12 iteration counts, scrypt's N, r and p under PBES2), and so does an encrypted
PKCS#8 key. Opening one made with 5,000,000 rounds costs seconds of
CPU per attempt, so an upload or an API call could keep the server busy at will. This module walks
the DER (BER indefinite lengths too) without deriving anything and returns the cost of every
derivation it finds (scrypt counts N·r·p: about one PBKDF2 round each on this class of machine);
the parser refuses a file above the caps before it hands the file to OpenSSL. A file too large or
too deeply nested to walk whole is refused, never half counted.

Parts encrypted with another part's key (a key bag inside an encrypted bag) are not visible before
decryption; the visible counts bound the work that reveals them, and OpenSSL's exports keep the key
bag outside the encrypted certificates.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import InputError

# Real exports: OpenSSL 2,048; Windows 2,000; macOS 2,048; Java 10,000 (PBES2) or 50,000 (MAC on newer JDKs).
MAX_ITERATIONS = 200_000  # per key derivation
MAX_TOTAL_ITERATIONS = 600_000  # all the derivations of one file together
# scrypt also takes 128·N·r bytes of memory: under the cost cap that is at most 25 MiB
_MAX_DEPTH = 40
_MAX_NODES = 20_000

_SEQUENCE, _INTEGER, _OCTET_STRING, _OID = 0x30, 0x02, 0x04, 0x06

# Password-based encryption and key-derivation algorithm OIDs, DER-encoded (content bytes):
# PKCS#12 PBE 1.2.840.113549.1.12.1.1–6, PBES1 1.2.840.113549.1.5.1/3/4/6/10/11, PBKDF2 1.2.840.113549.1.5.12.
_PKCS = bytes.fromhex("2a864886f70d01")  # 1.2.840.113549.1
_PBE_OIDS = frozenset(
    [_PKCS + bytes([12, 1, n]) for n in range(1, 7)]
    + [_PKCS + bytes([5, n]) for n in (1, 3, 4, 6, 10, 11, 12)]
)
_SCRYPT_OID = bytes.fromhex("2b06010401da47040b")  # 1.3.6.1.4.1.11591.4.11 (RFC 7914)


@dataclass(frozen=True)
class Derivation:
    cost: int  # in PBKDF2 rounds (about 0.3 µs each here)
    text: str  # what the file asks for, in its own terms


def _rounds(count: int) -> Derivation:
    return Derivation(count, f"{count:,} key-derivation rounds")


def _scrypt(params: list[_Node]) -> Derivation:
    """scrypt-params ::= SEQUENCE { salt OCTET STRING, costParameter, blockSize, parallelizationParameter, ... }"""
    numbers = [_integer(p) for p in params if p.tag == _INTEGER][:3]
    if len(numbers) < 3:
        return Derivation(1 << 64, "a scrypt key derivation without its parameters")
    n, r, p = numbers
    shown_n = f"2^{n.bit_length() - 1}" if n > 0 and n & (n - 1) == 0 else f"{n:,}"
    return Derivation(max(n, 0) * max(r, 0) * max(p, 0), f"its key derivation (scrypt N={shown_n}, r={r}, p={p})")


class PbeCostError(InputError):
    pass


class _Malformed(Exception):
    pass


class _TooLarge(_Malformed):
    """Over the walker's own bounds: the file is refused (never counted only in part)."""


class _Node:
    __slots__ = ("tag", "content", "children")

    def __init__(self, tag: int, content: bytes, children: list[_Node] | None):
        self.tag = tag
        self.content = content
        self.children = children


class _Reader:
    def __init__(self) -> None:
        self.nodes = 0

    def parse(self, data: bytes, depth: int = 0) -> list[_Node]:
        nodes, offset = [], 0
        while offset < len(data):
            node, offset = self._one(data, offset, depth)
            if node is None:
                raise _Malformed("end-of-contents outside an indefinite length")
            nodes.append(node)
        return nodes

    def _one(self, data: bytes, offset: int, depth: int) -> tuple[_Node | None, int]:
        self.nodes += 1
        if self.nodes > _MAX_NODES or depth > _MAX_DEPTH:
            raise _TooLarge("too deeply nested or too many parts")
        if offset + 2 > len(data):
            raise _Malformed("truncated")
        tag, first = data[offset], data[offset + 1]
        if tag & 0x1F == 0x1F:
            raise _Malformed("high tag numbers are not used in PKCS#12")
        offset += 2
        if tag == 0 and first == 0:
            return None, offset  # end-of-contents
        constructed = bool(tag & 0x20)
        if first == 0x80:  # BER indefinite length: children until end-of-contents
            if not constructed:
                raise _Malformed("indefinite length on a primitive value")
            children = []
            while True:
                child, offset = self._one(data, offset, depth + 1)
                if child is None:
                    return _Node(tag, b"", children), offset
                children.append(child)
        if first & 0x80:
            count = first & 0x7F
            if count == 0 or count > 4 or offset + count > len(data):
                raise _Malformed("bad length")
            length = int.from_bytes(data[offset:offset + count], "big")
            offset += count
        else:
            length = first
        end = offset + length
        if end > len(data):
            raise _Malformed("length beyond the end of the data")
        content = data[offset:end]
        return _Node(tag, content, self.parse(content, depth + 1) if constructed else None), end


def _octets(node: _Node) -> bytes:
    """An OCTET STRING's bytes, joining the pieces of a BER constructed one."""
    if node.children is None:
        return node.content
    return b"".join(_octets(child) for child in node.children)


def _integer(node: _Node) -> int:
    if not node.content or len(node.content) > 8:
        return 1 << 64  # absurdly large: counts as over any cap
    return int.from_bytes(node.content, "big", signed=True)


def _walk(node: _Node, reader: _Reader, depth: int, found: list[Derivation]) -> None:
    if depth > _MAX_DEPTH:
        raise _TooLarge("too deeply nested")
    children = node.children
    if children is None:
        if node.tag == _OCTET_STRING and node.content[:1] == b"\x30":
            _walk_bytes(node.content, reader, depth + 1, found)  # ContentInfo data: SafeContents inside
        return
    if node.tag == 0x24:  # constructed OCTET STRING (BER)
        data = _octets(node)
        if data[:1] == b"\x30":
            _walk_bytes(data, reader, depth + 1, found)
        return
    if (node.tag == _SEQUENCE and len(children) == 2 and children[0].tag == _OID
            and children[0].content in _PBE_OIDS and children[1].tag == _SEQUENCE and children[1].children):
        # AlgorithmIdentifier of a PBE scheme or PBKDF2: the first INTEGER of its parameters is the count
        for param in children[1].children:
            if param.tag == _INTEGER:
                found.append(_rounds(_integer(param)))
                break
    if (node.tag == _SEQUENCE and len(children) == 2 and children[0].tag == _OID
            and children[0].content == _SCRYPT_OID and children[1].tag == _SEQUENCE):
        found.append(_scrypt(children[1].children or []))
    for child in children:
        _walk(child, reader, depth + 1, found)


def _walk_bytes(data: bytes, reader: _Reader, depth: int, found: list[Derivation]) -> None:
    try:
        nodes = reader.parse(data, depth)
    except _TooLarge:
        raise
    except _Malformed:
        return  # an OCTET STRING that only looked like DER (a digest, a salt): nothing to count inside
    for node in nodes:
        _walk(node, reader, depth, found)


def _mac_iterations(pfx: _Node) -> list[Derivation]:
    """PFX ::= SEQUENCE { version, authSafe, macData SEQUENCE { mac, macSalt, iterations INTEGER DEFAULT 1 } }"""
    if pfx.children and len(pfx.children) >= 3:
        mac = pfx.children[2]
        if mac.tag == _SEQUENCE and mac.children and len(mac.children) >= 3 and mac.children[2].tag == _INTEGER:
            return [_rounds(_integer(mac.children[2]))]
    return []


def iteration_counts(der: bytes) -> list[int]:
    """The cost of every key derivation visible in a PKCS#12 file or an encrypted PKCS#8 key, in rounds."""
    return [d.cost for d in derivations(der)]


def derivations(der: bytes) -> list[Derivation]:
    """Every key derivation visible in a PKCS#12 file or an encrypted PKCS#8 key (DER or BER).

    Raises ``ValueError`` when the structure cannot be read at all.
    """
    reader = _Reader()
    try:
        node, end = reader._one(der, 0, 0)
    except _Malformed as exc:
        raise ValueError(str(exc)) from None
    if node is None or node.tag != _SEQUENCE:
        raise ValueError("not a DER SEQUENCE")
    found = _mac_iterations(node)
    try:
        _walk(node, reader, 0, found)
    except _Malformed as exc:
        raise ValueError(str(exc)) from None
    return found


def check_iteration_counts(der: bytes, what: str, field: str, *, unreadable_ok: bool = False) -> None:
    """Refuse a file whose key derivations would cost more than the caps, before any is run.

    A structure this walker cannot read is refused too, unless ``unreadable_ok`` (the caller's own
    parser then says what is wrong with it).
    """
    try:
        found = derivations(der)
    except ValueError as exc:
        if unreadable_ok and "too deeply nested or too many parts" not in str(exc):
            return
        raise PbeCostError(f"The {what} could not be read: its structure is damaged ({exc}).", field=field) from None
    counts = [d.cost for d in found]
    worst = max(found, key=lambda d: d.cost, default=None)
    if worst is not None and worst.cost > MAX_ITERATIONS:
        raise PbeCostError(
            f"The {what} asks for {worst.text}; that exceeds the limit of svcssl, which opens files needing at most "
            f"{MAX_ITERATIONS:,} key-derivation rounds or the same work in scrypt (N·r·p) (exports from OpenSSL, "
            "Windows, macOS and Java use 2,000–50,000). Export it again with the default settings.", field=field)
    if sum(counts) > MAX_TOTAL_ITERATIONS:
        raise PbeCostError(
            f"The {what} asks for {sum(counts):,} key-derivation rounds in all ({len(counts)} derivations); svcssl "
            f"opens files with at most {MAX_TOTAL_ITERATIONS:,}. Export it again with the default settings.",
            field=field)
