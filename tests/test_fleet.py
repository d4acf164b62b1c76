"""Fleets: contrib/ansible/install-service-certificate.yml against two `svcssl serve` panels on loopback.

ansible-core comes from the package index into its own venv (once per session). The playbook runs
with `ansible_connection: local`; one panel's token comes from the environment, the other's from
Ansible Vault. The first run installs, the second reports changed=0 everywhere, a third after a
change on one panel repairs only that one, and a wrong token fails with the API's reason. No run
shows a token or a private key.
"""

from __future__ import annotations

import hashlib
import os
import re
import socket
import ssl
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from support import pki
from support.config import REPO_ROOT, require_binaries, skip_or_fail
from support.serve import ServedPanel, https_session, panel_config
from svcssl.operations.context import open_context
from svcssl.settings import load_settings

PLAYBOOK = REPO_ROOT / "contrib" / "ansible" / "install-service-certificate.yml"
RECAP = re.compile(r"^(\S+)\s*:\s*ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", re.M)
SERVICES = ("cpanel", "dovecot", "exim", "ftp")


@pytest.fixture(scope="session")
def ansible_bin(tmp_path_factory) -> Path:
    venv = tmp_path_factory.mktemp("ansible") / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    done = subprocess.run([str(venv / "bin/python"), "-m", "pip", "install", "-q", "--disable-pip-version-check",
                           "ansible-core"], capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        message = f"pip install ansible-core failed: {done.stderr[-2000:]}"
        skip_or_fail(message + " (needs the package index)")
    return venv / "bin"


def run_cli(config: Path, *args: str, input: str | None = None) -> str:
    done = subprocess.run([sys.executable, "-m", "svcssl.cli", "--config", str(config), *args], capture_output=True,
                          text=True, timeout=120, input=input)
    assert done.returncode == 0, f"svcssl {' '.join(args)}: {done.stderr}"
    return done.stdout


@dataclass
class Fleet:
    panels: dict[str, ServedPanel]
    configs: dict[str, Path]
    tokens: dict[str, str]


@pytest.fixture
def fleet(tmp_path):
    panels, configs, tokens = {}, {}, {}
    try:
        for name in ("panel-a", "panel-b"):
            config = panel_config(tmp_path / name)
            (tmp_path / name / "pw").write_text(f"{name}-root-password\n")
            run_cli(config, "user", "add", "root", "--role", "root", "--password-file", str(tmp_path / name / "pw"))
            tokens[name] = run_cli(config, "token", "create", "root", "--name", "ansible").splitlines()[-1].strip()
            configs[name] = config
            panels[name] = ServedPanel([sys.executable, "-m", "svcssl.cli"], config, tmp_path / f"{name}.log",
                                       cwd=tmp_path).start()
        yield Fleet(panels, configs, tokens)
    finally:
        for panel in panels.values():
            panel.stop()


def fetch(panel: ServedPanel, token: str) -> dict[str, dict]:
    answer = https_session().get(panel.url + "/json-api/fetch_service_ssl_components?api.version=1",
                                 headers={"Authorization": f"whm root:{token}"}, timeout=30)
    assert answer.status_code == 200 and answer.json()["metadata"]["result"] == 1, answer.text[:500]
    return {s["service"]: s for s in answer.json()["data"]["services"]}


def leaf_fingerprint(pem_text: str) -> str:
    return hashlib.sha256(ssl.PEM_cert_to_DER_cert(pem_text)).hexdigest()


def served_fingerprint(panel: ServedPanel) -> str:
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    with socket.create_connection(("127.0.0.1", panel.port), timeout=5) as raw, context.wrap_socket(raw) as tls:
        return hashlib.sha256(tls.getpeercert(binary_form=True)).hexdigest()


def history_lengths(config: Path) -> dict[str, int]:
    ctx = open_context(load_settings(config))
    try:
        return {s: len(ctx.store.history(s)) for s in SERVICES}
    finally:
        ctx.store.close()


def write_inventory(path: Path, fleet: Fleet, files: dict[str, Path], *, bad_host: bool = False) -> Path:
    lines = [
        "all:",
        "  vars:",
        "    ansible_connection: local",
        "    ansible_python_interpreter: \"{{ ansible_playbook_python }}\"",
        "    svcssl_user: root",
        "    svcssl_validate_certs: false",
        f"    certificate_file: {files['crt']}",
        f"    key_file: {files['key']}",
        f"    cabundle_file: {files['chain']}",
        "  hosts:",
        "    panel-a:",
        f"      svcssl_api: {fleet.panels['panel-a'].url}",
        "      svcssl_token: \"{{ lookup('ansible.builtin.env', 'SVCSSL_TOKEN_PANEL_A') }}\"",
        "      svcssl_services: [dovecot, exim]",
        "    panel-b:",  # its token: host_vars/panel-b.yml, encrypted with Ansible Vault
        f"      svcssl_api: {fleet.panels['panel-b'].url}/",
        "      svcssl_services: [cpanel, dovecot, ftp]",
    ]
    if bad_host:
        lines += ["    panel-c:",
                  f"      svcssl_api: {fleet.panels['panel-a'].url}",
                  "      svcssl_token: \"{{ lookup('ansible.builtin.env', 'SVCSSL_TOKEN_PANEL_C') }}\"",
                  "      svcssl_services: [dovecot]"]
    path.write_text("\n".join(lines) + "\n")
    return path


def recap(output: str) -> dict[str, dict[str, int]]:
    return {m.group(1): {"ok": int(m.group(2)), "changed": int(m.group(3)), "unreachable": int(m.group(4)),
                         "failed": int(m.group(5))} for m in RECAP.finditer(output)}


def test_the_playbook_updates_a_fleet_once_and_then_changes_nothing(ansible_bin, fleet, tmp_path):
    crt, key = pki.pki(5).leaf(["mail.example.com", "smtp.example.com"], key=pki.rsa_key(51))
    files = {"crt": tmp_path / "cert.pem", "key": tmp_path / "privkey.pem", "chain": tmp_path / "chain.pem"}
    files["crt"].write_bytes(pki.pem(crt))
    files["key"].write_bytes(pki.key_pem(key))
    files["chain"].write_bytes(pki.pem(pki.pki(5).intermediate))
    wanted = hashlib.sha256(pki.der(crt)).hexdigest()
    before = {name: fetch(panel, fleet.tokens[name]) for name, panel in fleet.panels.items()}

    ansible_home = tmp_path / "ansible-home"
    vault_password = tmp_path / "vault-password"
    vault_password.write_text("fleet vault password\n")
    vault_password.chmod(0o600)
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")},
           "LC_ALL": "C.UTF-8", "LANG": "C.UTF-8", "ANSIBLE_HOME": str(ansible_home),
           "ANSIBLE_LOCAL_TEMP": str(ansible_home / "tmp"), "ANSIBLE_NOCOLOR": "1", "ANSIBLE_FORCE_COLOR": "0",
           "ANSIBLE_RETRY_FILES_ENABLED": "0", "ANSIBLE_STDOUT_CALLBACK": "default",
           "SVCSSL_TOKEN_PANEL_A": fleet.tokens["panel-a"], "SVCSSL_TOKEN_PANEL_C": "NOT-A-VALID-TOKEN-0123456789"}
    # panel-b's token is encrypted with Ansible Vault; the secret goes in on stdin, never on a command line
    encrypted = subprocess.run([str(ansible_bin / "ansible-vault"), "encrypt_string", "--vault-password-file",
                                str(vault_password), "--stdin-name", "svcssl_token"], input=fleet.tokens["panel-b"],
                               capture_output=True, text=True, env=env, timeout=120)
    assert encrypted.returncode == 0, encrypted.stderr
    assert "$ANSIBLE_VAULT" in encrypted.stdout and fleet.tokens["panel-b"] not in encrypted.stdout
    inventory_dir = tmp_path / "inventory"
    (inventory_dir / "host_vars").mkdir(parents=True)
    (inventory_dir / "host_vars" / "panel-b.yml").write_text(encrypted.stdout)

    def play(inventory: Path, *extra: str) -> tuple[subprocess.CompletedProcess, dict]:
        argv = [str(ansible_bin / "ansible-playbook"), "-i", str(inventory), "--vault-password-file",
                str(vault_password), *extra, str(PLAYBOOK)]
        assert not any(token in " ".join(argv) for token in fleet.tokens.values())
        started = time.monotonic()
        done = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=300, cwd=tmp_path)
        print(f"ansible-playbook {' '.join(extra)}: {time.monotonic() - started:.1f} s")
        output = done.stdout + done.stderr
        if os.environ.get("SVCSSL_SHOW_ANSIBLE"):  # to read the playbook's output: SVCSSL_SHOW_ANSIBLE=1 pytest -s
            print(output)
        for token in fleet.tokens.values():
            assert token not in output, "a token was printed"
        assert "PRIVATE KEY" not in output and pki.key_pem(key).decode().splitlines()[1] not in output
        return done, recap(output)

    inventory = write_inventory(inventory_dir / "hosts.yml", fleet, files)
    first, counts = play(inventory)
    assert first.returncode == 0, first.stdout[-4000:] + first.stderr[-2000:]
    assert counts["panel-a"]["failed"] == 0 and counts["panel-b"]["failed"] == 0, counts
    assert counts["panel-a"]["changed"] == 1 and counts["panel-b"]["changed"] == 1, counts
    after = {name: fetch(panel, fleet.tokens[name]) for name, panel in fleet.panels.items()}
    targets = {"panel-a": {"dovecot", "exim"}, "panel-b": {"cpanel", "dovecot", "ftp"}}
    for name, services in after.items():
        for service, data in services.items():
            if service in targets[name]:
                assert leaf_fingerprint(data["certificate"]) == wanted, (name, service)
                assert data["cabundle"].strip() == pki.pem(pki.pki(5).intermediate).decode().strip()
            else:  # a service the host's list does not name is left alone
                assert data["certificate"] == before[name][service]["certificate"], (name, service)
    assert served_fingerprint(fleet.panels["panel-b"]) == wanted  # the panel itself took it, in-process
    histories = {name: history_lengths(config) for name, config in fleet.configs.items()}

    second, counts = play(inventory, "-v")
    assert second.returncode == 0, second.stdout[-4000:]
    assert {name: c["changed"] for name, c in counts.items()} == {"panel-a": 0, "panel-b": 0}, counts
    assert {name: history_lengths(config) for name, config in fleet.configs.items()} == histories

    # someone resets panel-b's FTP certificate; panel-c has a wrong token
    run_cli(fleet.configs["panel-b"], "reset", "ftp")
    third, counts = play(write_inventory(inventory_dir / "hosts.yml", fleet, files, bad_host=True))
    assert third.returncode != 0
    assert counts["panel-a"] == {**counts["panel-a"], "changed": 0, "failed": 0}, counts
    assert counts["panel-b"] == {**counts["panel-b"], "changed": 1, "failed": 0}, counts
    assert counts["panel-c"]["failed"] == 1, counts
    assert "answered HTTP 401" in third.stdout, third.stdout[-3000:]
    assert leaf_fingerprint(fetch(fleet.panels["panel-b"], fleet.tokens["panel-b"])["ftp"]["certificate"]) == wanted
    history = history_lengths(fleet.configs["panel-b"])
    assert history["ftp"] == histories["panel-b"]["ftp"] + 2 and history["dovecot"] == histories["panel-b"]["dovecot"]


CURL_LOOP = REPO_ROOT / "contrib" / "fleet" / "install-service-certificate.sh"


def test_the_plain_curl_loop_does_the_same(fleet, tmp_path):
    require_binaries("curl", "jq", "openssl", "sha256sum", install="apt-get install curl jq openssl coreutils")
    crt, key = pki.pki(6).leaf(["mail.example.com"], key=pki.ec_key(61))
    files = [tmp_path / "cert.pem", tmp_path / "privkey.pem", tmp_path / "chain.pem"]
    for path, data in zip(files, (pki.pem(crt), pki.key_pem(key), pki.pem(pki.pki(6).intermediate))):
        path.write_bytes(data)
    wanted = hashlib.sha256(pki.der(crt)).hexdigest()
    lines = ["# the fleet"]
    for name, panel in fleet.panels.items():
        token_file = tmp_path / f"{name}.token"
        token_file.write_text(fleet.tokens[name] + "\n")
        token_file.chmod(0o600)
        lines.append(f"{panel.url}/ root {token_file}")
    (tmp_path / "panels").write_text("\n".join(lines) + "\n")
    env = {**os.environ, "SVCSSL_INSECURE": "1"}

    def loop(panels: Path) -> subprocess.CompletedProcess:
        done = subprocess.run(["sh", str(CURL_LOOP), str(panels), *map(str, files), "dovecot", "ftp"],
                              capture_output=True, text=True, env=env, timeout=120)
        for token in fleet.tokens.values():
            assert token not in done.stdout + done.stderr
        assert "PRIVATE KEY" not in done.stdout + done.stderr
        return done

    first = loop(tmp_path / "panels")
    assert first.returncode == 0, first.stdout + first.stderr
    assert first.stdout.count(": installed") == 4 and "unchanged" not in first.stdout, first.stdout
    for name, panel in fleet.panels.items():
        services = fetch(panel, fleet.tokens[name])
        assert leaf_fingerprint(services["dovecot"]["certificate"]) == wanted
        assert leaf_fingerprint(services["ftp"]["certificate"]) == wanted
        assert leaf_fingerprint(services["exim"]["certificate"]) != wanted
    histories = {name: history_lengths(config) for name, config in fleet.configs.items()}

    second = loop(tmp_path / "panels")
    assert second.returncode == 0, second.stdout + second.stderr
    assert second.stdout.count(": unchanged") == 4 and "installed" not in second.stdout, second.stdout
    assert {name: history_lengths(config) for name, config in fleet.configs.items()} == histories

    bad_token = tmp_path / "bad.token"
    bad_token.write_text("NOT-A-VALID-TOKEN-0123456789\n")
    (tmp_path / "bad-panels").write_text(f"{fleet.panels['panel-a'].url} root {bad_token}\n")
    third = loop(tmp_path / "bad-panels")
    assert third.returncode == 1 and ": FAILED: " in third.stdout, third.stdout + third.stderr
