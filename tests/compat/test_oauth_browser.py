"""The authorization_code flow as a person would do it: Mastodon.py builds the URL,
a "browser" (requests + HTMLParser) signs in on the server's HTML form, and
Mastodon.py exchanges the code."""

from urllib.parse import parse_qs, urlsplit

import pytest
from mastodon import Mastodon, MastodonAPIError, MastodonIllegalArgumentError

from helpers import OOB, TIMEOUT, authorize_form, is_html, parse_page, submit_authorize

SCOPES = ["read", "write", "follow", "push"]
CALLBACK = "http://127.0.0.1:9/compat/callback"


def make_client(base_url, redirect_uris=None):
    client_id, client_secret = Mastodon.create_app(
        "compat-oauth", scopes=SCOPES, redirect_uris=redirect_uris, api_base_url=base_url,
        request_timeout=TIMEOUT,
    )
    return Mastodon(client_id=client_id, client_secret=client_secret, api_base_url=base_url,
                    request_timeout=TIMEOUT)


def open_authorize_page(http, url):
    page = http.get(url, timeout=TIMEOUT)
    assert page.status_code == 200, (page.status_code, page.text[:1000])
    assert is_html(page), page.headers.get("Content-Type")
    return page


def test_authorize_page_has_sign_in_form(base_url, http):
    api = make_client(base_url)
    url = api.auth_request_url(redirect_uris=OOB, scopes=SCOPES, allow_http=True)
    assert url.startswith(base_url + "/oauth/authorize?")
    page = open_authorize_page(http, url)
    form = authorize_form(page.text)
    assert form.action.split("?")[0] in ("/oauth/authorize", base_url + "/oauth/authorize"), form.action
    names = form.input_names()
    assert "username" in names and "password" in names, names
    decisions = sorted(v for (n, v) in form.buttons if n == "decision")
    assert decisions == ["approve", "deny"], form.buttons
    hidden = form.hidden()
    # OAuth parameters travel through the form (names are the server's choice,
    # but the values must be in there somewhere).
    assert api.client_id in hidden.values(), hidden


def test_oob_code_flow_with_email(base_url, http, user):
    api = make_client(base_url)
    url = api.auth_request_url(redirect_uris=OOB, scopes=SCOPES, allow_http=True)
    page = open_authorize_page(http, url)

    resp = submit_authorize(http, page, user.email, user.password, "approve")
    assert resp.status_code == 200, (resp.status_code, resp.headers, resp.text[:1000])
    assert is_html(resp)
    code = parse_page(resp.text).auth_code
    assert code, f'no <code id="authorization-code"> in page:\n{resp.text[:2000]}'

    token = api.log_in(code=code, redirect_uri=OOB, scopes=SCOPES, allow_http=True)
    assert token
    me = api.account_verify_credentials()
    assert me["username"] == user.username


def test_oob_code_flow_with_username(base_url, http, user):
    api = make_client(base_url)
    url = api.auth_request_url(scopes=SCOPES, allow_http=True)
    page = open_authorize_page(http, url)
    resp = submit_authorize(http, page, user.username, user.password, "approve")
    assert resp.status_code == 200, (resp.status_code, resp.text[:1000])
    code = parse_page(resp.text).auth_code
    assert code
    api.log_in(code=code, scopes=SCOPES, allow_http=True)
    assert api.account_verify_credentials()["username"] == user.username


def test_code_is_single_use(base_url, http, user):
    api = make_client(base_url)
    page = open_authorize_page(http, api.auth_request_url(scopes=SCOPES, allow_http=True))
    code = parse_page(submit_authorize(http, page, user.email, user.password).text).auth_code
    assert code
    api.log_in(code=code, scopes=SCOPES, allow_http=True)
    again = Mastodon(client_id=api.client_id, client_secret=api.client_secret, api_base_url=base_url,
                     request_timeout=TIMEOUT)
    with pytest.raises(MastodonIllegalArgumentError):
        again.log_in(code=code, scopes=SCOPES, allow_http=True)


def test_redirect_code_flow(base_url, http, user):
    api = make_client(base_url, redirect_uris=[CALLBACK, OOB])
    url = api.auth_request_url(redirect_uris=CALLBACK, scopes=SCOPES, state="xyz123", allow_http=True)
    page = open_authorize_page(http, url)

    resp = submit_authorize(http, page, user.email, user.password, "approve")
    assert resp.status_code == 302, (resp.status_code, resp.text[:1000])
    location = resp.headers["Location"]
    assert location.startswith(CALLBACK + "?"), location
    q = parse_qs(urlsplit(location).query)
    assert q.get("state") == ["xyz123"], q
    code = q["code"][0]
    assert code

    api.log_in(code=code, redirect_uri=CALLBACK, scopes=SCOPES, allow_http=True)
    assert api.account_verify_credentials()["username"] == user.username


def test_redirect_deny(base_url, http, user):
    api = make_client(base_url, redirect_uris=CALLBACK)
    url = api.auth_request_url(redirect_uris=CALLBACK, scopes=SCOPES, state="st4te", allow_http=True)
    page = open_authorize_page(http, url)
    resp = submit_authorize(http, page, user.email, user.password, "deny")
    assert resp.status_code == 302, (resp.status_code, resp.text[:1000])
    location = resp.headers["Location"]
    assert location.startswith(CALLBACK + "?"), location
    q = parse_qs(urlsplit(location).query)
    assert q.get("error") == ["access_denied"], q
    assert q.get("state") == ["st4te"], q
    assert "code" not in q


def test_wrong_password_gives_no_code(base_url, http, user):
    api = make_client(base_url, redirect_uris=[CALLBACK, OOB])
    for redirect in (OOB, CALLBACK):
        url = api.auth_request_url(redirect_uris=redirect, scopes=SCOPES, allow_http=True)
        page = open_authorize_page(http, url)
        resp = submit_authorize(http, page, user.email, "not the password", "approve")
        if resp.status_code in (301, 302, 303, 307, 308):
            assert "code=" not in resp.headers.get("Location", ""), resp.headers.get("Location")
        else:
            assert resp.status_code in (200, 400, 401, 403, 422), resp.status_code
            assert parse_page(resp.text).auth_code is None
            # The sign-in form is shown again so the person can retry.
            assert is_html(resp)
            authorize_form(resp.text)


def test_unregistered_redirect_uri_is_refused(base_url, http):
    api = make_client(base_url)  # only OOB registered
    url = api.auth_request_url(redirect_uris="http://evil.example/cb", scopes=SCOPES, allow_http=True)
    resp = http.get(url, allow_redirects=False, timeout=TIMEOUT)
    # Never redirect to an unregistered URI; an error page is expected.
    assert resp.status_code not in (301, 302, 303, 307, 308), resp.headers.get("Location")
    assert resp.status_code >= 400


def test_force_login_lang_and_state_params(base_url, http, user):
    """Mastodon.py sends force_login=True/False and lang literally (Python repr)."""
    api = make_client(base_url)
    url = api.auth_request_url(scopes=SCOPES, force_login=True, state="abc", lang="en", allow_http=True)
    assert "force_login=True" in url
    page = open_authorize_page(http, url)
    resp = submit_authorize(http, page, user.email, user.password, "approve")
    code = parse_page(resp.text).auth_code
    assert code, resp.text[:1000]
    api.log_in(code=code, scopes=SCOPES, allow_http=True)
    assert api.account_verify_credentials()["username"] == user.username


def test_narrower_scope_at_authorize(base_url, http, user):
    api = make_client(base_url)
    url = api.auth_request_url(scopes=["read"], allow_http=True)
    page = open_authorize_page(http, url)
    code = parse_page(submit_authorize(http, page, user.email, user.password).text).auth_code
    assert code
    api.log_in(code=code, scopes=["read"], allow_http=True)
    assert api.account_verify_credentials()["username"] == user.username
    with pytest.raises(MastodonAPIError) as exc:
        api.account_update_credentials(display_name="nope")
    assert exc.value.args[1] == 403


def test_authorize_scope_outside_app_is_refused(base_url, http):
    client_id, client_secret = Mastodon.create_app(
        "compat-oauth-narrow", scopes=["read"], api_base_url=base_url, request_timeout=TIMEOUT)
    api = Mastodon(client_id=client_id, client_secret=client_secret, api_base_url=base_url,
                   request_timeout=TIMEOUT)
    url = api.auth_request_url(scopes=["read", "write"], allow_http=True)
    resp = http.get(url, allow_redirects=False, timeout=TIMEOUT)
    assert resp.status_code >= 400 or "code=" not in resp.headers.get("Location", "")
    if resp.status_code == 200:
        pytest.fail("authorize page shown for a scope the app was not registered with")


def test_code_with_wrong_redirect_uri_is_rejected(base_url, http, user):
    api = make_client(base_url, redirect_uris=[CALLBACK, OOB])
    page = open_authorize_page(http, api.auth_request_url(redirect_uris=OOB, scopes=SCOPES, allow_http=True))
    code = parse_page(submit_authorize(http, page, user.email, user.password).text).auth_code
    assert code
    with pytest.raises(MastodonIllegalArgumentError):
        api.log_in(code=code, redirect_uri=CALLBACK, scopes=SCOPES, allow_http=True)


def test_browser_sign_in_email_case_insensitive(base_url, http, user):
    api = make_client(base_url)
    page = open_authorize_page(http, api.auth_request_url(scopes=SCOPES, allow_http=True))
    resp = submit_authorize(http, page, user.email.upper(), user.password)
    code = parse_page(resp.text).auth_code
    assert code, (resp.status_code, resp.text[:1000])
