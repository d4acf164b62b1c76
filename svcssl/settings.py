"""TOML configuration turned into frozen dataclasses.

With no file the embedded default applies: state in ``./state``, the hostname of
this system, and the four WHM services writing under ``state/live/<service>/``
with no reload command, so svcssl works without root. Unknown keys and wrong
types are refused, naming the key. No I/O happens at import time.

Each key is declared once, as a field of a section's dataclass made with ``setting()``: its TOML
type, its default, and the hook that turns the TOML value into the field's value. The schema
(allowed keys and their types) and the defaults are read from those fields; config.example.toml
documents them and tests/test_settings.py checks it against them.
"""

from __future__ import annotations

import hashlib
import ipaddress
import os
import re
import socket
import tomllib
from dataclasses import MISSING, dataclass, field, fields, is_dataclass
from datetime import timezone
from functools import cache
from pathlib import Path
from types import MappingProxyType
from typing import Any, Callable, Mapping, get_type_hints
from urllib.parse import urlsplit

from apscheduler.triggers.cron import CronTrigger

from .errors import ConfigError
from .fsutil import read_regular

SERVICE_KINDS = ("panel", "dovecot", "exim", "pure-ftpd", "apns", "generic")
PROBE_PROTOCOLS = ("tls", "smtp-starttls", "imap-starttls", "pop3-starttls", "ftp-auth-tls")
KEY_TYPES = ("rsa-2048", "rsa-3072", "rsa-4096", "ecdsa-p256", "ecdsa-p384")
ENV_CONFIG = "SVCSSL_CONFIG"
APNS_DEPRECATION = "Deprecated: Apple ended the legacy APNs interface in November 2020."
CONFIG_LIMIT = 1024 * 1024
LETS_ENCRYPT = "https://acme-v02.api.letsencrypt.org/directory"
HOME_ROOT = Path("/home")


def parse_listen(listen: str, what: str = "listen address") -> tuple[str, int]:
    """``host:port``, ``[v6]:port`` or ``:port`` as ``(host, port)``; host "" means every address."""
    text = listen.strip()
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"{what} {text!r} is not HOST:PORT with a port from 1 to 65535 (e.g. 0.0.0.0:2087)")
    return host.removeprefix("[").removesuffix("]"), int(port)


# --- how a key is declared and read -----------------------------------------


@dataclass(frozen=True)
class _Reading:
    """What a key's hook may depend on: the config file's folder, and what [server] settled."""

    base_dir: Path
    state_dir: Path = Path()
    hostname: str = ""


Hook = Callable[[Any, str, _Reading], Any]  # (TOML value or the default, "table.key", reading) -> field value


class TableArray(list):
    """The TOML type of a key written as an array of tables (``[[acme.ca]]``)."""


_TYPE_NAMES = {str: "a string", int: "an integer", float: "a number", bool: "true or false",
               list: "a list of strings", dict: "a table", TableArray: "an array of tables ([[…]])"}


def setting(default: Any = MISSING, toml: type = str, *, read: Hook | None = None, choices: tuple[str, ...] = (),
            minimum: int | None = None, maximum: int | None = None) -> Any:
    """A dataclass field that is a TOML key: its TOML type (``float`` = any number, ``list`` = of strings),
    its default (no default = required), and the checks and hook its value goes through.

    An absent key reads as the default, through the same hook. Without a hook a list becomes a tuple and a
    number a float."""
    return field(default=default, metadata={"toml": toml, "read": read, "choices": choices,
                                            "minimum": minimum, "maximum": maximum})


def declared_keys(cls: type) -> dict[str, type]:
    """The TOML keys a section's dataclass declares, with their TOML types."""
    return {f.name: f.metadata["toml"] for f in fields(cls) if "toml" in f.metadata}


def _has_type(value: Any, expected: type) -> bool:
    if expected is bool or isinstance(value, bool):
        return expected is bool and isinstance(value, bool)
    if expected is float:
        return isinstance(value, (int, float))
    if expected is list:
        return isinstance(value, list) and all(isinstance(item, str) for item in value)
    if expected is TableArray:
        return isinstance(value, list) and all(isinstance(item, dict) for item in value)
    return isinstance(value, expected)


def _check_keys(table: Mapping[str, Any], schema: Mapping[str, type], where: str) -> None:
    for key, value in table.items():
        name = f"{where}.{key}" if where else key
        if key not in schema:
            allowed = ", ".join(sorted(schema))
            raise ConfigError(f"unknown configuration key '{name}' (allowed here: {allowed})")
        if not _has_type(value, schema[key]):
            want = _TYPE_NAMES[schema[key]]
            raise ConfigError(f"configuration key '{name}' must be {want}, not {type(value).__name__}")


def _convert(value: Any, meta: Mapping[str, Any], where: str, reading: _Reading) -> Any:
    choices, low, high = meta["choices"], meta["minimum"], meta["maximum"]
    if choices and value not in choices:
        raise ConfigError(f"configuration key '{where}' must be one of {', '.join(choices)}, not {value!r}")
    if low is not None and high is not None and not low <= value <= high:
        raise ConfigError(f"configuration key '{where}' must be between {low} and {high}")
    if low is not None and value < low:
        raise ConfigError(f"configuration key '{where}' must be at least {low}")
    if meta["read"] is not None:
        return meta["read"](value, where, reading)
    if meta["toml"] is list:
        return tuple(value)
    if meta["toml"] is float:
        return float(value)
    return value


def _read(cls: type, table: Mapping[str, Any], where: str, reading: _Reading) -> dict[str, Any]:
    """One table: keys and types checked against ``cls``'s fields, then every declared key read in field order."""
    _check_keys(table, declared_keys(cls), where)
    values = {}
    for f in fields(cls):
        if "toml" not in f.metadata:
            continue
        name = f"{where}.{f.name}"
        if f.name in table:
            value = table[f.name]
        elif f.default is not MISSING:
            value = f.default
        else:
            choices = f.metadata["choices"]
            hint = f" (one of {', '.join(choices)})" if choices else ""
            raise ConfigError(f"configuration key '{name}' is required{hint}")
        values[f.name] = _convert(value, f.metadata, name, reading)
    return values


# --- hooks: per-key readings beyond type, choices and range ------------------


def _optional(value: str | None, where: str, reading: _Reading) -> str | None:
    return value or None  # "" means unset


def _path(value: str | None, where: str, reading: _Reading) -> Path | None:
    """A file; relative to state_dir; "" means none."""
    if value is None or value == "":
        return None
    path = Path(value)
    return path if path.is_absolute() else reading.state_dir / path


def _paths(values: tuple[str, ...], where: str, reading: _Reading) -> tuple[Path, ...]:
    return tuple(p for p in (_path(v, where, reading) for v in values) if p is not None)


def _home_root(value: str | Path, where: str, reading: _Reading) -> Path | None:
    return _path(value or HOME_ROOT, where, reading)  # type: ignore[arg-type]


def _state_dir(value: str | Path, where: str, reading: _Reading) -> Path:
    state_dir = Path(value)
    return state_dir if state_dir.is_absolute() else (reading.base_dir / state_dir).absolute()


def _hostname(value: str, where: str, reading: _Reading) -> str:
    return (value or system_hostname()).strip().rstrip(".").lower()


_MAIL_HOST = re.compile(r"(?=.{1,253}$)([a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z0-9-]{2,63}")


def _mail_hosts(values: list, where: str, reading: _Reading) -> tuple[str, ...]:
    """Host names (MX names) whose TLSA records are checked: fully qualified, lower-cased, no trailing dot."""
    names = []
    for value in values:
        name = value.strip().rstrip(".").lower()
        if not _MAIL_HOST.fullmatch(name):
            raise ConfigError(f"configuration key '{where}' must list fully qualified host names "
                              f"(like mail.example.com), not {value!r}")
        names.append(name)
    return tuple(dict.fromkeys(names))


def _sender(value: str, where: str, reading: _Reading) -> str:
    return value or f"svcssl@{reading.hostname}"


def _schedule(value: str, where: str, reading: _Reading) -> str:
    schedule = value or default_schedule(reading.hostname)
    if len(schedule.split()) != 5:
        raise ConfigError(f"configuration key '{where}' must be a cron expression with five fields, "
                          f"e.g. \"17 3 * * *\", not {schedule!r}")
    try:
        CronTrigger.from_crontab(schedule, timezone=timezone.utc)
    except ValueError as exc:
        raise ConfigError(f"configuration key '{where}' is not a valid cron expression: {exc}") from None
    return schedule


def _mode(value: str | int, where: str, reading: _Reading) -> int:
    if isinstance(value, int):  # the declared default
        return value
    try:
        mode = int(value, 8)
    except ValueError:
        raise ConfigError(f"configuration key '{where}' must be an octal string such as \"0640\", not {value!r}") from None
    if not 0 <= mode <= 0o777:
        raise ConfigError(f"configuration key '{where}' must be a file mode between \"0000\" and \"0777\"")
    return mode


def _probe(value: str | None, where: str, reading: _Reading) -> ProbeAddress | None:
    return parse_probe(value, where) if value else None


def parse_probe(value: str, where: str = "probe") -> ProbeAddress:
    parts = urlsplit(value)
    if parts.scheme not in PROBE_PROTOCOLS:
        raise ConfigError(
            f"configuration key '{where}' must start with one of {', '.join(p + '://' for p in PROBE_PROTOCOLS)}, not {value!r}"
        )
    try:
        port = parts.port
    except ValueError:
        port = None
    if not parts.hostname or port is None:
        raise ConfigError(f"configuration key '{where}' needs a host and a port, e.g. imap-starttls://127.0.0.1:143")
    return ProbeAddress(parts.scheme, parts.hostname, port)


# --- the settings: one field per key ------------------------------------------


@dataclass(frozen=True)
class ProbeAddress:
    protocol: str
    host: str
    port: int

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.protocol}://{host}:{self.port}"


@dataclass(frozen=True)
class ServiceSettings:
    """A [services.NAME] table."""

    name: str
    kind: str = setting(choices=SERVICE_KINDS)  # required
    enabled: bool = setting(True, bool)  # false by default for kind "apns"
    description: str = setting("")  # "" = WHM's description of a default service, else its name
    cert_file: Path | None = setting(None, read=_path)
    key_file: Path | None = setting(None, read=_path)
    chain_file: Path | None = setting(None, read=_path)
    combined_file: Path | None = setting(None, read=_path)
    owner: str | None = setting(None, read=_optional)
    group: str | None = setting(None, read=_optional)
    key_mode: int = setting(0o600, read=_mode)  # TOML: an octal string, "0600"
    cert_mode: int = setting(0o644, read=_mode)
    config_test: tuple[str, ...] = setting((), list)
    reload: tuple[str, ...] = setting((), list)
    probe: ProbeAddress | None = setting(None, read=_probe)
    dane: bool | None = setting(None, bool)  # check TLSA records; None = yes for kind "exim" (when records exist)
    dane_names: tuple[str, ...] = setting((), list, read=_mail_hosts)  # the MX names of its TLSA records; () = the server hostname
    deprecated: bool = False

    @property
    def deprecation(self) -> str | None:
        """Why this service is deprecated, in one sentence, or None."""
        return APNS_DEPRECATION if self.deprecated else None


@dataclass(frozen=True)
class ServerSettings:
    hostname: str = setting("", read=_hostname)  # "" = this system's hostname
    main_ip: str | None = setting(None, read=_optional)
    state_dir: Path = setting(Path("state"), read=_state_dir)  # relative to the config file's folder
    listen: str = setting("0.0.0.0:2087")
    state_snapshots: int = setting(7, int, minimum=1, maximum=1000)  # snapshots of the state database kept


@dataclass(frozen=True)
class CertificateSettings:
    key_type: str = setting("rsa-2048", choices=KEY_TYPES)
    self_signed_days: int = setting(365, int, minimum=1, maximum=3650)


@dataclass(frozen=True)
class LimitSettings:
    max_input_bytes: int = setting(1024 * 1024, int, minimum=16 * 1024)
    # request bodies held in memory by `svcssl serve`, all connections together (larger uploads go to a file)
    request_body_budget: int = setting(64 * 1024 * 1024, int, minimum=1024 * 1024)
    # the body of a request without a signed-in session (the login form needs a few KiB)
    unauthenticated_body_bytes: int = setting(64 * 1024, int, minimum=4 * 1024, maximum=16 * 1024 * 1024)
    # IPv6 clients are counted by this prefix for connection caps and login throttles (IPv4 by address)
    ipv6_prefix: int = setting(64, int, minimum=16, maximum=128)


@dataclass(frozen=True)
class DeploySettings:
    command_timeout: float = setting(60.0, float)
    probe_timeout: float = setting(15.0, float)


@dataclass(frozen=True)
class AcmeCaSettings:
    """One [[acme.ca]] entry: a CA tried in order; what it does not set comes from [acme]."""

    directory: str = setting()  # required
    verify: str | None = setting(None, read=_optional)
    eab_kid: str | None = setting(None, read=_optional)
    eab_hmac_key_file: Path | None = setting(None, read=_path)
    profile: str | None = setting(None, read=_optional)  # None = [acme] profile
    caa_identities: tuple[str, ...] = setting((), list)  # () = [acme] caa_identities


def _ca_list(value: list, where: str, reading: _Reading) -> tuple[AcmeCaSettings, ...]:
    entries = []
    for number, table in enumerate(value, start=1):
        entry = AcmeCaSettings(**_read(AcmeCaSettings, table, f"{where}[{number}]", reading))
        if urlsplit(entry.directory).scheme not in ("https", "http"):
            raise ConfigError(f"configuration key '{where}[{number}].directory' must be an ACME directory URL, "
                              f"not {entry.directory!r}")
        entries.append(entry)
    return tuple(entries)


@dataclass(frozen=True)
class AcmeSettings:
    directory: str = setting(LETS_ENCRYPT)
    email: str | None = setting(None, read=_optional)
    verify: str | None = setting(None, read=_optional)  # CA file for the ACME server's own TLS; None = the system's CAs
    key_type: str = setting("rsa-2048", choices=KEY_TYPES)
    http01_listen: str = setting("0.0.0.0:80")
    webroot: Path | None = setting(None, read=_path)
    eab_kid: str | None = setting(None, read=_optional)
    eab_hmac_key_file: Path | None = setting(None, read=_path)
    caa_identities: tuple[str, ...] = setting(("letsencrypt.org",), list)
    dns01_hook: tuple[str, ...] = setting((), list)  # argv: validate over DNS-01 through this command, not HTTP-01
    profile: str | None = setting(None, read=_optional)  # ACME profile name; None = the CA's default
    profile_required: bool = setting(False, bool)  # no order from a CA that offers no profiles
    ca: tuple[AcmeCaSettings, ...] = setting((), TableArray, read=_ca_list)  # [[acme.ca]]: CAs tried in order


@dataclass(frozen=True)
class DnsSettings:
    nameservers: tuple[str, ...] = setting((), list)  # "host" or "host:port"; empty = the system's resolvers
    timeout: float = setting(3.0, float)


@dataclass(frozen=True)
class NotifySettings:
    smtp_host: str | None = setting(None, read=_optional)  # None: no mail is sent
    smtp_port: int = setting(25, int)
    starttls: bool = setting(False, bool)
    username: str | None = setting(None, read=_optional)
    password_file: Path | None = setting(None, read=_path)
    sender: str = setting("", read=_sender)  # "" = svcssl@<hostname>
    recipient: str | None = setting(None, read=_optional)
    expiry_days: int = setting(20, int)
    panel_url: str | None = setting(None, read=_optional)
    ca_file: Path | None = setting(None, read=_path)  # CA certificates (PEM) to check the relay's STARTTLS against


@dataclass(frozen=True)
class MaintenanceSettings:
    schedule: str = setting("", read=_schedule)  # cron, 5 fields; "" = daily at a minute from the hostname
    own_ca_renew_days: int = setting(25, int)
    other_renew_days: int = setting(3, int)


@dataclass(frozen=True)
class AccountSettings:
    home_root: Path = setting(HOME_ROOT, read=_home_root)  # <home_root>/<user>/ssl/certs/*.crt and ssl/keys/*.key


APACHE_DEFAULT_CONFIGS = (Path("/etc/apache2/apache2.conf"), Path("/etc/httpd/conf/httpd.conf"))


@dataclass(frozen=True)
class ApacheSettings:
    config_file: Path | None = setting(None, read=_path)  # None: Debian's apache2.conf if it exists, else RHEL's

    def candidates(self) -> tuple[Path, ...]:
        return (self.config_file,) if self.config_file is not None else APACHE_DEFAULT_CONFIGS


@dataclass(frozen=True)
class CaBundleSettings:
    dirs: tuple[Path, ...] = setting((), list, read=_paths)  # directories of CA certificates trusted for CA bundles
    aia_fetch: bool = setting(False, bool)  # download a missing issuer from the certificate's caIssuers URL


@dataclass(frozen=True)
class TrustSettings:
    system_store: bool = setting(True, bool)  # trust the system's CA bundle (/etc/ssl/certs/ca-certificates.crt)
    ca_file: Path | None = setting(None, read=_path)  # extra trust anchors (PEM), e.g. an internal or ACME test CA


def _networks(values: tuple[str, ...], where: str, reading: _Reading) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    networks = []
    for value in values:
        try:
            networks.append(ipaddress.ip_network(value.strip(), strict=False))
        except ValueError:
            raise ConfigError(f"configuration key '{where}' holds {value!r}, which is not an address or network "
                              f"such as \"10.0.0.0/8\" or \"192.0.2.7\"") from None
    return tuple(networks)


@dataclass(frozen=True)
class MetricsSettings:
    # addresses that may read /metrics without a token; empty: every scrape needs a metrics token
    allow: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = setting((), list, read=_networks)
    # seconds between the probes `svcssl serve` makes of every port for /metrics; 0: only when someone looks
    probe_interval: int = setting(300, int, minimum=0, maximum=86400)


_TABLE = {"toml": dict}


@dataclass(frozen=True)
class Settings:
    server: ServerSettings = field(metadata=_TABLE)
    certificates: CertificateSettings = field(metadata=_TABLE)
    limits: LimitSettings = field(metadata=_TABLE)
    deploy: DeploySettings = field(metadata=_TABLE)
    acme: AcmeSettings = field(metadata=_TABLE)
    dns: DnsSettings = field(metadata=_TABLE)
    notify: NotifySettings = field(metadata=_TABLE)
    maintenance: MaintenanceSettings = field(metadata=_TABLE)
    services: Mapping[str, ServiceSettings] = field(default_factory=dict, metadata=_TABLE)
    source: Path | None = None
    accounts: AccountSettings = field(default_factory=AccountSettings, metadata=_TABLE)
    apache: ApacheSettings = field(default_factory=ApacheSettings, metadata=_TABLE)
    cabundles: CaBundleSettings = field(default_factory=CaBundleSettings, metadata=_TABLE)
    trust: TrustSettings = field(default_factory=TrustSettings, metadata=_TABLE)
    metrics: MetricsSettings = field(default_factory=MetricsSettings, metadata=_TABLE)

    def enabled_services(self) -> list[ServiceSettings]:
        return [s for s in self.services.values() if s.enabled]


@cache
def sections() -> dict[str, type]:
    """The top-level tables read key by key from their dataclass: every one but [services]."""
    hints = get_type_hints(Settings)
    return {f.name: hints[f.name] for f in fields(Settings) if is_dataclass(hints[f.name])}


# --- reading a document -------------------------------------------------------

_DEFAULT_DESCRIPTIONS = {
    "cpanel": "Calendar, Contacts, cPanel, WHM and Webmail (the panel itself)",
    "dovecot": "Dovecot Mail Server (IMAP/POP3)",
    "exim": "Exim Mail Server (SMTP)",
    "ftp": "FTP Server (pure-ftpd)",
    "mail_apns": "Apple Push Notification Service for iOS Mail (deprecated)",
}


def _service(name: str, table: Mapping[str, Any], reading: _Reading) -> ServiceSettings:
    where = f"services.{name}"
    if not isinstance(table, dict):
        raise ConfigError(f"configuration key '{where}' must be a table ([{where}])")
    kind = table.get("kind")
    values = _read(ServiceSettings, {"enabled": kind != "apns", **table}, where, reading)
    cert_file, key_file = values["cert_file"], values["key_file"]
    if not ((cert_file and key_file) or values["combined_file"]):
        raise ConfigError(f"service '{name}' needs 'cert_file' and 'key_file', or 'combined_file', or both")
    if (cert_file is None) != (key_file is None):
        missing = "key_file" if key_file is None else "cert_file"
        raise ConfigError(f"service '{name}' sets only one of 'cert_file' and 'key_file': add '{missing}'")
    values["description"] = values["description"] or _DEFAULT_DESCRIPTIONS.get(name, name)
    return ServiceSettings(name=name, deprecated=kind == "apns", **values)


def default_services() -> dict[str, dict[str, Any]]:
    """The embedded service set: WHM's names, files under state/live/<service>/."""
    return {
        "cpanel": {"kind": "panel", "cert_file": "live/cpanel/cert.pem", "key_file": "live/cpanel/key.pem",
                   "chain_file": "live/cpanel/chain.pem"},
        "dovecot": {"kind": "dovecot", "cert_file": "live/dovecot/cert.pem", "key_file": "live/dovecot/key.pem"},
        "exim": {"kind": "exim", "cert_file": "live/exim/cert.pem", "key_file": "live/exim/key.pem"},
        "ftp": {"kind": "pure-ftpd", "combined_file": "live/ftp/pure-ftpd.pem"},
        "mail_apns": {"kind": "apns", "enabled": False, "combined_file": "live/mail_apns/apns.pem"},
    }


def default_schedule(hostname: str) -> str:
    """Once a day at a minute chosen from the hostname: spread across servers, stable across restarts."""
    digest = int.from_bytes(hashlib.sha256(hostname.encode()).digest()[:4], "big")
    return f"{digest % 60} {(digest // 60) % 24} * * *"


def system_hostname() -> str:
    name = socket.gethostname()
    if "." not in name:
        try:
            fqdn = socket.getfqdn(name)
        except OSError:  # pragma: no cover - resolver trouble
            fqdn = name
        if "." in fqdn and not fqdn.startswith("localhost"):
            name = fqdn
    return name.lower()


def build_settings(doc: Mapping[str, Any], *, base_dir: Path, source: Path | None = None) -> Settings:
    """Turn a parsed TOML document into Settings. ``base_dir`` anchors a relative state_dir."""
    _check_keys(doc, {f.name: dict for f in fields(Settings) if "toml" in f.metadata}, "")
    server = ServerSettings(**_read(ServerSettings, doc.get("server", {}), "server", _Reading(base_dir)))
    reading = _Reading(base_dir, server.state_dir, server.hostname)
    tables = {name: cls(**_read(cls, doc.get(name, {}), name, reading))
              for name, cls in sections().items() if name != "server"}
    services_doc = doc["services"] if "services" in doc else default_services()
    services = {name: _service(name, table, reading) for name, table in services_doc.items()}
    return Settings(server=server, **tables, services=MappingProxyType(services), source=source)


def load_settings(path: str | os.PathLike[str] | None = None, *, environ: Mapping[str, str] | None = None) -> Settings:
    """Read the config named by ``path`` or $SVCSSL_CONFIG; the embedded default when neither is set."""
    environ = os.environ if environ is None else environ
    if path is None:
        path = environ.get(ENV_CONFIG) or None
    if path is None:
        return build_settings({}, base_dir=Path.cwd())
    config_path = Path(path)
    try:
        raw = read_regular(config_path, CONFIG_LIMIT)
    except OSError as exc:
        raise ConfigError(f"cannot read configuration file {config_path}: {exc.strerror}") from None
    try:
        doc = tomllib.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"configuration file {config_path} is not valid TOML: {exc}") from None
    return build_settings(doc, base_dir=config_path.parent.absolute(), source=config_path)
