"""Shared fixtures for the Starling client-compatibility suite.

The suite drives a *running* Starling server (started by tests/compat/run.sh)
with the real Mastodon.py and toot clients.  The server's base URL comes from
the STARLING_URL environment variable.
"""

import os
from typing import Optional
from urllib.parse import urlsplit

import pytest
import requests
from mastodon import Mastodon

from helpers import PASSWORD, TIMEOUT, User, unique_username


@pytest.fixture(scope="session")
def base_url() -> str:
    url = os.environ.get("STARLING_URL")
    if not url:
        pytest.skip("STARLING_URL is not set; run the suite via tests/compat/run.sh")
    return url.rstrip("/")


@pytest.fixture(scope="session")
def host(base_url) -> str:
    """host:port as the server should report it in instance `uri`/`domain`."""
    return urlsplit(base_url).netloc


@pytest.fixture(scope="session")
def app(base_url):
    """One OAuth app (Mastodon.py defaults: scopes read write follow push, OOB redirect)."""
    client_id, client_secret = Mastodon.create_app(
        "starling-compat", api_base_url=base_url, request_timeout=TIMEOUT
    )
    return client_id, client_secret


@pytest.fixture
def client(base_url, app) -> Mastodon:
    """An unauthenticated Mastodon.py client bound to the session app."""
    client_id, client_secret = app
    return Mastodon(
        client_id=client_id,
        client_secret=client_secret,
        api_base_url=base_url,
        request_timeout=TIMEOUT,
    )


@pytest.fixture
def make_user(base_url, app):
    """Factory: register a brand-new account through Mastodon.py's create_account()."""

    def _make(username: Optional[str] = None, password: str = PASSWORD) -> User:
        client_id, client_secret = app
        username = username or unique_username()
        email = f"{username}@example.com"
        api = Mastodon(
            client_id=client_id,
            client_secret=client_secret,
            api_base_url=base_url,
            request_timeout=TIMEOUT,
        )
        token = api.create_account(username, password, email, agreement=True, locale="en")
        assert isinstance(token, str) and token
        return User(username, email, password, token, client_id, client_secret, api)

    return _make


@pytest.fixture
def user(make_user) -> User:
    return make_user()


@pytest.fixture
def http() -> requests.Session:
    """A plain requests session, for browser-like and raw-protocol checks."""
    s = requests.Session()
    s.headers["User-Agent"] = "starling-compat-tests"
    yield s
    s.close()
