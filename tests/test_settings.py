"""Configuration: the embedded default, the documented example, and refusals that name the key."""

from __future__ import annotations

import re
import tomllib
from dataclasses import MISSING, fields
from pathlib import Path

import pytest

from svcssl.errors import ConfigError
from svcssl.settings import ServiceSettings, build_settings, declared_keys, load_settings, sections

ROOT = Path(__file__).resolve().parent.parent


def test_embedded_default(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SVCSSL_CONFIG", raising=False)
    settings = load_settings()
    assert settings.server.state_dir == tmp_path / "state"
    assert list(settings.services) == ["cpanel", "dovecot", "exim", "ftp", "mail_apns"]
    assert [s.name for s in settings.enabled_services()] == ["cpanel", "dovecot", "exim", "ftp"]
    assert settings.services["ftp"].combined_file == tmp_path / "state/live/ftp/pure-ftpd.pem"
    assert settings.services["dovecot"].key_mode == 0o600 and settings.services["dovecot"].reload == ()
    assert settings.services["mail_apns"].deprecated and settings.services["mail_apns"].kind == "apns"
    assert settings.server.hostname


def test_environment_variable_names_the_file(tmp_path):
    config = tmp_path / "x.toml"
    config.write_text('[server]\nhostname = "Host.Example.COM."\nstate_dir = "st"\n')
    settings = load_settings(environ={"SVCSSL_CONFIG": str(config)})
    assert settings.server.hostname == "host.example.com"
    assert settings.server.state_dir == tmp_path / "st"


def test_services_table_is_the_complete_set():
    settings = build_settings({"services": {"postfix": {"kind": "generic", "cert_file": "/a", "key_file": "/b",
                                                        "reload": ["postfix", "reload"],
                                                        "probe": "smtp-starttls://127.0.0.1:25"}}}, base_dir=Path("/"))
    assert list(settings.services) == ["postfix"]
    postfix = settings.services["postfix"]
    assert postfix.reload == ("postfix", "reload") and str(postfix.probe) == "smtp-starttls://127.0.0.1:25"


@pytest.mark.parametrize("doc, message", [
    ({"sever": {}}, "'sever'"),
    ({"server": {"hostname": 3}}, "'server.hostname' must be a string"),
    ({"services": {"x": {"kind": "nginx", "cert_file": "/a", "key_file": "/b"}}}, "'services.x.kind' must be one of"),
    ({"services": {"x": {"kind": "generic"}}}, "needs 'cert_file' and 'key_file', or 'combined_file'"),
    ({"services": {"x": {"kind": "generic", "cert_file": "/a"}}}, "needs 'cert_file' and 'key_file'"),
    ({"services": {"x": {"kind": "generic", "combined_file": "/a", "reload": "systemctl reload x"}}},
     "'services.x.reload' must be a list of strings"),
    ({"services": {"x": {"kind": "generic", "combined_file": "/a", "key_mode": "0999"}}}, "octal"),
    ({"services": {"x": {"kind": "generic", "combined_file": "/a", "probe": "https://h:1"}}}, "'services.x.probe'"),
    ({"services": {"x": {"kind": "generic", "combined_file": "/a", "probe": "tls://h"}}}, "needs a host and a port"),
    ({"services": {"x": {"kind": "generic", "combined_file": "/a", "enabled": "yes"}}}, "must be true or false"),
    ({"services": {"x": {"kind": "generic", "combined_file": "/a", "cert_flie": "/b"}}}, "'services.x.cert_flie'"),
    ({"certificates": {"key_type": "dsa"}}, "'certificates.key_type'"),
])
def test_bad_configuration_is_refused_with_the_key_name(doc, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        build_settings(doc, base_dir=Path("/"))


# Keys whose value in config.example.toml is deliberately not the default: a placeholder for the
# reader's own value, or Debian's layout. Every other key shows its default.
EXAMPLE_NOT_DEFAULT = {
    "server.hostname": "a placeholder; the default is this system's hostname",
    "server.state_dir": "Debian's /var/lib/svcssl; the default is ./state",
    "acme.email": "a placeholder; the default is none",
    "notify.smtp_host": "a local relay; the default is none (no mail)",
    "notify.sender": "a placeholder; the default is svcssl@<hostname>",
    "notify.recipient": "a placeholder; the default is none (no mail)",
    "maintenance.schedule": "an example; the default is a daily minute derived from the hostname",
}


HOSTNAME = "svcssl-test.invalid"  # fixed, so that defaults derived from the hostname compare


def _read_alone(table, key, value, base_dir):
    """The field ``table.key`` as read from a document that sets only that key (and a fixed hostname)."""
    doc = {"server": {"hostname": HOSTNAME}}
    doc[table] = {**doc.get(table, {}), key: value}
    return getattr(getattr(build_settings(doc, base_dir=base_dir), table), key)


def test_example_config_documents_every_key_and_loads(tmp_path):
    example = ROOT / "config.example.toml"
    settings = load_settings(example)
    assert set(settings.services) >= {"cpanel", "dovecot", "exim", "ftp", "mail_apns"}
    exim = settings.services["exim"]
    assert exim.group == "Debian-exim" and exim.key_mode == 0o640
    assert settings.services["dovecot"].reload[0] == "doveadm"
    doc = tomllib.loads(example.read_text())
    declared = {f"{table}.{key}" for table, cls in sections().items() for key in declared_keys(cls)}
    assert set(EXAMPLE_NOT_DEFAULT) <= declared
    defaults = build_settings({"server": {"hostname": HOSTNAME}}, base_dir=tmp_path)
    for table, cls in sections().items():
        for key in declared_keys(cls):
            name = f"{table}.{key}"
            assert key in doc.get(table, {}), f"config.example.toml does not document '{name}'"
            shown = _read_alone(table, key, doc[table][key], tmp_path)
            default = getattr(getattr(defaults, table), key)
            if name in EXAMPLE_NOT_DEFAULT:
                assert shown != default, f"'{name}' shows its default now: drop it from EXAMPLE_NOT_DEFAULT"
            else:
                assert shown == default, f"config.example.toml shows '{name}' = {doc[table][key]!r}, not its default"


def test_example_config_documents_every_service_key():
    text = (ROOT / "config.example.toml").read_text()
    block = text[text.index("# Keys of a service:"):text.index("# Commands are argv lists")]
    services = tomllib.loads(text)["services"]
    minimal = {"kind": "generic", "combined_file": "/a"}
    default = build_settings({"services": {"x": minimal}}, base_dir=Path("/")).services["x"]
    for f in fields(ServiceSettings):
        if f.name not in declared_keys(ServiceSettings):
            continue
        line = re.search(rf"^#\s+(?:\w+, )*{f.name}\b.*$", block, re.M)
        assert line, f"config.example.toml does not document the service key '{f.name}'"
        assert any(f.name in service for service in services.values()), f"no example service sets '{f.name}'"
        if f.default not in (MISSING, None, "", ()):
            documented = re.search(r"\(default ([^;)]+)", line.group())
            assert documented, f"the service key '{f.name}' is documented without its default"
            value = tomllib.loads(f"v = {documented.group(1)}")["v"]
            service = build_settings({"services": {"x": {**minimal, f.name: value}}}, base_dir=Path("/")).services["x"]
            assert getattr(service, f.name) == getattr(default, f.name), f"wrong default documented for '{f.name}'"


@pytest.mark.parametrize("schedule, message", [
    ("17 3 * *", "must be a cron expression with five fields"),
    ("61 3 * * *", "'maintenance.schedule' is not a valid cron expression: Error validating expression '61'"),
    ("17 3 * * 8", "'maintenance.schedule' is not a valid cron expression"),
])
def test_schedule_is_checked_at_load_with_apschedulers_parser(schedule, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        build_settings({"maintenance": {"schedule": schedule}}, base_dir=Path("/"))
    assert build_settings({"maintenance": {"schedule": "*/5 1-3 * * mon-fri"}},
                          base_dir=Path("/")).maintenance.schedule == "*/5 1-3 * * mon-fri"


def test_ranges_are_refused_with_the_bound():
    for doc, message in (({"limits": {"max_input_bytes": 16383}}, "'limits.max_input_bytes' must be at least 16384"),
                         ({"certificates": {"self_signed_days": 0}},
                          "'certificates.self_signed_days' must be between 1 and 3650"),
                         ({"deploy": {"command_timeout": True}}, "'deploy.command_timeout' must be a number, not bool")):
        with pytest.raises(ConfigError, match=re.escape(message)):
            build_settings(doc, base_dir=Path("/"))


def test_discovery_settings_defaults_and_refusals(tmp_path):
    settings = build_settings({}, base_dir=tmp_path)
    assert settings.accounts.home_root == Path("/home")
    assert settings.apache.config_file is None
    assert settings.apache.candidates() == (Path("/etc/apache2/apache2.conf"), Path("/etc/httpd/conf/httpd.conf"))
    assert settings.cabundles.dirs == () and settings.cabundles.aia_fetch is False
    settings = build_settings({"server": {"state_dir": str(tmp_path)}, "accounts": {"home_root": "/srv/home"},
                               "apache": {"config_file": "/opt/httpd.conf"},
                               "cabundles": {"dirs": ["/etc/svcssl/ca", "ca"], "aia_fetch": True}}, base_dir=tmp_path)
    assert settings.accounts.home_root == Path("/srv/home")
    assert settings.apache.candidates() == (Path("/opt/httpd.conf"),)
    assert settings.cabundles.dirs == (Path("/etc/svcssl/ca"), tmp_path / "ca") and settings.cabundles.aia_fetch
    for doc, message in (({"accounts": {"home_root": 3}}, "'accounts.home_root' must be a string"),
                         ({"accounts": {"home": "/x"}}, "'accounts.home'"),
                         ({"cabundles": {"aia_fetch": "yes"}}, "'cabundles.aia_fetch' must be true or false"),
                         ({"cabundles": {"dirs": "/etc/ca"}}, "'cabundles.dirs' must be a list of strings"),
                         ({"apache": ["x"]}, "'apache' must be a table")):
        with pytest.raises(ConfigError, match=re.escape(message)):
            build_settings(doc, base_dir=tmp_path)
