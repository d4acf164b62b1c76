"""TOML configuration turned into frozen dataclasses.

With no file the embedded default applies: state in ``./state``, the hostname of
this system, and the four WHM services writing under ``state/live/<service>/``
with no reload command, so svcssl works without root. Unknown keys and wrong
types are refused, naming the key. No I/O happens at import time.
"""

from __future__ import annotations

import hashlib
import os
import socket
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Mapping
from urllib.parse import urlsplit

from .errors import ConfigError
from .fsutil import read_regular

SERVICE_KINDS = ("panel", "dovecot", "exim", "pure-ftpd", "apns", "generic")
PROBE_PROTOCOLS = ("tls", "smtp-starttls", "imap-starttls", "pop3-starttls", "ftp-auth-tls")
KEY_TYPES = ("rsa-2048", "rsa-3072", "rsa-4096", "ecdsa-p256", "ecdsa-p384")
ENV_CONFIG = "SVCSSL_CONFIG"
CONFIG_LIMIT = 1024 * 1024


def parse_listen(listen: str, what: str = "listen address") -> tuple[str, int]:
    """``host:port``, ``[v6]:port`` or ``:port`` as ``(host, port)``; host "" means every address."""
    text = listen.strip()
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"{what} {text!r} is not HOST:PORT with a port from 1 to 65535 (e.g. 0.0.0.0:2087)")
    return host.removeprefix("[").removesuffix("]"), int(port)


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
    name: str
    kind: str
    enabled: bool
    description: str
    cert_file: Path | None
    key_file: Path | None
    chain_file: Path | None
    combined_file: Path | None
    owner: str | None
    group: str | None
    key_mode: int
    cert_mode: int
    config_test: tuple[str, ...]
    reload: tuple[str, ...]
    probe: ProbeAddress | None
    deprecated: bool = False


@dataclass(frozen=True)
class ServerSettings:
    hostname: str
    main_ip: str | None
    state_dir: Path
    listen: str


@dataclass(frozen=True)
class CertificateSettings:
    key_type: str
    self_signed_days: int


@dataclass(frozen=True)
class LimitSettings:
    max_input_bytes: int


@dataclass(frozen=True)
class DeploySettings:
    command_timeout: float
    probe_timeout: float


@dataclass(frozen=True)
class AcmeSettings:
    directory: str
    email: str | None
    verify: str | None  # CA file for the ACME server's own TLS; None = the system's CAs
    key_type: str
    http01_listen: str
    webroot: Path | None
    eab_kid: str | None
    eab_hmac_key_file: Path | None
    caa_identities: tuple[str, ...]
    dns01_hook: tuple[str, ...]  # argv: validate over DNS-01 through this command instead of HTTP-01


@dataclass(frozen=True)
class DnsSettings:
    nameservers: tuple[str, ...]  # "host" or "host:port"; empty = the system's resolvers
    timeout: float


@dataclass(frozen=True)
class NotifySettings:
    smtp_host: str | None  # None: no mail is sent
    smtp_port: int
    starttls: bool
    username: str | None
    password_file: Path | None
    sender: str
    recipient: str | None
    expiry_days: int
    panel_url: str | None
    ca_file: Path | None = None  # CA certificates (PEM) the relay's STARTTLS certificate is checked against


@dataclass(frozen=True)
class MaintenanceSettings:
    schedule: str  # cron expression (minute hour day month weekday)
    own_ca_renew_days: int
    other_renew_days: int


@dataclass(frozen=True)
class AccountSettings:
    home_root: Path = Path("/home")  # <home_root>/<user>/ssl/certs/*.crt and ssl/keys/*.key


APACHE_DEFAULT_CONFIGS = (Path("/etc/apache2/apache2.conf"), Path("/etc/httpd/conf/httpd.conf"))


@dataclass(frozen=True)
class ApacheSettings:
    config_file: Path | None = None  # None: Debian's apache2.conf if it exists, else RHEL's httpd.conf

    def candidates(self) -> tuple[Path, ...]:
        return (self.config_file,) if self.config_file is not None else APACHE_DEFAULT_CONFIGS


@dataclass(frozen=True)
class CaBundleSettings:
    dirs: tuple[Path, ...] = ()  # directories of CA certificates trusted for building CA bundles
    aia_fetch: bool = False  # download a missing issuer from the certificate's caIssuers URL


@dataclass(frozen=True)
class Settings:
    server: ServerSettings
    certificates: CertificateSettings
    limits: LimitSettings
    deploy: DeploySettings
    acme: AcmeSettings
    dns: DnsSettings
    notify: NotifySettings
    maintenance: MaintenanceSettings
    services: Mapping[str, ServiceSettings] = field(default_factory=dict)
    source: Path | None = None
    accounts: AccountSettings = field(default_factory=AccountSettings)
    apache: ApacheSettings = field(default_factory=ApacheSettings)
    cabundles: CaBundleSettings = field(default_factory=CaBundleSettings)

    def enabled_services(self) -> list[ServiceSettings]:
        return [s for s in self.services.values() if s.enabled]


# --- schema -----------------------------------------------------------------

_SERVER_KEYS: dict[str, type] = {"hostname": str, "main_ip": str, "state_dir": str, "listen": str}
_CERTIFICATE_KEYS: dict[str, type] = {"key_type": str, "self_signed_days": int}
_LIMIT_KEYS: dict[str, type] = {"max_input_bytes": int}
_DEPLOY_KEYS: dict[str, type] = {"command_timeout": (int, float), "probe_timeout": (int, float)}  # type: ignore[dict-item]
_ACME_KEYS: dict[str, Any] = {
    "directory": str, "email": str, "verify": str, "key_type": str, "http01_listen": str, "webroot": str,
    "eab_kid": str, "eab_hmac_key_file": str, "caa_identities": list, "dns01_hook": list,
}
_DNS_KEYS: dict[str, Any] = {"nameservers": list, "timeout": (int, float)}
_NOTIFY_KEYS: dict[str, Any] = {
    "smtp_host": str, "smtp_port": int, "starttls": bool, "username": str, "password_file": str, "sender": str,
    "recipient": str, "expiry_days": int, "panel_url": str, "ca_file": str,
}
_MAINTENANCE_KEYS: dict[str, Any] = {"schedule": str, "own_ca_renew_days": int, "other_renew_days": int}
_ACCOUNTS_KEYS: dict[str, Any] = {"home_root": str}
_APACHE_KEYS: dict[str, Any] = {"config_file": str}
_CABUNDLES_KEYS: dict[str, Any] = {"dirs": list, "aia_fetch": bool}
_SERVICE_KEYS: dict[str, Any] = {
    "kind": str,
    "enabled": bool,
    "description": str,
    "cert_file": str,
    "key_file": str,
    "chain_file": str,
    "combined_file": str,
    "owner": str,
    "group": str,
    "key_mode": str,
    "cert_mode": str,
    "config_test": list,
    "reload": list,
    "probe": str,
}
_TOP_KEYS = ("server", "certificates", "limits", "deploy", "acme", "dns", "notify", "maintenance", "services",
             "accounts", "apache", "cabundles")
LETS_ENCRYPT = "https://acme-v02.api.letsencrypt.org/directory"

_TYPE_NAMES = {str: "a string", int: "an integer", bool: "true or false", list: "a list of strings", dict: "a table"}

_DEFAULT_DESCRIPTIONS = {
    "cpanel": "Calendar, Contacts, cPanel, WHM and Webmail (the panel itself)",
    "dovecot": "Dovecot Mail Server (IMAP/POP3)",
    "exim": "Exim Mail Server (SMTP)",
    "ftp": "FTP Server (pure-ftpd)",
    "mail_apns": "Apple Push Notification Service for iOS Mail (deprecated)",
}


def _check_keys(table: Mapping[str, Any], schema: Mapping[str, Any], where: str) -> None:
    for key, value in table.items():
        name = f"{where}.{key}" if where else key
        if key not in schema:
            allowed = ", ".join(sorted(schema))
            raise ConfigError(f"unknown configuration key '{name}' (allowed here: {allowed})")
        expected = schema[key]
        if expected is bool:
            ok = isinstance(value, bool)
        elif isinstance(expected, tuple):
            ok = isinstance(value, expected) and not isinstance(value, bool)
            expected = float
        else:
            ok = isinstance(value, expected) and not (expected is int and isinstance(value, bool))
        if expected is list and ok:
            ok = all(isinstance(item, str) for item in value)
        if not ok:
            want = _TYPE_NAMES.get(expected, "a number")
            raise ConfigError(f"configuration key '{name}' must be {want}, not {type(value).__name__}")


def _table(doc: Mapping[str, Any], key: str, schema: Mapping[str, Any]) -> Mapping[str, Any]:
    """The top-level table ``key`` (empty when absent), its keys and types checked against ``schema``."""
    value = doc.get(key, {})
    if not isinstance(value, dict):
        raise ConfigError(f"configuration key '{key}' must be a table ([{key}])")
    _check_keys(value, schema, key)
    return value


def _key_type(table: Mapping[str, Any], where: str) -> str:
    key_type = table.get("key_type", "rsa-2048")
    if key_type not in KEY_TYPES:
        raise ConfigError(f"configuration key '{where}.key_type' must be one of {', '.join(KEY_TYPES)}, not {key_type!r}")
    return key_type


def _mode(value: str | None, default: int, where: str) -> int:
    if value is None:
        return default
    try:
        mode = int(value, 8)
    except ValueError:
        raise ConfigError(f"configuration key '{where}' must be an octal string such as \"0640\", not {value!r}") from None
    if not 0 <= mode <= 0o777:
        raise ConfigError(f"configuration key '{where}' must be a file mode between \"0000\" and \"0777\"")
    return mode


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


def _path(value: str | None, state_dir: Path) -> Path | None:
    if value is None or value == "":
        return None
    path = Path(value)
    return path if path.is_absolute() else state_dir / path


def _service(name: str, table: Mapping[str, Any], state_dir: Path) -> ServiceSettings:
    where = f"services.{name}"
    if not isinstance(table, dict):
        raise ConfigError(f"configuration key '{where}' must be a table ([{where}])")
    _check_keys(table, _SERVICE_KEYS, where)
    kind = table.get("kind")
    if kind is None:
        raise ConfigError(f"configuration key '{where}.kind' is required (one of {', '.join(SERVICE_KINDS)})")
    if kind not in SERVICE_KINDS:
        raise ConfigError(f"configuration key '{where}.kind' must be one of {', '.join(SERVICE_KINDS)}, not {kind!r}")
    cert_file = _path(table.get("cert_file"), state_dir)
    key_file = _path(table.get("key_file"), state_dir)
    combined_file = _path(table.get("combined_file"), state_dir)
    if not ((cert_file and key_file) or combined_file):
        raise ConfigError(f"service '{name}' needs 'cert_file' and 'key_file', or 'combined_file', or both")
    if (cert_file is None) != (key_file is None):
        missing = "key_file" if key_file is None else "cert_file"
        raise ConfigError(f"service '{name}' sets only one of 'cert_file' and 'key_file': add '{missing}'")
    probe = table.get("probe")
    return ServiceSettings(
        name=name,
        kind=kind,
        enabled=table.get("enabled", kind != "apns"),
        description=table.get("description") or _DEFAULT_DESCRIPTIONS.get(name, name),
        cert_file=cert_file,
        key_file=key_file,
        chain_file=_path(table.get("chain_file"), state_dir),
        combined_file=combined_file,
        owner=table.get("owner") or None,
        group=table.get("group") or None,
        key_mode=_mode(table.get("key_mode"), 0o600, f"{where}.key_mode"),
        cert_mode=_mode(table.get("cert_mode"), 0o644, f"{where}.cert_mode"),
        config_test=tuple(table.get("config_test", ())),
        reload=tuple(table.get("reload", ())),
        probe=parse_probe(probe, f"{where}.probe") if probe else None,
        deprecated=kind == "apns",
    )


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
    _check_keys(doc, {k: dict for k in _TOP_KEYS}, "")
    server = _table(doc, "server", _SERVER_KEYS)
    certificates = _table(doc, "certificates", _CERTIFICATE_KEYS)
    limits = _table(doc, "limits", _LIMIT_KEYS)
    deploy = _table(doc, "deploy", _DEPLOY_KEYS)

    state_dir = Path(server.get("state_dir", "state"))
    if not state_dir.is_absolute():
        state_dir = (base_dir / state_dir).absolute()
    hostname = (server.get("hostname") or system_hostname()).strip().rstrip(".").lower()
    key_type = _key_type(certificates, "certificates")
    days = certificates.get("self_signed_days", 365)
    if not 1 <= days <= 3650:
        raise ConfigError("configuration key 'certificates.self_signed_days' must be between 1 and 3650")
    max_input = limits.get("max_input_bytes", 1024 * 1024)
    if max_input < 16 * 1024:
        raise ConfigError("configuration key 'limits.max_input_bytes' must be at least 16384")

    acme = _table(doc, "acme", _ACME_KEYS)
    acme_key_type = _key_type(acme, "acme")
    dns_table = _table(doc, "dns", _DNS_KEYS)
    notify = _table(doc, "notify", _NOTIFY_KEYS)
    maintenance = _table(doc, "maintenance", _MAINTENANCE_KEYS)
    schedule = maintenance.get("schedule") or default_schedule(hostname)
    if len(schedule.split()) != 5:
        raise ConfigError("configuration key 'maintenance.schedule' must be a cron expression with five fields, "
                          f"e.g. \"17 3 * * *\", not {schedule!r}")

    accounts = _table(doc, "accounts", _ACCOUNTS_KEYS)
    home_root = _path(accounts.get("home_root") or "/home", state_dir)
    apache = _table(doc, "apache", _APACHE_KEYS)
    cabundles = _table(doc, "cabundles", _CABUNDLES_KEYS)
    ca_dirs = tuple(p for p in (_path(d, state_dir) for d in cabundles.get("dirs", ())) if p is not None)

    services_doc = doc["services"] if "services" in doc else default_services()
    services = {name: _service(name, table, state_dir) for name, table in services_doc.items()}
    return Settings(
        server=ServerSettings(
            hostname=hostname,
            main_ip=server.get("main_ip") or None,
            state_dir=state_dir,
            listen=server.get("listen", "0.0.0.0:2087"),
        ),
        certificates=CertificateSettings(key_type=key_type, self_signed_days=days),
        limits=LimitSettings(max_input_bytes=max_input),
        deploy=DeploySettings(
            command_timeout=float(deploy.get("command_timeout", 60)),
            probe_timeout=float(deploy.get("probe_timeout", 15)),
        ),
        acme=AcmeSettings(
            directory=acme.get("directory", LETS_ENCRYPT),
            email=acme.get("email") or None,
            verify=acme.get("verify") or None,
            key_type=acme_key_type,
            http01_listen=acme.get("http01_listen", "0.0.0.0:80"),
            webroot=_path(acme.get("webroot"), state_dir),
            eab_kid=acme.get("eab_kid") or None,
            eab_hmac_key_file=_path(acme.get("eab_hmac_key_file"), state_dir),
            caa_identities=tuple(acme.get("caa_identities", ["letsencrypt.org"])),
            dns01_hook=tuple(acme.get("dns01_hook", ())),
        ),
        dns=DnsSettings(nameservers=tuple(dns_table.get("nameservers", ())),
                        timeout=float(dns_table.get("timeout", 3.0))),
        notify=NotifySettings(
            smtp_host=notify.get("smtp_host") or None,
            smtp_port=notify.get("smtp_port", 25),
            starttls=notify.get("starttls", False),
            username=notify.get("username") or None,
            password_file=_path(notify.get("password_file"), state_dir),
            sender=notify.get("sender") or f"svcssl@{hostname}",
            recipient=notify.get("recipient") or None,
            expiry_days=notify.get("expiry_days", 20),
            panel_url=notify.get("panel_url") or None,
            ca_file=_path(notify.get("ca_file"), state_dir),
        ),
        maintenance=MaintenanceSettings(
            schedule=schedule,
            own_ca_renew_days=maintenance.get("own_ca_renew_days", 25),
            other_renew_days=maintenance.get("other_renew_days", 3),
        ),
        services=MappingProxyType(services),
        source=source,
        accounts=AccountSettings(home_root=home_root),
        apache=ApacheSettings(config_file=_path(apache.get("config_file"), state_dir)),
        cabundles=CaBundleSettings(dirs=ca_dirs, aia_fetch=cabundles.get("aia_fetch", False)),
    )


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
