"""The `toot` CLI (subprocesses, isolated config dir) against a live Starling."""

import json
import subprocess
import threading

import pytest

from helpers import (
    TIMEOUT,
    parse_page,
    run_toot,
    submit_authorize,
    toot_config,
    toot_env,
    toot_executable,
)


def check(proc: subprocess.CompletedProcess):
    assert proc.returncode == 0, f"rc={proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    return proc


@pytest.fixture
def toot_home(tmp_path):
    home = tmp_path / "home"
    (home / ".config").mkdir(parents=True)
    return home


def login_cli(home, base_url, user):
    return run_toot(home, "login_cli", "--instance", base_url, "--email", user.email, "--password", user.password)


def test_login_cli_and_whoami(base_url, host, user, toot_home):
    proc = check(login_cli(toot_home, base_url, user))
    assert "Successfully logged in" in proc.stdout

    cfg = toot_config(toot_home)
    uid = f"{user.username}@{host}"  # toot keys users on username@<instance uri>
    assert cfg["active_user"] == uid, cfg
    assert cfg["users"][uid]["username"] == user.username
    assert cfg["apps"][host]["base_url"] == base_url

    out = check(run_toot(toot_home, "whoami")).stdout
    assert f"@{user.username}" in out, out

    me = json.loads(check(run_toot(toot_home, "whoami", "--json")).stdout)
    assert me["username"] == user.username
    assert me["acct"] == user.username

    auth = check(run_toot(toot_home, "auth")).stdout
    assert uid in auth and "ACTIVE" in auth


def test_login_cli_reuses_app_for_second_user(base_url, host, make_user, toot_home):
    a, b = make_user(), make_user()
    check(login_cli(toot_home, base_url, a))
    client_id = toot_config(toot_home)["apps"][host]["client_id"]
    check(login_cli(toot_home, base_url, b))
    cfg = toot_config(toot_home)
    assert cfg["apps"][host]["client_id"] == client_id
    assert cfg["active_user"] == f"{b.username}@{host}"
    assert json.loads(check(run_toot(toot_home, "whoami", "--json")).stdout)["username"] == b.username
    out = check(run_toot(toot_home, "--as", f"{a.username}@{host}", "whoami", "--json")).stdout
    assert json.loads(out)["username"] == a.username


def test_login_cli_wrong_password(base_url, user, toot_home):
    proc = run_toot(toot_home, "login_cli", "--instance", base_url, "--email", user.email,
                    "--password", "definitely wrong")
    assert proc.returncode != 0
    assert "Login failed" in proc.stdout + proc.stderr


def test_update_account(base_url, user, toot_home):
    check(login_cli(toot_home, base_url, user))
    # toot sends a form-encoded PATCH with booleans as "true"/"false"
    check(run_toot(toot_home, "update_account", "--display-name", "Tooted Name", "--note", "bio via toot",
                   "--locked", "--bot"))
    me = json.loads(check(run_toot(toot_home, "whoami", "--json")).stdout)
    assert me["display_name"] == "Tooted Name"
    assert me["locked"] is True
    assert me["bot"] is True
    assert me["source"]["note"] == "bio via toot"
    check(run_toot(toot_home, "update_account", "--no-locked", "--no-bot"))
    me = json.loads(check(run_toot(toot_home, "whoami", "--json")).stdout)
    assert me["locked"] is False and me["bot"] is False
    assert me["display_name"] == "Tooted Name"
    # human-readable whoami renders the display name and bio
    out = check(run_toot(toot_home, "whoami")).stdout
    assert "Tooted Name" in out and "bio via toot" in out


def test_browser_login_oob(base_url, host, user, toot_home, http):
    """`toot login`: toot prints /oauth/authorize/?... (note the trailing slash), the person
    signs in in a browser, copies the OOB code and pastes it back into toot."""
    proc = subprocess.Popen(
        [toot_executable(), "login", "--instance", base_url],
        env=toot_env(toot_home),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    timer = threading.Timer(90, proc.kill)
    timer.start()
    try:
        seen = []
        login_url = None
        for line in proc.stdout:
            seen.append(line)
            if line.startswith("http"):
                login_url = line.strip()
                break
        assert login_url, "toot printed no login URL:\n" + "".join(seen) + proc.stderr.read()
        assert login_url.startswith(base_url + "/oauth/authorize/?"), login_url

        page = http.get(login_url, timeout=TIMEOUT)
        assert page.status_code == 200, (page.status_code, page.text[:1000])
        resp = submit_authorize(http, page, user.email, user.password, "approve")
        assert resp.status_code == 200, (resp.status_code, resp.text[:1000])
        code = parse_page(resp.text).auth_code
        assert code, resp.text[:2000]

        # "Open link in default browser? [Y/n]" -> n, then "Authorization code:"
        out, err = proc.communicate(f"n\n{code}\n", timeout=60)
    finally:
        timer.cancel()
    assert proc.returncode == 0, f"stdout:\n{''.join(seen)}{out}\nstderr:\n{err}"
    assert "Successfully logged in" in out
    cfg = toot_config(toot_home)
    assert cfg["active_user"] == f"{user.username}@{host}"
    me = json.loads(check(run_toot(toot_home, "whoami", "--json")).stdout)
    assert me["username"] == user.username


def test_toot_api_register_account_json(base_url, host):
    """toot's own registration helpers (JSON bodies: /api/v1/apps, client_credentials with
    redirect_uri, /api/v1/accounts with "agreement": true)."""
    from toot import App, User, api as toot_api
    from helpers import unique_username, PASSWORD

    creds = toot_api.create_app(base_url)
    app = App(host, base_url, creds["client_id"], creds["client_secret"])
    name = unique_username("t")
    resp = toot_api.register_account(app, name, f"{name}@example.com", PASSWORD)
    assert resp["access_token"]
    me = toot_api.verify_credentials(app, User(host, name, resp["access_token"])).json()
    assert me["username"] == name


def test_toot_api_register_account_error_message(base_url, host, user):
    """toot raises ApiError carrying error_description or error."""
    from toot import App, api as toot_api
    from toot.exceptions import ApiError
    from helpers import PASSWORD

    creds = toot_api.create_app(base_url)
    app = App(host, base_url, creds["client_id"], creds["client_secret"])
    with pytest.raises(ApiError) as exc:
        toot_api.register_account(app, user.username, f"x_{user.email}", PASSWORD)
    assert "taken" in str(exc.value.message).lower(), exc.value.message
