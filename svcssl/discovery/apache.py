"""Apache httpd's configuration, read the way httpd reads it, to find the SSL virtual hosts.

Why a reader of our own: certbot's Apache plugin reads the files through Augeas, which needs the
C library and its lenses installed, and still leaves ``Include`` globbing, ``Define``/``${VAR}``
and ``<IfModule>``/``<IfDefine>`` evaluation to the caller — the larger part of the work here.
The grammar itself is small (``apache_grammar``): logical lines (a trailing backslash continues one), ``#`` comments,
words split on blanks with ``"…"``/``'…'`` quoting, and ``<Section args>`` … ``</Section>``.

What is followed, as httpd does:
- ``ServerRoot`` (default: the directory of the main file, as Debian's and cPanel's builds use);
  relative paths in ``Include``, ``SSLCertificate*File`` and ``DocumentRoot`` are relative to it;
- ``Include`` / ``IncludeOptional`` with shell wildcards in any path component, files in name
  order, a directory meaning every file below it;
- ``Define`` / ``UnDefine`` and ``${VAR}`` (with Debian's ``envvars`` beside the main file);
- ``LoadModule`` then ``<IfModule [!]name>`` (``ssl_module`` or ``mod_ssl.c``), ``<IfDefine [!]NAME>``,
  ``<IfFile [!]path>``; ``<IfVersion>`` is taken as true; ``<Macro>`` bodies are skipped.
- SSL directives of the main server are inherited by virtual hosts, as mod_ssl merges them.

Nothing is fatal: an unreadable, binary or missing file, an include loop, an unbalanced section
or an undefined variable is reported with its file and line, and reading goes on.
"""

from __future__ import annotations

import fnmatch
import os
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from ..fsutil import read_regular
from .apache_grammar import logical_lines, read_envvars, split_words
from .index import stamp_text

MAX_DEPTH = 32  # nested includes
MAX_FILES = 100_000  # files read in one pass
MAX_FILE_BYTES = 64 * 1024 * 1024  # cPanel's httpd.conf with 10,000 virtual hosts is ~20 MB
BUILTIN_MODULES = frozenset({
    "core.c", "mod_so.c", "http_core.c", "mod_watchdog.c", "mod_log_config.c", "mod_logio.c", "mod_version.c",
    "mod_unixd.c", "core_module", "so_module", "http_module", "watchdog_module", "log_config_module",
    "logio_module", "version_module", "unixd_module",
})
_CONDITIONS = {"ifmodule", "ifdefine", "iffile", "ifversion", "ifdirective", "ifsection"}
_SKIPPED = {"macro"}
_VARIABLE = re.compile(r"\$\{([^}]+)\}")
_USER_DIRECTIVES = {"suexecusergroup", "assignuserid", "suphp_usergroup", "ruidgid"}


@dataclass(frozen=True)
class ApacheProblem:
    path: str
    line: int | None
    message: str

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}" if self.line else self.path
        return f"{where}: {self.message}"


@dataclass(frozen=True)
class SslVhost:
    servername: str | None
    aliases: tuple[str, ...]
    addresses: tuple[str, ...]  # as written: "*:443", "192.0.2.1:443", "[2001:db8::1]:443", "_default_:443"
    ip: str
    port: int | None
    docroot: str | None
    user: str | None  # SuexecUserGroup / AssignUserID / suPHP_UserGroup / RUidGid, else from the docroot
    cert_files: tuple[str, ...]
    key_files: tuple[str, ...]  # empty: the key is in the certificate file
    chain_file: str | None
    config_file: str
    line: int

    @property
    def domains(self) -> tuple[str, ...]:
        names: list[str] = []
        for name in ([self.servername] if self.servername else []) + list(self.aliases):
            if name.lower() not in names:
                names.append(name.lower())
        return tuple(names)


@dataclass(frozen=True)
class ApacheConfig:
    config_file: str | None  # None: none of the candidate files exists
    server_root: str | None
    vhosts: tuple[SslVhost, ...]
    problems: tuple[ApacheProblem, ...]
    inputs: dict[str, str] = field(default_factory=dict)  # every file read and directory listed → its stamp
    skipped: tuple[ApacheProblem, ...] = ()  # virtual hosts a false <IfModule>/<IfDefine>/<IfFile> leaves out, and why


def _split_address(address: str) -> tuple[str, int | None]:
    if address.startswith("["):
        host, _, rest = address[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
    elif address.count(":") == 1:
        host, _, port = address.partition(":")
    else:
        host, port = address, ""
    return host, int(port) if port.isdigit() else None


def _server_name(value: str) -> str:
    name = value.split("://", 1)[-1]
    if name.startswith("["):
        return name.lower()
    return name.rsplit(":", 1)[0].lower() if name.count(":") == 1 else name.lower()


@dataclass
class _Vhost:
    addresses: list[str]
    config_file: str
    line: int
    servername: str | None = None
    aliases: list[str] = field(default_factory=list)
    docroot: str | None = None
    user: str | None = None
    engine: str | None = None
    certs: list[str] = field(default_factory=list)
    keys: list[str] = field(default_factory=list)
    chain: str | None = None


class _Reader:
    def __init__(self, config_file: str, env: dict[str, str], home_root: Path | None):
        self.config_file = config_file
        self.server_root = os.path.dirname(config_file) or "/"
        self.defines: dict[str, str] = dict(env)
        self.modules: set[str] = set(BUILTIN_MODULES)
        self.problems: list[ApacheProblem] = []
        self.skipped: list[ApacheProblem] = []
        self.inputs: dict[str, str] = {}
        self.vhosts: list[SslVhost] = []
        self.main = _Vhost([], config_file, 0)
        self.vhost: _Vhost | None = None
        self.stack: list[str] = []
        self.files_read = 0
        self.undefined: set[str] = set()
        self.home_root = os.fspath(home_root) if home_root else None

    # --- problems and paths -------------------------------------------------------------------

    def problem(self, path: str, line: int | None, message: str) -> None:
        self.problems.append(ApacheProblem(path, line, message))

    def server_path(self, value: str) -> str:
        path = value if os.path.isabs(value) else os.path.join(self.server_root, value)
        return os.path.normpath(path)

    def substitute(self, text: str, path: str, line: int) -> str:
        def replace(match: re.Match) -> str:
            name = match.group(1)
            if name in self.defines:
                return self.defines[name]
            if name not in self.undefined:
                self.undefined.add(name)
                self.problem(path, line, f"the variable ${{{name}}} is not defined (left as it is)")
            return match.group(0)

        return _VARIABLE.sub(replace, text) if "${" in text else text

    # --- files ----------------------------------------------------------------------------------

    def listdir(self, directory: str) -> list[str]:
        self.inputs[directory] = stamp_text(directory)
        with os.scandir(directory) as entries:
            return sorted((e.name for e in entries), key=os.fsencode)

    def expand(self, pattern: str, where: tuple[str, int], optional: bool) -> list[str]:
        """The files an Include names: a wildcard in any component, matches in name order."""
        if not any(c in pattern for c in "*?["):
            return [pattern]
        parts = pattern.split("/")
        bases = ["/"]
        for index, part in enumerate(parts[1:], 1):
            last = index == len(parts) - 1
            if not part:
                continue
            if not any(c in part for c in "*?["):
                bases = [os.path.join(b, part) for b in bases]
                continue
            found = []
            for base in bases:
                try:
                    names = self.listdir(base)
                except OSError as exc:
                    if not optional:
                        self.problem(where[0], where[1], f"cannot list {base} for {pattern}: {exc.strerror}")
                    self.inputs.setdefault(base, "missing")
                    continue
                for name in names:
                    if name.startswith(".") and not part.startswith("."):
                        continue
                    if fnmatch.fnmatchcase(name, part):
                        candidate = os.path.join(base, name)
                        if last or os.path.isdir(candidate):
                            found.append(candidate)
            bases = found
        return bases

    def include(self, pattern: str, where: tuple[str, int], optional: bool) -> None:
        path = self.server_path(pattern)
        matches = self.expand(path, where, optional)
        if not matches:
            if not optional:
                self.problem(where[0], where[1], f"Include {pattern}: no file matches")
            return
        for match in matches:
            self.read_path(match, where, optional)

    def read_path(self, path: str, where: tuple[str, int] | None, optional: bool) -> None:
        try:
            is_dir = stat.S_ISDIR(os.stat(path).st_mode)
        except OSError as exc:
            self.inputs[path] = "missing"
            self.inputs.setdefault(os.path.dirname(path), stamp_text(os.path.dirname(path)))
            if optional and not os.path.islink(path):
                return
            dangling = " (a dangling symbolic link)" if os.path.islink(path) and not os.path.exists(path) else ""
            self.problem(path, None, f"cannot read: {exc.strerror}{dangling}")
            return
        if is_dir:
            real = os.path.realpath(path)
            if real in self.stack:
                self.problem(path, None, "this directory includes itself (a symbolic link loop): not read again")
                return
            self.stack.append(real)
            try:
                names = self.listdir(path)
            except OSError as exc:
                self.problem(path, None, f"cannot list: {exc.strerror}")
                names = []
            try:
                for name in names:
                    if not name.startswith("."):
                        self.read_path(os.path.join(path, name), where, optional)
            finally:
                self.stack.pop()
            return
        self.read_file(path, where)

    def read_file(self, path: str, where: tuple[str, int] | None) -> None:
        real = os.path.realpath(path)
        if real in self.stack:
            chain = " → ".join(self.stack[self.stack.index(real):] + [real])
            at_path, at_line = where or (path, None)
            self.problem(at_path, at_line, f"include loop ({chain}): {path} is not read again")
            return
        if len(self.stack) >= MAX_DEPTH:
            self.problem(path, None, f"includes nested deeper than {MAX_DEPTH} levels: not read")
            return
        if self.files_read >= MAX_FILES:
            if self.files_read == MAX_FILES:
                self.problem(path, None, f"more than {MAX_FILES:,} configuration files: the rest is not read")
                self.files_read += 1
            return
        self.inputs[path] = stamp_text(path)
        try:
            data = read_regular(path, MAX_FILE_BYTES)
        except OSError as exc:
            self.problem(path, None, f"cannot read: {exc.strerror}")
            return
        self.files_read += 1
        if b"\0" in data:
            self.problem(path, None, "not a text file (it holds NUL bytes): not read")
            return
        self.stack.append(real)
        try:
            self.run(path, logical_lines(data.decode("utf-8", "surrogateescape")))
        finally:
            self.stack.pop()

    # --- the interpreter ------------------------------------------------------------------------

    def condition(self, name: str, args: list[str]) -> bool:
        if name in ("ifversion", "ifdirective", "ifsection"):
            return True
        arg = args[0] if args else ""
        negate = arg.startswith("!")
        arg = arg[1:] if negate else arg
        if name == "ifmodule":
            result = arg in self.modules
        elif name == "ifdefine":
            result = arg in self.defines
        else:  # iffile
            result = os.path.exists(self.server_path(arg))
        return result != negate

    def run(self, path: str, lines: list[tuple[int, str]]) -> None:
        sections: list[tuple[str, int, str]] = []  # (name, line, kind: run | skip | vhost | other)
        skipping = 0
        skipped_by: tuple[str, list[str], int] | None = None  # the false condition the skipped lines sit in
        for number, text in lines:
            if text.startswith("</"):
                name = text[2:].rstrip(">").strip().lower()
                if not sections:
                    self.problem(path, number, f"</{name}> has no opening <{name}> in this file")
                    continue
                open_name, open_line, kind = sections.pop()
                if open_name != name:
                    self.problem(path, number, f"</{name}> closes <{open_name}> (line {open_line})")
                if kind == "skip":
                    skipping -= 1
                    if not skipping:
                        skipped_by = None
                elif kind == "vhost":
                    self.end_vhost()
                continue
            if text.startswith("<"):
                body = text[1:]
                if body.endswith(">"):
                    body = body[:-1]
                elif not skipping:
                    self.problem(path, number, "a section line without its closing '>'")
                words = split_words(self.substitute(body, path, number) if not skipping else body)
                name = words[0].lower() if words else ""
                args = words[1:]
                if skipping:
                    kind = "skip"
                    if name == "virtualhost" and skipped_by is not None:
                        self.skipped_vhost(args, path, number, skipped_by)
                elif name in _CONDITIONS:
                    kind = "run" if self.condition(name, args) else "skip"
                    if kind == "skip":
                        skipped_by = (name, args, number)
                elif name in _SKIPPED:
                    kind = "skip"
                elif name == "virtualhost":
                    if self.vhost is not None:
                        self.problem(path, number, "a <VirtualHost> inside another: skipped")
                        kind = "skip"
                    else:
                        self.vhost = _Vhost(args, path, number)
                        kind = "vhost"
                else:
                    kind = "other"
                if kind == "skip":
                    skipping += 1
                sections.append((name, number, kind))
                continue
            if skipping:
                continue
            words = split_words(self.substitute(text, path, number))
            if words:
                in_other = any(kind == "other" for _, _, kind in sections)
                self.directive(words[0].lower(), words[1:], path, number, in_other)
        for name, line, kind in reversed(sections):
            self.problem(path, line, f"<{name}> is not closed before the end of the file")
            if kind == "vhost":
                self.end_vhost()

    def skipped_vhost(self, addresses: list[str], path: str, line: int, reason: tuple[str, list[str], int]) -> None:
        """Say why a <VirtualHost> is not read (a plain-HTTP one on port 80 is not worth a word)."""
        if addresses and all(a.endswith(":80") for a in addresses):
            return
        name, args, at = reason
        arg = args[0] if args else ""
        negate, bare = arg.startswith("!"), arg.lstrip("!")
        section = {"ifmodule": "IfModule", "ifdefine": "IfDefine", "iffile": "IfFile"}.get(name, name)
        if name == "ifmodule":
            why = (f"the module {bare} is loaded" if negate else
                   f"the module {bare} is not loaded (no LoadModule for it; on Debian: a2enmod ssl)")
        elif name == "ifdefine":
            why = f"{bare} is defined" if negate else f"{bare} is not defined (Define {bare}, or apache2 -D {bare})"
        else:
            why = f"{bare} exists" if negate else f"{bare} does not exist"
        self.skipped.append(ApacheProblem(path, line, f"<VirtualHost {' '.join(addresses)}> is skipped: it sits inside "
                                                      f"<{section} {arg}> (line {at}), and {why}"))

    def directive(self, name: str, args: list[str], path: str, line: int, in_other: bool) -> None:
        where = (path, line)
        if name in ("include", "includeoptional"):
            for arg in args[:1]:
                self.include(arg, where, name == "includeoptional")
            return
        if name == "define" and args:
            self.defines[args[0]] = " ".join(args[1:])
            return
        if name == "undefine" and args:
            self.defines.pop(args[0], None)
            return
        if name == "loadmodule" and len(args) >= 2:
            self.modules.add(args[0])
            base = os.path.basename(args[1])
            self.modules.add(base[:-3] + ".c" if base.endswith(".so") else base)
            return
        if name == "serverroot" and args and self.vhost is None:
            self.server_root = os.path.normpath(args[0])
            return
        if in_other:
            return  # <Directory>, <Location>, <Files>…: not virtual-host settings
        target = self.vhost if self.vhost is not None else self.main
        if not args:
            return
        if name == "servername":
            target.servername = _server_name(args[0])
        elif name == "serveralias" and self.vhost is not None:
            target.aliases.extend(a.lower() for a in args)
        elif name == "documentroot":
            target.docroot = self.server_path(args[0])
        elif name == "sslengine":
            target.engine = args[0].lower()
        elif name == "sslcertificatefile":
            target.certs.append(self.server_path(args[0]))
        elif name == "sslcertificatekeyfile":
            target.keys.append(self.server_path(args[0]))
        elif name == "sslcertificatechainfile":
            target.chain = self.server_path(args[0])
        elif name in _USER_DIRECTIVES and self.vhost is not None:
            target.user = args[0]

    def owner_of(self, docroot: str | None) -> str | None:
        if not docroot or not self.home_root:
            return None
        root = self.home_root.rstrip("/") + "/"
        if docroot.startswith(root):
            return docroot[len(root):].split("/", 1)[0] or None
        return None

    def end_vhost(self) -> None:
        vhost, self.vhost = self.vhost, None
        if vhost is None:
            return
        engine = vhost.engine or self.main.engine
        if engine not in ("on", "optional") and not vhost.certs:
            return  # not an SSL virtual host
        certs = vhost.certs or self.main.certs
        if not certs:
            self.problem(vhost.config_file, vhost.line, "an SSL virtual host without SSLCertificateFile: skipped")
            return
        address = vhost.addresses[0] if vhost.addresses else "*"
        ip, port = _split_address(address)
        self.vhosts.append(SslVhost(
            servername=vhost.servername or self.main.servername,
            aliases=tuple(dict.fromkeys(vhost.aliases)),
            addresses=tuple(vhost.addresses),
            ip=ip,
            port=port,
            docroot=vhost.docroot,
            user=vhost.user or self.owner_of(vhost.docroot),
            cert_files=tuple(certs),
            key_files=tuple(vhost.keys or (self.main.keys if not vhost.certs else [])),
            chain_file=vhost.chain or self.main.chain,
            config_file=vhost.config_file,
            line=vhost.line,
        ))


def find_config_file(candidates: Sequence[Path]) -> str | None:
    for candidate in candidates:
        if os.path.exists(candidate):
            return os.path.abspath(candidate)
    return None


def read_apache_config(candidates: Sequence[Path], *, home_root: Path | None = None) -> ApacheConfig:
    """Every SSL virtual host of the first existing candidate file, with every problem met on the way."""
    config_file = find_config_file(candidates)
    if config_file is None:
        inputs = {os.fspath(c): "missing" for c in candidates}
        names = " or ".join(os.fspath(c) for c in candidates)
        return ApacheConfig(None, None, (), (ApacheProblem(names, None, "no Apache configuration file here"),),
                            inputs)
    envvars = os.path.join(os.path.dirname(config_file), "envvars")
    reader = _Reader(config_file, read_envvars(envvars), home_root)
    reader.inputs[envvars] = stamp_text(envvars)
    reader.read_path(config_file, None, False)
    return ApacheConfig(config_file, reader.server_root, tuple(reader.vhosts), tuple(reader.problems), reader.inputs,
                        tuple(reader.skipped))


def inputs_unchanged(inputs: dict[str, str]) -> bool:
    """True when every file and directory read last time has the same stamp (a stat each, no parse)."""
    return bool(inputs) and all(stamp_text(path) == stamp for path, stamp in inputs.items())
