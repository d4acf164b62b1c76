"""The WHM-style JSON API over HTTPS, and what its answers must look like."""

from __future__ import annotations

import requests


class Api:
    def __init__(self, base: str, user: str, token: str):
        self.base = base
        self.headers = {"Authorization": f"whm {user}:{token}"}

    def call(self, function: str, method: str = "GET", headers=None, prefix: str = "", **params):
        params.setdefault("api.version", "1")
        url = f"{self.base}{prefix}/json-api/{function}"
        h = self.headers if headers is None else headers
        if method == "GET":
            response = requests.get(url, params=params, headers=h, verify=False, timeout=60)
        else:
            response = requests.post(url, data=params, headers=h, verify=False, timeout=60)
        return response


def ok(response) -> dict:
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["metadata"]["result"] == 1, body["metadata"]
    assert body["metadata"]["reason"] == "OK" and body["metadata"]["version"] == 1
    return body


def refused(response, status: int = 200) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["metadata"]["result"] == 0 and "data" not in body
    assert "Traceback" not in response.text
    return body["metadata"]["reason"]


def on(base: str, url: str) -> str:
    """The same path and query at `base` (the panel's links carry its configured hostname)."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    return f"{base}{parts.path}" + (f"?{parts.query}" if parts.query else "")


def open_login_link(browser: requests.Session, base: str, url: str) -> requests.Response:
    """Open a one-time login link the way a person does: the confirmation page, then its button."""
    import re

    link = on(base, url)
    page = browser.get(link, verify=False, timeout=30, allow_redirects=False)
    assert page.status_code == 200 and "Sign in as" in page.text, page.text[:500]
    fields = dict(re.findall(r'<input type="hidden" name="(\w+)" value="([^"]*)"', page.text))
    return browser.post(link, data=fields, headers={"Origin": base, "Sec-Fetch-Site": "same-origin"},
                        verify=False, timeout=30, allow_redirects=False)
