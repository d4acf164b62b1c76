"""Discovery on real file trees: Apache layouts (Debian's own files, RHEL's), accounts' SSL storage, the index, CA bundles."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest

from support import pki
from support.discovery import debian_apache, issue, lets_encrypt, rhel_apache, self_signed, write_account
from servers.http import silent_tcp_port, start_http_server
from svcssl.discovery import index as index_module
from svcssl.discovery.accounts import read_storage_file, scan_accounts
from svcssl.discovery.apache import logical_lines, read_apache_config, split_words
from svcssl.discovery.cabundles import AiaFetcher, build_chain
from svcssl.discovery.index import parse_file
from svcssl.store.discovery import DiscoveryIndex
from svcssl.store.schema import migrate


def problems_text(config) -> str:
    return "\n".join(str(p) for p in config.problems)


# --- Apache: the grammar ---------------------------------------------------------------------------


def test_words_quotes_and_continued_lines():
    assert split_words('SSLCertificateFile "/etc/ssl/my certs/a.pem"') == ["SSLCertificateFile", "/etc/ssl/my certs/a.pem"]
    assert split_words("LogFormat '%h \"x\"' combined") == ["LogFormat", '%h "x"', "combined"]
    assert split_words(r'Header "say \"hi\""') == ["Header", 'say "hi"']
    lines = logical_lines("# comment \\\n  still comment\nServerAlias a.example \\\n    b.example\n\n  Listen 443\n")
    assert lines == [(3, "ServerAlias a.example     b.example"), (6, "Listen 443")]


# --- Apache: real layouts -------------------------------------------------------------------------------


def test_debian_layout_with_its_own_files(tmp_path):
    ssl = tmp_path / "ssl"
    ssl.mkdir()
    shop = """<IfModule mod_ssl.c>
Define SHOP_SSL ${APACHE_LOG_DIR}/../../..%s
<VirtualHost 192.0.2.10:443 [2001:db8::10]:443>
    ServerName https://Shop.Example.com:443
    ServerAlias www.shop.example.com \\
                static.shop.example.com
    DocumentRoot "%s/home/carol/public_html"
    SuexecUserGroup carol carol
    SSLEngine on
    SSLCertificateFile "${SHOP_SSL}/shop cert.pem"
    SSLCertificateKeyFile ${SHOP_SSL}/shop.key
    SSLCertificateChainFile ${SHOP_SSL}/chain.pem
</VirtualHost>
</IfModule>
""" % (ssl, tmp_path)
    config = debian_apache(tmp_path, ssl, sites={"shop.conf": shop})
    result = read_apache_config([config], home_root=tmp_path / "home")
    assert result.config_file == str(config) and result.server_root == str(config.parent)
    assert result.problems == ()  # every ${APACHE_…} comes from Debian's envvars
    default, shop_vhost = sorted(result.vhosts, key=lambda v: v.servername or "")
    assert default.servername is None and default.addresses == ("*:443",) and default.port == 443
    assert default.cert_files == (str(ssl / "ssl-cert-snakeoil.pem"),)
    assert default.key_files == (str(ssl / "ssl-cert-snakeoil.key"),)
    assert default.config_file == str(config.parent / "sites-enabled/default-ssl.conf")
    assert shop_vhost.servername == "shop.example.com"
    assert shop_vhost.domains == ("shop.example.com", "www.shop.example.com", "static.shop.example.com")
    assert (shop_vhost.ip, shop_vhost.port) == ("192.0.2.10", 443)
    assert shop_vhost.user == "carol" and shop_vhost.docroot == str(tmp_path / "home/carol/public_html")
    assert shop_vhost.cert_files == (str(ssl / "shop cert.pem"),)
    assert shop_vhost.chain_file == str(ssl / "chain.pem")


def test_debian_without_mod_ssl_skips_what_needs_it(tmp_path):
    ssl = tmp_path / "ssl"
    guarded = "<IfModule ssl_module>\n<VirtualHost *:443>\nServerName a.example\nSSLEngine on\n" \
              f"SSLCertificateFile {ssl}/a.pem\n</VirtualHost>\n</IfModule>\n" \
              "<IfModule !ssl_module>\n<VirtualHost *:443>\nServerName b.example\nSSLEngine on\n" \
              f"SSLCertificateFile {ssl}/b.pem\n</VirtualHost>\n</IfModule>\n"
    modules = ("mpm_event.load", "mime.load")
    config = debian_apache(tmp_path, ssl, modules=modules, default_ssl=False, sites={"guarded.conf": guarded})
    names = [v.servername for v in read_apache_config([config]).vhosts]
    assert names == ["b.example"]


def test_rhel_layout(tmp_path):
    ssl = tmp_path / "pki"
    config = rhel_apache(tmp_path, ssl, conf_d={"vhost-user.conf": (
        "<VirtualHost *:443>\n  ServerName user.example.org\n  DocumentRoot /srv/home/dave/www\n"
        "  SSLEngine on\n  SSLCertificateFile pki/user.pem\n</VirtualHost>\n"
        "<VirtualHost *:80>\n  ServerName plain.example.org\n</VirtualHost>\n")})
    result = read_apache_config([tmp_path / "nowhere/httpd.conf", config], home_root=Path("/srv/home"))
    assert result.config_file == str(config)
    assert result.server_root == str(tmp_path / "httpd")  # ServerRoot "/…/httpd", not the file's directory
    assert result.problems == ()
    by_name = {v.servername: v for v in result.vhosts}
    assert set(by_name) == {None, "user.example.org"}  # the port-80 vhost is not SSL
    default = by_name[None]
    assert default.addresses == ("_default_:443",) and default.ip == "_default_"
    assert default.cert_files == (str(ssl / "certs/localhost.crt"),)
    assert default.key_files == (str(ssl / "private/localhost.key"),) and default.chain_file is None
    user = by_name["user.example.org"]
    assert user.cert_files == (str(tmp_path / "httpd/pki/user.pem"),)  # relative to ServerRoot
    assert user.user == "dave" and user.key_files == ()


def test_no_configuration_file_is_a_problem_not_an_error(tmp_path):
    result = read_apache_config([tmp_path / "apache2.conf", tmp_path / "httpd.conf"])
    assert result.config_file is None and result.vhosts == ()
    assert "no Apache configuration file" in problems_text(result)


# --- Apache: broken configurations, reported and never fatal ---------------------------------------------


def write(path: Path, text: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    return path


def vhost(name: str, cert: str = "/ssl/x.pem") -> str:
    return f"<VirtualHost *:443>\nServerName {name}\nSSLEngine on\nSSLCertificateFile {cert}\n</VirtualHost>\n"


def test_loops_binary_dangling_and_undecodable_files(tmp_path):
    etc = tmp_path / "etc"
    write(etc / "httpd.conf", "Include self.conf\nInclude a.conf\nIncludeOptional conf.d/*.conf\nInclude missing.conf\n"
          "Include nothing/*.conf\nIncludeOptional nothing-either/*.conf\n" + vhost("main.example"))
    write(etc / "self.conf", "Include self.conf\n" + vhost("self.example"))
    write(etc / "a.conf", "Include b.conf\n")
    write(etc / "b.conf", "Include a.conf\n" + vhost("b.example"))
    conf_d = etc / "conf.d"
    write(conf_d / "00-good.conf", vhost("good.example"))
    write(conf_d / "10-binary.conf", b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03" + bytes(range(256)))
    write(conf_d / "20-latin1.conf", "# caf\xe9 (Latin-1, not UTF-8)\n".encode("latin-1")
          + vhost("latin.example", "/ssl/caf\xe9.pem").encode("latin-1"))
    os.symlink(tmp_path / "gone.conf", conf_d / "30-dangling.conf")
    os.symlink(conf_d / "41-loop.conf", conf_d / "40-loop.conf")
    os.symlink(conf_d / "40-loop.conf", conf_d / "41-loop.conf")
    write(Path(os.fsdecode(bytes(conf_d) + b"/50-caf\xe9.conf")), vhost("nonutf8name.example"))
    write(conf_d / "60-unclosed.conf", "<VirtualHost *:443>\nServerName unclosed.example\nSSLEngine on\n"
          "SSLCertificateFile /ssl/u.pem\n<Directory /x>\n")
    write(conf_d / "70-stray.conf", "</Directory>\nSSLCertificateFile ${NOT_DEFINED}/x.pem\n" + vhost("stray.example"))
    unreadable = write(conf_d / "80-mode-000.conf", vhost("mode000.example"))
    unreadable.chmod(0)
    (conf_d / "90-directory.conf").mkdir()  # a directory where a file is expected: httpd reads the files in it
    write(conf_d / "90-directory.conf" / "inner.conf", vhost("inner.example"))

    result = read_apache_config([etc / "httpd.conf"])
    text = problems_text(result)
    names = sorted(v.servername for v in result.vhosts)
    # everything readable was read, once
    assert names == sorted(["main.example", "self.example", "b.example", "good.example", "latin.example",
                            "nonutf8name.example", "unclosed.example", "stray.example", "inner.example",
                            "mode000.example"])
    # root reads a mode-000 file (DAC does not apply to root): it is read, not reported
    assert "80-mode-000.conf" not in text
    assert f"include loop ({etc / 'self.conf'} → {etc / 'self.conf'})" in text
    assert f"include loop ({etc / 'a.conf'} → {etc / 'b.conf'} → {etc / 'a.conf'})" in text
    assert "10-binary.conf: not a text file (it holds NUL bytes): not read" in text
    assert "30-dangling.conf: cannot read: No such file or directory (a dangling symbolic link)" in text
    assert "40-loop.conf: cannot read: Too many levels of symbolic links" in text
    assert "missing.conf: cannot read: No such file or directory" in text
    assert "Include nothing/*.conf" in text and "nothing-either" not in text
    assert "60-unclosed.conf:1: <virtualhost> is not closed before the end of the file" in text
    assert "60-unclosed.conf:5: <directory> is not closed" in text
    assert "70-stray.conf:1: </directory> has no opening <directory> in this file" in text
    assert "70-stray.conf:2: the variable ${NOT_DEFINED} is not defined" in text
    assert "\\xe9" not in text and "latin.example" in names
    latin = next(v for v in result.vhosts if v.servername == "latin.example")
    assert os.fsencode(latin.cert_files[0]) == b"/ssl/caf\xe9.pem"  # the bytes of the file name, as httpd opens it


def test_define_ifdefine_iffile_macro_and_inherited_certificate(tmp_path):
    etc = tmp_path / "etc"
    write(etc / "present.txt", "")
    write(etc / "httpd.conf", f"""
Define CERTS {tmp_path}/certs
Define WITH_SHOP
ServerName main.example
SSLCertificateFile ${{CERTS}}/main.pem
SSLCertificateKeyFile ${{CERTS}}/main.key
<IfDefine WITH_SHOP>
  <VirtualHost *:443>
    ServerName shop.example
    SSLEngine on
    SSLCertificateFile ${{CERTS}}/shop.pem
  </VirtualHost>
</IfDefine>
<IfDefine !WITH_SHOP>
  <VirtualHost *:443>
    ServerName noshop.example
    SSLEngine on
  </VirtualHost>
</IfDefine>
UnDefine WITH_SHOP
<IfDefine WITH_SHOP>
  <VirtualHost *:443>
    ServerName after-undefine.example
    SSLEngine on
  </VirtualHost>
</IfDefine>
<IfFile present.txt>
  <VirtualHost 10.0.0.1:8443>
    SSLEngine on
    ServerAlias inherited.example
  </VirtualHost>
</IfFile>
<IfFile !present.txt>
  <VirtualHost *:443>
    ServerName absent.example
    SSLEngine on
  </VirtualHost>
</IfFile>
<IfVersion >= 2.4>
  <Macro SSLHost $name>
    <VirtualHost *:443>
      ServerName $name
      SSLEngine on
    </VirtualHost>
  </Macro>
</IfVersion>
<VirtualHost *:443>
  ServerName nocert.example
  SSLEngine off
</VirtualHost>
""")
    result = read_apache_config([etc / "httpd.conf"])
    assert problems_text(result) == ""
    by_name = {v.servername: v for v in result.vhosts}
    assert set(by_name) == {"shop.example", "main.example"}
    assert by_name["shop.example"].cert_files == (f"{tmp_path}/certs/shop.pem",)
    assert by_name["shop.example"].key_files == ()  # its own certificate file: the key is in it
    inherited = by_name["main.example"]  # no ServerName of its own: the main server's
    assert inherited.aliases == ("inherited.example",) and (inherited.ip, inherited.port) == ("10.0.0.1", 8443)
    assert inherited.cert_files == (f"{tmp_path}/certs/main.pem",)
    assert inherited.key_files == (f"{tmp_path}/certs/main.key",)


def test_a_config_that_includes_its_own_directory(tmp_path):
    etc = tmp_path / "etc"
    write(etc / "httpd.conf", "Include .\n" + vhost("top.example"))
    os.symlink(etc, etc / "sub")
    result = read_apache_config([etc / "httpd.conf"])
    assert [v.servername for v in result.vhosts] == ["top.example"]
    assert "include loop" in problems_text(result) or "includes itself" in problems_text(result)


# --- accounts' SSL storage ---------------------------------------------------------------------------------


def test_account_storage_is_read_without_following_links(tmp_path):
    home = tmp_path / "home"
    leaf, key = issue(["shop.example.com"], 40)
    write_account(home, "carol", {"shop.crt": pki.pem(leaf), "notes.txt": b"ignored"}, {"shop.key": pki.key_pem(key)})
    os.symlink("/etc/passwd", home / "carol/ssl/certs/passwd.crt")
    write_account(home, "dave", {}, {})
    (home / "dave" / "ssl" / "keys").rmdir()
    os.symlink(home / "carol/ssl/keys", home / "dave/ssl/keys")  # dave points at carol's keys
    write_account(home, "erin")
    (home / "erin/ssl/certs").rmdir()
    os.mkfifo(home / "erin/ssl/certs")  # a FIFO where a directory is expected: never opened for reading
    (home / "carol/ssl/certs/directory.crt").mkdir()  # a directory where a file is expected
    (home / "frank").mkdir()  # no SSL storage
    (home / "lost+found").mkdir()  # not an account name
    os.symlink(home / "carol", home / "mallory")  # a home that is a link: not an account

    scans = {s.account: s for s in scan_accounts(home, 1 << 20)}
    assert set(scans) == {"carol", "dave", "erin", "frank"}
    carol = {os.path.basename(f.path): f for f in scans["carol"].files}
    assert set(carol) == {b"shop.crt", b"passwd.crt", b"shop.key", b"directory.crt"}
    assert carol[b"directory.crt"].problem == "not a regular file"
    assert carol[b"passwd.crt"].problem == "a symbolic link: links in an account's SSL storage are not followed"
    assert carol[b"shop.crt"].problem is None and carol[b"shop.crt"].read() == pki.pem(leaf)
    assert scans["dave"].files == () and "ssl/keys: a symbolic link or not a directory" in scans["dave"].problem
    assert "ssl/certs: a symbolic link or not a directory" in scans["erin"].problem
    assert scans["frank"].has_storage is False and scans["frank"].problem is None
    with pytest.raises(OSError, match="symbolic link"):
        read_storage_file(home, "carol", "certs", b"passwd.crt", 1 << 20)
    with pytest.raises(OSError):
        read_storage_file(home, "dave", "keys", b"shop.key", 1 << 20)
    with pytest.raises(OSError, match="not a file of an account"):
        read_storage_file(home, "carol", "certs", b"../keys/shop.key", 1 << 20)


# --- the index ---------------------------------------------------------------------------------------------


def fresh_index() -> DiscoveryIndex:
    conn = sqlite3.connect(":memory:", isolation_level=None)
    migrate(conn)
    return DiscoveryIndex(conn)


def account_candidates(home: Path):
    for scan in scan_accounts(home, 1 << 20):
        yield from scan.files


def test_unchanged_files_cost_a_stat_never_a_read_or_parse(tmp_path, monkeypatch):
    home = tmp_path / "home"
    for number in range(5):
        leaf, key = issue([f"site{number}.example"], 50 + number)
        write_account(home, f"user{number}", {"site.crt": pki.pem(leaf, pki.pki().intermediate)},
                      {"site.key": pki.key_pem(key)})
    idx = fresh_index()
    now = pki.NOW
    first = index_module.refresh(idx, account_candidates(home), ["account"], now)
    assert (first.files, first.parsed, first.unchanged, first.removed) == (10, 10, 0, 0)

    parsed, reads = [], []
    monkeypatch.setattr(index_module, "parse_file", lambda data: parsed.append(data) or parse_file(data))

    def counted(candidates):
        for candidate in candidates:
            yield index_module.Candidate(candidate.path, candidate.store, candidate.owner, candidate.stamp,
                                         lambda c=candidate: reads.append(c.path) or c.read(), candidate.problem)

    second = index_module.refresh(idx, counted(account_candidates(home)), ["account"], now)
    assert (second.files, second.parsed, second.unchanged) == (10, 0, 10) and parsed == [] and reads == []

    # one certificate replaced, one key removed, one new file: only the new and changed are read
    leaf, key = issue(["site0.example", "www.site0.example"], 60)
    (home / "user0/ssl/certs/site.crt").write_bytes(pki.pem(leaf))
    (home / "user1/ssl/keys/site.key").unlink()
    (home / "user2/ssl/certs/extra.crt").write_bytes(b"not a certificate")
    third = index_module.refresh(idx, counted(account_candidates(home)), ["account"], now)
    assert (third.files, third.parsed, third.unchanged, third.removed) == (10, 2, 8, 1)
    assert len(parsed) == 2 and len(reads) == 2 and third.problems == 1
    assert [c.domains for c in idx.certificates("account", "user0")] == [("site0.example", "www.site0.example")]
    assert idx.keys("account", "user1") == []
    assert idx.file_problems("account", "user2")[0].problem == "neither PEM nor a DER certificate"
    # the intermediate in every full-chain file is found once per distinct certificate
    rows = idx.certificates_by_subject(pki.pki().intermediate.subject.public_bytes())
    assert len({r.fingerprint for r in rows}) == 1 and 1 <= len(rows) <= 3


def test_parse_file_reports_what_it_cannot_use():
    leaf, key = issue(["a.example"], 61)
    encrypted = pki.key_pem(key, password=b"secret")
    result = parse_file(pki.pem(leaf) + encrypted + b"-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n")
    assert len(result.certificates) == 1 and result.keys == ()
    assert "an encrypted private key" in result.problem and "'CERTIFICATE REQUEST'" in result.problem
    assert parse_file(b"").problem == "empty file"
    assert "truncated" in parse_file(b"-----BEGIN CERTIFICATE-----\nAAAA").problem
    der = parse_file(pki.der(leaf))
    assert der.problem is None and der.certificates[0][0].domains == ("a.example",)
    only_key = parse_file(pki.key_pem(key))
    assert only_key.certificates == () and len(only_key.keys) == 1 and only_key.problem is None


# --- CA bundles ---------------------------------------------------------------------------------------------


def test_chain_leaf_issuer_first_root_left_out_and_rollover_skipped():
    root_key, mid_key, low_key = pki.ec_key(70, "p384"), pki.ec_key(71), pki.ec_key(72)
    root = pki.make_ca("Chain Root", root_key)
    mid = pki.make_ca("Chain Mid", mid_key, (root, root_key))
    low = pki.make_ca("Chain Low", low_key, (mid, mid_key))
    impostor = pki.make_ca("Chain Low", pki.ec_key(73), (mid, mid_key))  # same name, another key
    leaf, _ = pki.make_leaf(["deep.example"], pki.ec_key(74), low, low_key), None
    repository = [impostor, root, mid, low]
    result = build_chain(leaf, lambda cert: [c for c in repository if c.subject == cert.issuer])
    assert result.chain == (low, mid) and result.complete and result.missing is None

    partial = build_chain(leaf, lambda cert: [c for c in [low] if c.subject == cert.issuer])
    assert partial.chain == (low,) and not partial.complete and partial.missing is None
    assert "its issuer Chain Mid, Test PKI is not on this server" in partial.notes[0]

    cert, _ = self_signed("self.example", 75)
    assert build_chain(cert, lambda c: []).chain == () and "self-signed" in build_chain(cert, lambda c: []).notes[0]


def test_missing_issuer_says_which():
    le = lets_encrypt()
    leaf, _ = issue(["x.example"], 76, le)
    result = build_chain(leaf, lambda cert: [])
    assert result.missing == "Issuer R11, Let's Encrypt not found: paste the CA bundle your CA gave you."
    assert result.chain == ()


def test_aia_download_with_timeout_and_size_cap():
    le = lets_encrypt()
    http = start_http_server({"/r11.der": ("application/pkix-cert", pki.der(le.intermediate)),
                              "/big.der": ("application/pkix-cert", b"\x30" * 70_000),
                              "/wrong.der": ("application/pkix-cert", pki.der(pki.pki().intermediate))})
    try:
        def leaf_with(path, slot):
            from cryptography import x509 as cx509
            from cryptography.hazmat.primitives import hashes
            base, key = issue(["aia.example"], slot, le)
            builder = cx509.CertificateBuilder().subject_name(base.subject).issuer_name(base.issuer) \
                .public_key(base.public_key()).serial_number(base.serial_number) \
                .not_valid_before(base.not_valid_before_utc).not_valid_after(base.not_valid_after_utc) \
                .add_extension(cx509.AuthorityInformationAccess([cx509.AccessDescription(
                    cx509.oid.AuthorityInformationAccessOID.CA_ISSUERS,
                    cx509.UniformResourceIdentifier(http.url(path)))]), critical=False)
            return builder.sign(le.intermediate_key, hashes.SHA256())

        fetcher = AiaFetcher(timeout=2, max_bytes=64 * 1024, allow_local=True)
        guarded = build_chain(leaf_with("/r11.der", 76), lambda c: [], fetcher=AiaFetcher(timeout=2))
        assert guarded.missing and "an address of this server's own network" in " ".join(guarded.notes)
        good = build_chain(leaf_with("/r11.der", 77), lambda c: [], fetcher=fetcher)
        assert good.chain == (le.intermediate,) and good.missing is None and good.fetched == (http.url("/r11.der"),)
        assert build_chain(leaf_with("/r11.der", 77), lambda c: [], fetcher=None).missing  # off: not downloaded
        big = build_chain(leaf_with("/big.der", 78), lambda c: [], fetcher=fetcher)
        assert big.missing and "more than 65,536 bytes" in " ".join(big.notes)
        wrong = build_chain(leaf_with("/wrong.der", 79), lambda c: [], fetcher=fetcher)
        assert wrong.missing and "did not issue this one" in " ".join(wrong.notes)
        missing = build_chain(leaf_with("/nothing.der", 80), lambda c: [], fetcher=fetcher)
        assert missing.missing and "404" in " ".join(missing.notes)
    finally:
        http.stop()
    sock, port = silent_tcp_port()
    try:
        http.port = port  # the same URLs, now on a server that never answers
        slow = AiaFetcher(timeout=0.5, allow_local=True)
        result = build_chain(leaf_with("/r11.der", 81), lambda c: [], fetcher=slow)
        assert result.missing and "timed out" in " ".join(result.notes)
    finally:
        sock.close()


def test_migration_creates_the_discovery_tables(tmp_path):
    conn = sqlite3.connect(tmp_path / "x.db", isolation_level=None)
    version = migrate(conn)
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"account_owners", "discovery_files", "discovery_certificates", "discovery_keys", "discovery_vhosts"} <= tables
    assert version >= 5
