"""The grammar of httpd's configuration files, and Debian's ``envvars`` beside them.

Logical lines (a trailing backslash continues one), ``#`` comments, and words split on blanks with
``"…"``/``'…'`` quoting, as httpd's ``ap_getword_conf`` splits them. ``svcssl.discovery.apache``
reads the files and follows what they say.
"""

from __future__ import annotations

import re

from ..fsutil import read_regular

_ENV_ASSIGN = re.compile(r"^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)=(.*)$")


def read_envvars(path: str) -> dict[str, str]:
    """Debian's ``envvars``: plain ``[export] NAME=value`` lines, ``$NAME``/``${NAME}`` expanded.

    Shell beyond that (``${X##…}``, ``$(…)``, conditionals) is skipped, which leaves Debian's
    ``SUFFIX`` empty, as it is for the default instance.
    """
    env: dict[str, str] = {}
    try:
        text = read_regular(path, 1024 * 1024).decode("utf-8", "surrogateescape")
    except OSError:
        return env
    for line in text.splitlines():
        match = _ENV_ASSIGN.match(line)
        if not match or line.lstrip().startswith("#"):
            continue
        name, value = match.group(1), match.group(2).strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        if "$(" in value or "`" in value or re.search(r"\$\{[^}]*[^A-Za-z0-9_}]", value):
            continue
        env[name] = re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: env.get(m.group(1) or m.group(2), ""), value)
    return env


def split_words(text: str) -> list[str]:
    """httpd's ap_getword_conf: blank-separated words; "…" or '…' quote, with \\" inside."""
    words = []
    i, n = 0, len(text)
    while i < n:
        while i < n and text[i].isspace():
            i += 1
        if i >= n:
            break
        quote = text[i]
        if quote in "\"'":
            i += 1
            buf = []
            while i < n and text[i] != quote:
                if text[i] == "\\" and i + 1 < n and text[i + 1] == quote:
                    i += 1
                buf.append(text[i])
                i += 1
            i += 1
            words.append("".join(buf))
        else:
            j = i
            while j < n and not text[j].isspace():
                j += 1
            words.append(text[i:j])
            i = j
    return words


def logical_lines(text: str) -> list[tuple[int, str]]:
    """(first line number, text) of each non-blank, non-comment logical line."""
    result = []
    pending: list[str] = []
    start = 0
    for number, raw in enumerate(text.split("\n"), 1):
        line = raw.rstrip()
        if not pending:
            start = number
        if line.endswith("\\"):
            pending.append(line[:-1])
            continue
        pending.append(line)
        joined = "".join(pending).strip()
        pending = []
        if joined and not joined.startswith("#"):
            result.append((start, joined))
    if pending:
        joined = "".join(pending).strip()
        if joined and not joined.startswith("#"):
            result.append((start, joined))
    return result
