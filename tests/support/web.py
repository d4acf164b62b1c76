"""Flask test clients that behave like a browser: https, a same-origin Referer, a logged-in session."""

from __future__ import annotations

from support.panel import csrf_token


def new_client(app):
    """A test client over https (PREFERRED_URL_SCHEME) that sends a same-origin Referer, as a browser does."""
    client = app.test_client()
    client.environ_base["HTTP_REFERER"] = "https://localhost/"
    return client


def login(client, name, password):
    page = client.get("/login")
    return client.post("/login", data={"username": name, "password": password, "csrf_token": csrf_token(page.text)})


def logged_in(app, name: str, password: str):
    """A browser-like test client with ``name``'s session."""
    client = new_client(app)
    assert login(client, name, password).status_code == 302
    return client
