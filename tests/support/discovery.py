"""Real file trees for the discovery tests: accounts' SSL storage, and Apache layouts as Debian and RHEL ship them.

``tests/data/apache-debian`` holds Debian 12's own files from the apache2 package (apache2.conf,
envvars, ports.conf, a few mods-available, sites-available, conf-available), unchanged; a test
copies them and enables modules and sites with symlinks as a2enmod/a2ensite do. The RHEL layout
is written here after RHEL 9's httpd (httpd.conf with ServerRoot "/etc/httpd", conf.modules.d,
conf.d/ssl.conf with its continued lines).
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from cryptography import x509

from support import pki
from svcssl.x509.generate import make_self_signed

DEBIAN_DATA = Path(__file__).resolve().parent.parent / "data" / "apache-debian"
DEBIAN_MODULES = ("mpm_event.load", "mpm_event.conf", "mime.load", "mime.conf", "setenvif.load", "setenvif.conf",
                  "socache_shmcb.load", "ssl.load", "ssl.conf")


def lets_encrypt():
    """A CA shaped like Let's Encrypt's: ISRG Root X1 → R11, Let's Encrypt (P-384 root, P-256 issuing CA)."""
    root_key = pki.ec_key(300, "p384")
    root = pki.make_ca("ISRG Root X1", root_key, org="Internet Security Research Group")
    r11_key = pki.ec_key(301)
    r11 = pki.make_ca("R11", r11_key, (root, root_key), org="Let's Encrypt")
    return pki.Pki(root, root_key, r11, r11_key)


def issue(names: list[str], slot: int, ca: pki.Pki | None = None, **kwargs) -> tuple[x509.Certificate, object]:
    """A leaf with an ECDSA key of its own (fast to make), issued by ``ca`` (default: the test PKI)."""
    ca = ca or pki.pki()
    return ca.leaf(names, key=pki.ec_key(slot), **kwargs)


def self_signed(name: str, slot: int) -> tuple[x509.Certificate, object]:
    """As WHM's reset makes them (CN and SAN = the name, serverAuth), with an ECDSA key."""
    key = pki.ec_key(slot)
    return make_self_signed(name, key, pki.NOW), key


def installed(world) -> dict[str, str]:
    """Each service's installed fingerprint, as the panel reads it."""
    from svcssl.operations.context import open_context
    from svcssl.operations.inventory import list_services

    ctx = open_context(world.panel.settings)
    try:
        return {s.service.name: s.fingerprint for s in list_services(ctx)}
    finally:
        ctx.store.close()


def write_account(home: Path, user: str, certs: dict[str | bytes, bytes] | None = None,
                  keys: dict[str | bytes, bytes] | None = None) -> Path:
    """``<home>/<user>/ssl/certs/<name>`` and ``ssl/keys/<name>``; names may be bytes (not UTF-8)."""
    base = home / user / "ssl"
    for sub, files in (("certs", certs or {}), ("keys", keys or {})):
        directory = base / sub
        directory.mkdir(parents=True, exist_ok=True)
        for name, data in files.items():
            target = (bytes(directory) + b"/" + name) if isinstance(name, bytes) else directory / name
            with open(target, "wb") as handle:
                handle.write(data)
    return home / user


def debian_apache(root: Path, ssl_dir: Path, *, modules=DEBIAN_MODULES, default_ssl: bool = True,
                  sites: dict[str, str] | None = None) -> Path:
    """Debian's /etc/apache2 under ``root``, modules and sites enabled by symlinks; returns apache2.conf.

    The snakeoil paths of default-ssl.conf point into ``ssl_dir`` (the test writes the files there).
    """
    etc = root / "apache2"
    shutil.copytree(DEBIAN_DATA, etc)
    for name in ("mods-enabled", "sites-enabled", "conf-enabled"):
        (etc / name).mkdir()
    for module in modules:
        (etc / "mods-enabled" / module).symlink_to(f"../mods-available/{module}")
    (etc / "conf-enabled" / "security.conf").symlink_to("../conf-available/security.conf")
    (etc / "sites-enabled" / "000-default.conf").symlink_to("../sites-available/000-default.conf")
    default_ssl_file = etc / "sites-available" / "default-ssl.conf"
    default_ssl_file.write_text(default_ssl_file.read_text()
                                .replace("/etc/ssl/certs/ssl-cert-snakeoil.pem", str(ssl_dir / "ssl-cert-snakeoil.pem"))
                                .replace("/etc/ssl/private/ssl-cert-snakeoil.key", str(ssl_dir / "ssl-cert-snakeoil.key")))
    if default_ssl:
        (etc / "sites-enabled" / "default-ssl.conf").symlink_to("../sites-available/default-ssl.conf")
    for name, text in (sites or {}).items():
        (etc / "sites-available" / name).write_text(text)
        (etc / "sites-enabled" / name).symlink_to(f"../sites-available/{name}")
    return etc / "apache2.conf"


RHEL_HTTPD_CONF = '''#
# This is the main Apache HTTP server configuration file.  It contains the
# configuration directives that give the server its instructions.
#
ServerRoot "{server_root}"

Listen 80

Include conf.modules.d/*.conf

User apache
Group apache

ServerAdmin root@localhost

<Directory />
    AllowOverride none
    Require all denied
</Directory>

DocumentRoot "/var/www/html"

<Directory "/var/www">
    AllowOverride None
    Require all granted
</Directory>

<IfModule dir_module>
    DirectoryIndex index.html
</IfModule>

<Files ".ht*">
    Require all denied
</Files>

ErrorLog "logs/error_log"
LogLevel warn

<IfModule log_config_module>
    LogFormat "%h %l %u %t \\"%r\\" %>s %b \\"%{{Referer}}i\\" \\"%{{User-Agent}}i\\"" combined
    CustomLog "logs/access_log" combined
</IfModule>

<IfModule mime_magic_module>
    MIMEMagicFile conf/magic
</IfModule>

EnableSendfile on

# Supplemental configuration
#
# Load config files in the "/etc/httpd/conf.d" directory, if any.
IncludeOptional conf.d/*.conf
'''

RHEL_SSL_CONF = '''#
# When we also provide SSL we have to listen to the
# standard HTTPS port in addition.
#
Listen 443 https

SSLPassPhraseDialog exec:/usr/libexec/httpd-ssl-pass-dialog
SSLSessionCache         shmcb:/run/httpd/sslcache(512000)
SSLSessionCacheTimeout  300
SSLCryptoDevice builtin

<VirtualHost _default_:443>

ErrorLog logs/ssl_error_log
TransferLog logs/ssl_access_log
LogLevel warn

SSLEngine on

SSLHonorCipherOrder on

SSLCipherSuite PROFILE=SYSTEM
SSLProxyCipherSuite PROFILE=SYSTEM

#   Server Certificate:
SSLCertificateFile {ssl_dir}/certs/localhost.crt

#   Server Private Key:
SSLCertificateKeyFile {ssl_dir}/private/localhost.key

#   Server Certificate Chain:
#SSLCertificateChainFile /etc/pki/tls/certs/server-chain.crt

<FilesMatch "\\.(cgi|shtml|phtml|php)$">
    SSLOptions +StdEnvVars
</FilesMatch>
<Directory "/var/www/cgi-bin">
    SSLOptions +StdEnvVars
</Directory>

BrowserMatch "MSIE [2-5]" \\
         nokeepalive ssl-unclean-shutdown \\
         downgrade-1.0 force-response-1.0

CustomLog logs/ssl_request_log \\
          "%t %h %{{SSL_PROTOCOL}}x %{{SSL_CIPHER}}x \\"%r\\" %b"

</VirtualHost>
'''


def rhel_apache(root: Path, ssl_dir: Path, *, ssl_module: bool = True, conf_d: dict[str, str] | None = None) -> Path:
    """RHEL's /etc/httpd under ``root``; returns conf/httpd.conf (ServerRoot names ``root/httpd``)."""
    etc = root / "httpd"
    for sub in ("conf", "conf.d", "conf.modules.d"):
        (etc / sub).mkdir(parents=True)
    (etc / "conf" / "httpd.conf").write_text(RHEL_HTTPD_CONF.format(server_root=etc))
    (etc / "conf.modules.d" / "00-base.conf").write_text(
        "LoadModule dir_module modules/mod_dir.so\nLoadModule log_config_module modules/mod_log_config.so\n"
        "LoadModule mime_magic_module modules/mod_mime_magic.so\n")
    (etc / "conf.modules.d" / "00-mpm.conf").write_text("LoadModule mpm_event_module modules/mod_mpm_event.so\n")
    if ssl_module:
        (etc / "conf.modules.d" / "00-ssl.conf").write_text("LoadModule ssl_module modules/mod_ssl.so\n")
        (etc / "conf.d" / "ssl.conf").write_text(RHEL_SSL_CONF.format(ssl_dir=ssl_dir))
    (etc / "conf.d" / "welcome.conf").write_text(
        "<LocationMatch \"^/+$\">\n    Options -Indexes\n    ErrorDocument 403 /.noindex.html\n</LocationMatch>\n")
    for name, text in (conf_d or {}).items():
        (etc / "conf.d" / name).write_text(text)
    return etc / "conf" / "httpd.conf"


def expired(names: list[str], slot: int):
    return issue(names, slot, not_before=pki.NOW - timedelta(days=100), not_after=pki.NOW - timedelta(days=10))


# --- a whole server: the panel, accounts, Apache, a CA directory ------------------------------------


@dataclass
class World:
    panel: object  # panel_support.Panel
    home: Path
    apache_config: Path
    ca_dir: Path
    certs: dict  # name → (leaf, key)


def make_world(tmp_path: Path, **panel_kwargs) -> World:
    """The test panel (root, alice without the privilege, bob with it) on a server with:

    - accounts: carol (assigned to bob) with a certificate and key, a self-signed one, a broken file,
      a key without certificate, a symbolic link and a file name that is not UTF-8; dave (nobody's)
      with a full-chain file; erin with a certificate from an issuer that is nowhere on the server;
    - Apache (Debian's layout): the default SSL site and www.store.example with a chain file;
    - a CA directory with the test intermediate.
    """
    from support.panel import make_panel

    home = tmp_path / "home"
    ssl = tmp_path / "ssl"
    ssl.mkdir()
    ca_dir = tmp_path / "ca"
    ca_dir.mkdir()
    ca = pki.pki()
    (ca_dir / "test-intermediate.pem").write_bytes(pki.pem(ca.intermediate))
    certs = {
        "shop": issue(["shop.example.com", "www.shop.example.com"], 41),
        "selfsigned": self_signed("self.example.com", 42),
        "cafe": issue(["cafe.example.com"], 43),
        "dave": issue(["mail.example.net"], 44),
        "erin": issue(["erin.example.org"], 45, lets_encrypt()),
        "snakeoil": issue(["snake.example.org"], 46),
        "store": issue(["www.store.example", "store.example"], 47),
    }
    pem = {name: pki.pem(leaf) for name, (leaf, _) in certs.items()}
    key = {name: pki.key_pem(k) for name, (_, k) in certs.items()}
    write_account(home, "carol",
                  {"shop_example_com.crt": pem["shop"], "selfsigned.crt": pem["selfsigned"],
                   "broken.crt": b"-----BEGIN CERTIFICATE-----\nMIIB\n", b"caf\xe9.crt": pem["cafe"]},
                  {"shop_example_com.key": key["shop"], "selfsigned.key": key["selfsigned"],
                   "cafe.key": key["cafe"], "orphan.key": pki.key_pem(pki.ec_key(48))})
    os.symlink("/etc/passwd", home / "carol/ssl/certs/passwd.crt")
    write_account(home, "dave", {"mail.crt": pem["dave"] + pki.pem(ca.intermediate)}, {"mail.key": key["dave"]})
    write_account(home, "erin", {"erin.crt": pem["erin"]}, {"erin.key": key["erin"]})
    (ssl / "ssl-cert-snakeoil.pem").write_bytes(pem["snakeoil"])
    (ssl / "ssl-cert-snakeoil.key").write_bytes(key["snakeoil"])
    (ssl / "store.pem").write_bytes(pem["store"])
    (ssl / "store.key").write_bytes(key["store"])
    (ssl / "store-chain.pem").write_bytes(pki.pem(ca.intermediate))
    store_site = ("<IfModule mod_ssl.c>\n<VirtualHost *:443>\n  ServerName www.store.example\n"
                  "  ServerAlias store.example\n  DocumentRoot " + str(home / "dave/public_html") + "\n"
                  "  SSLEngine on\n  SSLCertificateFile " + str(ssl / "store.pem") + "\n"
                  "  SSLCertificateKeyFile " + str(ssl / "store.key") + "\n"
                  "  SSLCertificateChainFile " + str(ssl / "store-chain.pem") + "\n</VirtualHost>\n</IfModule>\n")
    apache_config = debian_apache(tmp_path, ssl, sites={"store.conf": store_site})
    extra = (f'\n[accounts]\nhome_root = "{home}"\n[apache]\nconfig_file = "{apache_config}"\n'
             f'[cabundles]\ndirs = ["{ca_dir}"]\n')
    panel = make_panel(tmp_path, extra=extra + panel_kwargs.pop("extra", ""), **panel_kwargs)
    from svcssl.operations.accounts import assign_accounts
    from svcssl.operations.browse import refresh_index
    from svcssl.operations.context import open_context

    ctx = open_context(panel.settings)
    try:
        assign_accounts(ctx, "bob", ["carol"], actor="test")
        refresh_index(ctx)
    finally:
        ctx.store.close()
    return World(panel, home, apache_config, ca_dir, certs)
