"""Mastodon.py against a live Starling: apps, registration, password login, profile, revoke."""

import datetime
import html
import re
import warnings

import pytest
import requests
from mastodon import (
    Mastodon,
    MastodonAPIError,
    MastodonIllegalArgumentError,
    MastodonNotFoundError,
    MastodonUnauthorizedError,
)

from helpers import PASSWORD, TIMEOUT, app_token, unique_username


def strip_tags(s: str) -> str:
    return html.unescape(re.sub(r"<[^>]+>", "", s))


def codes(err, field):
    """Error codes Mastodon.py parsed out of a 422 `details` entry for `field`."""
    details = err["details"] or {}
    return [d["error"] for d in (details.get(field) or [])]


def password_login(base_url, client_id, client_secret, login, password):
    api = Mastodon(client_id=client_id, client_secret=client_secret, api_base_url=base_url,
                   request_timeout=TIMEOUT)
    # allow_http: the server advertises http:// OAuth endpoints in
    # /.well-known/oauth-authorization-server on a plain-HTTP test deployment.
    token = api.log_in(username=login, password=password, allow_http=True)
    return api, token


# --------------------------------------------------------------------------- apps

def test_create_app_returns_client_credentials(base_url):
    client_id, client_secret = Mastodon.create_app(
        "compat-create-app", website="https://example.com/app", api_base_url=base_url, request_timeout=TIMEOUT
    )
    assert isinstance(client_id, str) and client_id
    assert isinstance(client_secret, str) and client_secret
    assert client_id != client_secret


def test_app_verify_credentials_with_user_token(user):
    application = user.api.app_verify_credentials()
    assert application["name"] == "starling-compat"


# --------------------------------------------------------------------------- registration

def test_create_account_token_works_immediately(base_url, user):
    # Raw JSON first: ids must be JSON strings (Mastodon.py hides the type).
    raw = requests.get(f"{base_url}/api/v1/accounts/verify_credentials",
                       headers={"Authorization": f"Bearer {user.access_token}"}, timeout=TIMEOUT)
    assert raw.status_code == 200, (raw.status_code, raw.text)
    assert raw.headers["Content-Type"].startswith("application/json")
    assert isinstance(raw.json()["id"], str)

    me = user.api.account_verify_credentials()
    assert me["username"] == user.username
    assert me["acct"] == user.username
    assert isinstance(me["id"], str) and me["id"].isdigit()
    assert "source" in me and me["source"] is not None
    assert "note" in me["source"]
    # Mastodon.py turns created_at into a datetime; it must parse.
    assert isinstance(me["created_at"], datetime.datetime)
    assert me["locked"] is False
    assert me["bot"] is False
    for key in ("url", "avatar", "avatar_static", "header", "header_static"):
        assert isinstance(me[key], str) and me[key].startswith("http"), key
    assert me["fields"] == [] and me["emojis"] == []


def test_create_account_grants_requested_scopes(make_user):
    # create_account() itself raises MastodonAPIError if `scope` lacks any of
    # read write follow push; getting a user back means the check passed.
    u = make_user()
    assert u.access_token


def test_create_account_taken_username(make_user, client):
    existing = make_user()
    token, err = client.create_account(
        existing.username, PASSWORD, f"other_{existing.email}", agreement=True, locale="en",
        return_detailed_error=True,
    )
    assert token is None
    assert "error" in err and err["error"]
    assert "ERR_TAKEN" in codes(err, "username"), err


def test_create_account_taken_username_case_insensitive(make_user, client):
    existing = make_user()
    token, err = client.create_account(
        existing.username.upper(), PASSWORD, f"other_{existing.email}", agreement=True, locale="en",
        return_detailed_error=True,
    )
    assert token is None
    assert "ERR_TAKEN" in codes(err, "username"), err


def test_create_account_taken_email(make_user, client):
    existing = make_user()
    token, err = client.create_account(
        unique_username(), PASSWORD, existing.email, agreement=True, locale="en", return_detailed_error=True,
    )
    assert token is None
    assert "ERR_TAKEN" in codes(err, "email"), err


def test_create_account_short_password(client):
    name = unique_username()
    token, err = client.create_account(
        name, "short", f"{name}@example.com", agreement=True, locale="en", return_detailed_error=True,
    )
    assert token is None
    assert "ERR_TOO_SHORT" in codes(err, "password"), err


def test_create_account_bad_email(client):
    token, err = client.create_account(
        unique_username(), PASSWORD, "not-an-email", agreement=True, locale="en", return_detailed_error=True,
    )
    assert token is None
    assert "ERR_INVALID" in codes(err, "email"), err


def test_create_account_missing_agreement(client):
    name = unique_username()
    # Mastodon.py drops the `agreement` parameter entirely when it is False.
    token, err = client.create_account(
        name, PASSWORD, f"{name}@example.com", agreement=False, locale="en", return_detailed_error=True,
    )
    assert token is None
    assert "ERR_ACCEPTED" in codes(err, "agreement"), err


def test_create_account_bad_username(client):
    token, err = client.create_account(
        "no spaces-allowed!", PASSWORD, f"{unique_username()}@example.com", agreement=True, locale="en",
        return_detailed_error=True,
    )
    assert token is None
    assert "ERR_INVALID" in codes(err, "username"), err


def test_create_account_error_without_detailed_flag_raises(make_user, client):
    # Mastodon.py posts /api/v1/accounts with skip_error_check=True and raises
    # MastodonIllegalArgumentError("Invalid request: <error>") when the body has "error".
    existing = make_user()
    with pytest.raises(MastodonIllegalArgumentError, match="Invalid request"):
        client.create_account(existing.username, PASSWORD, f"x_{existing.email}", agreement=True, locale="en")


@pytest.mark.parametrize(
    "case",
    ["taken_username", "short_password", "bad_email", "missing_agreement"],
)
def test_create_account_errors_are_422_with_details(base_url, app, make_user, case):
    """Raw protocol check of what Mastodon.py parses: status 422, `error` + `details`."""
    client_id, client_secret = app
    token = app_token(base_url, client_id, client_secret)
    name = unique_username()
    params = {"username": name, "email": f"{name}@example.com", "password": PASSWORD,
              "agreement": "1", "locale": "en"}
    field, code = {
        "taken_username": ("username", "ERR_TAKEN"),
        "short_password": ("password", "ERR_TOO_SHORT"),
        "bad_email": ("email", "ERR_INVALID"),
        "missing_agreement": ("agreement", "ERR_ACCEPTED"),
    }[case]
    if case == "taken_username":
        params["username"] = make_user().username
    elif case == "short_password":
        params["password"] = "short"
    elif case == "bad_email":
        params["email"] = "not-an-email"
    else:
        del params["agreement"]
    r = requests.post(f"{base_url}/api/v1/accounts", data=params,
                      headers={"Authorization": f"Bearer {token}"}, timeout=TIMEOUT)
    assert r.status_code == 422, (r.status_code, r.text)
    assert r.headers["Content-Type"].startswith("application/json")
    body = r.json()
    assert isinstance(body.get("error"), str) and body["error"]
    assert code in [d["error"] for d in body["details"][field]]
    assert all("description" in d for d in body["details"][field])


# --------------------------------------------------------------------------- password login

def test_password_login_with_email(base_url, app, user):
    client_id, client_secret = app
    api, token = password_login(base_url, client_id, client_secret, user.email, user.password)
    assert token and token != user.access_token
    me = api.account_verify_credentials()
    assert me["username"] == user.username
    assert isinstance(me["id"], str)
    assert "source" in me


def test_password_login_wrong_password(base_url, app, user):
    client_id, client_secret = app
    with pytest.raises(MastodonIllegalArgumentError):
        password_login(base_url, client_id, client_secret, user.email, "wrong password entirely")


def test_password_login_wrong_client_secret(base_url, app, user):
    client_id, _ = app
    with pytest.raises(MastodonIllegalArgumentError):
        password_login(base_url, client_id, "not-the-secret", user.email, user.password)


def test_wrong_client_secret_is_oauth_error(base_url, app, user):
    """Raw check: OAuth error body with `error` (invalid_client) and a 4xx status."""
    client_id, _ = app
    r = requests.post(f"{base_url}/oauth/token", data={
        "grant_type": "password", "client_id": client_id, "client_secret": "not-the-secret",
        "username": user.email, "password": user.password, "scope": "read",
    }, timeout=TIMEOUT)
    assert r.status_code in (400, 401), (r.status_code, r.text)
    assert r.json()["error"] == "invalid_client"


def test_password_login_without_oauth_metadata(base_url, app, user):
    """log_in without allow_http must still work if the server does not advertise http:// endpoints;
    if it does advertise them, Mastodon.py refuses (documented client behaviour)."""
    meta = requests.get(f"{base_url}/.well-known/oauth-authorization-server", timeout=TIMEOUT)
    client_id, client_secret = app
    api = Mastodon(client_id=client_id, client_secret=client_secret, api_base_url=base_url,
                   request_timeout=TIMEOUT)
    if meta.status_code == 200 and meta.json().get("token_endpoint", "").startswith("http://"):
        with pytest.raises(MastodonIllegalArgumentError, match="https"):
            api.log_in(username=user.email, password=user.password)
    else:
        api.log_in(username=user.email, password=user.password)
        assert api.account_verify_credentials()["username"] == user.username


def test_oauth_metadata_advertises_password_grant(base_url):
    r = requests.get(f"{base_url}/.well-known/oauth-authorization-server", timeout=TIMEOUT)
    if r.status_code == 404:
        pytest.skip("no OAuth metadata document")
    meta = r.json()
    # Mastodon.py refuses log_in(username, password) client-side unless "password" is listed.
    assert "password" in meta["grant_types_supported"]
    assert "authorization_code" in meta["grant_types_supported"]
    for key in ("authorization_endpoint", "token_endpoint", "revocation_endpoint"):
        assert meta[key].startswith(base_url), (key, meta[key])


# --------------------------------------------------------------------------- instance / version

def test_instance_version_detection(base_url, host, user):
    api = user.api
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        version = api.retrieve_mastodon_version()
    assert version == "4.2.0"
    assert api.verify_minimum_version("4.0.0", cached=True)
    assert not api.verify_minimum_version("4.3.0", cached=True)
    assert api.mastodon_api_version >= 1
    assert not [w for w in caught if "API version" in str(w.message)]


def test_instance_v2_via_instance(base_url, host):
    api = Mastodon(api_base_url=base_url, request_timeout=TIMEOUT)  # anonymous
    inst = api.instance()
    # With a >= 4.0.0 version Mastodon.py returns the v2 entity (it has `domain`, not `uri`).
    assert inst["version"].startswith("4.2.0")
    assert inst["domain"] == host
    assert "configuration" in inst and "urls" in inst["configuration"]
    streaming = inst["configuration"]["urls"]["streaming"]
    assert streaming in (base_url, f"ws://{host}", f"wss://{host}"), streaming


def test_instance_v1(base_url, host):
    api = Mastodon(api_base_url=base_url, request_timeout=TIMEOUT)
    inst = api.instance_v1()
    assert inst["uri"] == host
    assert inst["version"].startswith("4.2.0")
    assert inst["urls"]["streaming_api"] in (base_url, f"ws://{host}", f"wss://{host}")
    assert isinstance(inst["stats"]["user_count"], int)
    assert inst["configuration"]["statuses"]["max_characters"] > 0


def test_streaming_base_resolves(base_url, user):
    # Mastodon.py derives its SSE base from urls.streaming_api and raises MastodonAPIError
    # on anything it cannot map back to http(s)://netloc.  Exercise that code path.
    assert user.api._Mastodon__get_streaming_base() == base_url


# --------------------------------------------------------------------------- profile

def test_update_credentials_roundtrip(user):
    api = user.api
    note = "Hello from the compat suite & friends"
    updated = api.account_update_credentials(
        display_name="Compat Tester", note=note, locked=True, bot=True, discoverable=False
    )
    for acct in (updated, api.account_verify_credentials()):
        assert acct["username"] == user.username
        assert acct["display_name"] == "Compat Tester"
        assert acct["locked"] is True
        assert acct["bot"] is True
        assert acct["discoverable"] is False
        assert acct["note"].startswith("<p>") and acct["note"].endswith("</p>"), acct["note"]
        assert strip_tags(acct["note"]) == note
        assert acct["source"]["note"] == note

    public = api.account(updated["id"])
    assert public["display_name"] == "Compat Tester"
    assert public["locked"] is True and public["bot"] is True
    assert strip_tags(public["note"]) == note


def test_update_credentials_partial_keeps_other_fields(user):
    api = user.api
    api.account_update_credentials(display_name="First", note="keep me")
    after = api.account_update_credentials(locked=True)
    assert after["display_name"] == "First"
    assert after["source"]["note"] == "keep me"
    assert after["locked"] is True
    after = api.account_update_credentials(locked=False)
    assert after["locked"] is False


def test_account_lookup_and_account_by_id(base_url, host, user):
    api = user.api
    me = api.account_verify_credentials()
    found = api.account_lookup(user.username)
    assert found["id"] == me["id"]
    assert found["acct"] == user.username
    assert "source" not in found or found["source"] is None

    # local domain suffix resolves to the same local account
    assert api.account_lookup(f"{user.username}@{host}")["id"] == me["id"]

    by_id = api.account(me["id"])
    assert by_id["username"] == user.username
    assert by_id["id"] == me["id"]

    # anonymous access to a public account
    anon = Mastodon(api_base_url=base_url, request_timeout=TIMEOUT)
    assert anon.account(me["id"])["username"] == user.username


def test_account_lookup_unknown_is_404(user):
    with pytest.raises(MastodonNotFoundError):
        user.api.account_lookup(unique_username("nobody"))
    with pytest.raises(MastodonNotFoundError):
        user.api.account("999999999999999999")


# --------------------------------------------------------------------------- tokens

def test_revoke_access_token(base_url, app, user):
    client_id, client_secret = app
    api, token = password_login(base_url, client_id, client_secret, user.email, user.password)
    assert api.account_verify_credentials()["username"] == user.username

    api.revoke_access_token(allow_http=True)
    assert api.access_token is None  # Mastodon.py forgets the token locally

    stale = Mastodon(access_token=token, api_base_url=base_url, request_timeout=TIMEOUT)
    with pytest.raises(MastodonUnauthorizedError):
        stale.account_verify_credentials()

    # The registration token of the same user is unaffected.
    assert user.api.account_verify_credentials()["username"] == user.username


def test_invalid_token_is_unauthorized(base_url):
    api = Mastodon(access_token="definitely-not-a-token", api_base_url=base_url, request_timeout=TIMEOUT)
    with pytest.raises(MastodonUnauthorizedError):
        api.account_verify_credentials()


def test_app_token_cannot_verify_user_credentials(base_url, app):
    client_id, client_secret = app
    token = app_token(base_url, client_id, client_secret)
    api = Mastodon(access_token=token, api_base_url=base_url, request_timeout=TIMEOUT)
    with pytest.raises(MastodonAPIError) as exc:
        api.account_verify_credentials()
    # Mastodon answers 422 "This method requires an authenticated user"; 401/403 are tolerable.
    assert exc.value.args[1] in (401, 403, 422)


# --------------------------------------------------------------------------- more registration edge cases

def test_create_account_username_too_long(client):
    name = "x" * 31
    token, err = client.create_account(
        name, PASSWORD, f"{unique_username()}@example.com", agreement=True, locale="en",
        return_detailed_error=True,
    )
    assert token is None
    assert "ERR_TOO_LONG" in codes(err, "username"), err


def test_create_account_email_taken_case_insensitive(make_user, client):
    existing = make_user()
    token, err = client.create_account(
        unique_username(), PASSWORD, existing.email.upper(), agreement=True, locale="en",
        return_detailed_error=True,
    )
    assert token is None
    assert "ERR_TAKEN" in codes(err, "email"), err


def test_password_login_email_is_case_insensitive(base_url, app, user):
    client_id, client_secret = app
    api, _ = password_login(base_url, client_id, client_secret, user.email.upper(), user.password)
    assert api.account_verify_credentials()["username"] == user.username


# --------------------------------------------------------------------------- scopes

def test_granular_scopes_are_echoed(base_url, user):
    scopes = ["read:accounts", "write:accounts"]
    client_id, client_secret = Mastodon.create_app(
        "compat-granular", scopes=scopes, api_base_url=base_url, request_timeout=TIMEOUT)
    api = Mastodon(client_id=client_id, client_secret=client_secret, api_base_url=base_url,
                   request_timeout=TIMEOUT)
    # log_in raises MastodonAPIError if the granted `scope` lacks a requested one
    api.log_in(username=user.email, password=user.password, scopes=scopes, allow_http=True)
    assert api.account_verify_credentials()["username"] == user.username
    assert api.account_update_credentials(display_name="granular")["display_name"] == "granular"


def test_read_only_token_cannot_write(base_url, user):
    client_id, client_secret = Mastodon.create_app(
        "compat-readonly", scopes=["read"], api_base_url=base_url, request_timeout=TIMEOUT)
    api = Mastodon(client_id=client_id, client_secret=client_secret, api_base_url=base_url,
                   request_timeout=TIMEOUT)
    api.log_in(username=user.email, password=user.password, scopes=["read"], allow_http=True)
    assert api.account_verify_credentials()["username"] == user.username
    with pytest.raises(MastodonAPIError) as exc:
        api.account_update_credentials(display_name="nope")
    assert exc.value.args[1] == 403, exc.value.args


def test_scope_outside_app_scopes_is_refused(base_url, user):
    client_id, client_secret = Mastodon.create_app(
        "compat-narrow", scopes=["read"], api_base_url=base_url, request_timeout=TIMEOUT)
    api = Mastodon(client_id=client_id, client_secret=client_secret, api_base_url=base_url,
                   request_timeout=TIMEOUT)
    with pytest.raises((MastodonIllegalArgumentError, MastodonAPIError)):
        api.log_in(username=user.email, password=user.password, scopes=["read", "write"], allow_http=True)


# --------------------------------------------------------------------------- profile extras

def test_update_credentials_fields_and_source(user):
    api = user.api
    updated = api.account_update_credentials(
        fields=[("Pronouns", "they/them"), ("Home", "Somewhere & beyond")],
        default_privacy="unlisted", default_sensitive=True, default_language="de",
    )
    for acct in (updated, api.account_verify_credentials()):
        names = [f["name"] for f in acct["fields"]]
        assert names == ["Pronouns", "Home"], acct["fields"]
        assert strip_tags(acct["fields"][1]["value"]) == "Somewhere & beyond"
        assert [f["value"] for f in acct["source"]["fields"]] == ["they/them", "Somewhere & beyond"]
        assert acct["source"]["privacy"] == "unlisted"
        assert acct["source"]["sensitive"] is True
        assert acct["source"]["language"] == "de"


def test_response_headers_mastodon_py_parses(base_url, user):
    """Mastodon.py reads Date and, if X-RateLimit-Remaining is present, Limit (int) and
    Reset (int epoch or ISO 8601) on every API response; garbage there breaks every call."""
    import dateutil.parser

    r = requests.get(f"{base_url}/api/v1/accounts/verify_credentials",
                     headers={"Authorization": f"Bearer {user.access_token}"}, timeout=TIMEOUT)
    assert r.status_code == 200
    assert "Date" in r.headers
    dateutil.parser.parse(r.headers["Date"])
    if "X-RateLimit-Remaining" in r.headers:
        int(r.headers["X-RateLimit-Remaining"])
        int(r.headers["X-RateLimit-Limit"])
        reset = r.headers["X-RateLimit-Reset"]
        if not reset.isdigit():
            dateutil.parser.parse(reset)


def test_revoke_token_of_another_client_is_refused(base_url, user):
    other_id, other_secret = Mastodon.create_app("compat-other", api_base_url=base_url, request_timeout=TIMEOUT)
    api = Mastodon(client_id=other_id, client_secret=other_secret, access_token=user.access_token,
                   api_base_url=base_url, request_timeout=TIMEOUT)
    with pytest.raises(MastodonAPIError) as exc:
        api.revoke_access_token(allow_http=True)
    assert exc.value.args[1] == 403, exc.value.args
    assert user.api.account_verify_credentials()["username"] == user.username


def test_revoke_is_idempotent_and_returns_json(base_url, app, user):
    client_id, client_secret = app
    _, token = password_login(base_url, client_id, client_secret, user.email, user.password)
    for _ in range(2):
        r = requests.post(f"{base_url}/oauth/revoke", data={
            "client_id": client_id, "client_secret": client_secret, "token": token}, timeout=TIMEOUT)
        assert r.status_code == 200, (r.status_code, r.text)
        assert r.headers["Content-Type"].startswith("application/json")
        assert r.json() == {}
