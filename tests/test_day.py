"""Issue 13 without a browser: the users CLI, result ids bound to their session, key + CSR, wording."""

from __future__ import annotations

import json
import re

from panel_support import csrf_token


def test_user_list_and_delete_on_the_command_line(run_cli, simple_config, tmp_path):
    password = tmp_path / "pw"
    password.write_text("a-long-password\n")
    assert run_cli("user", "add", "root", "--role", "root", "--password-file", str(password),
                   config=simple_config).code == 0
    assert run_cli("user", "add", "carol", "--role", "reseller", "--password-file", str(password),
                   config=simple_config).code == 0
    assert run_cli("token", "create", "carol", "--name", "carol-hook", config=simple_config).code == 0
    listed = json.loads(run_cli("user", "list", "--json", config=simple_config).out)
    assert {"name": "carol", "role": "reseller", "service_ssl": False} in listed
    assert "carol" in run_cli("user", "list", config=simple_config).out
    deleted = run_cli("user", "delete", "carol", config=simple_config)
    assert deleted.code == 0 and "tokens are revoked" in deleted.out
    assert "carol" not in [u["name"] for u in json.loads(run_cli("user", "list", "--json", config=simple_config).out)]
    assert json.loads(run_cli("token", "list", "--json", config=simple_config).out) == []
    missing = run_cli("user", "delete", "carol", config=simple_config)
    assert missing.code == 2 and "no user named 'carol'" in missing.err
    root = run_cli("user", "delete", "root", config=simple_config)
    assert root.code == 2 and "root cannot be deleted" in root.err


from test_web import alice, app, bob, panel, root  # noqa: E402,F401 - fixtures


def test_users_page_refuses_bad_input_with_400_and_changes_nothing(root, bob, panel):
    page = root.get("/scripts/users")
    assert page.status_code == 200
    users_before = re.findall(r'data-user="([^"]+)"', page.text)
    for data, message in [({"username": "Bad Name!", "password": "long-enough-1", "confirm": "long-enough-1"},
                           "A user name is 1–32 characters"),
                          ({"username": "eve", "password": "short", "confirm": "short"}, "at least 8 characters"),
                          ({"username": "bob", "password": "long-enough-1", "confirm": "long-enough-1"}, "bob"),
                          ({"username": "eve", "password": "long-enough-1", "confirm": "other-one-22"},
                           "The two passwords differ."),
                          ({"username": "x" * 5000, "password": "long-enough-1", "confirm": "long-enough-1"},
                           "Field cannot be longer than 32 characters.")]:
        response = root.post("/scripts/users", data={"csrf_token": csrf_token(page.text), **data})
        assert response.status_code == 400 and message in response.text, (data["username"][:10], response.text[:300])
        assert "x" * 100 not in response.text
    assert re.findall(r'data-user="([^"]+)"', root.get("/scripts/users").text) == users_before
    assert root.post("/scripts/users/root/delete", data={"csrf_token": csrf_token(page.text)}).status_code == 400
    assert root.get("/scripts/users/nobody/delete").status_code == 404
    assert root.post("/scripts/users/nobody/password", data={"csrf_token": csrf_token(page.text)}).status_code == 404
    assert bob.get("/scripts/users").status_code == 403
    assert root.post("/scripts/users/bob/delete", data={"csrf_token": "forged"}).status_code == 400
    assert 'data-user="bob"' in root.get("/scripts/users").text
