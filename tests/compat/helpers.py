"""Helpers for the compatibility suite (not a test module)."""

import html
import json
import os
import re
import struct
import subprocess
import sys
import threading
import time
import uuid
import zlib
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple, TypeVar
from urllib.parse import urljoin

import requests
from mastodon import Mastodon, StreamListener

# Every client call gets a bounded timeout so a hung server fails the test
# instead of hanging the run (Mastodon.py's default is 300 s).
TIMEOUT = 30

PASSWORD = "correct horse battery staple"

OOB = "urn:ietf:wg:oauth:2.0:oob"


def unique_username(prefix: str = "u") -> str:
    """A fresh username (<= 30 chars, [a-z0-9_]) so tests never collide."""
    return f"{prefix}_{uuid.uuid4().hex[:16]}"


@dataclass
class User:
    username: str
    email: str
    password: str
    access_token: str
    client_id: str
    client_secret: str
    api: Mastodon  # Mastodon.py client authenticated as this user
    _id: Optional[str] = field(default=None, repr=False)

    @property
    def id(self) -> str:
        """The account id (verify_credentials, fetched once)."""
        if self._id is None:
            self._id = self.api.account_verify_credentials()["id"]
        return self._id


# ---------------------------------------------------------------------------
# Waiting for the asynchronous half (fan-out to home timelines, notifications)
# ---------------------------------------------------------------------------

T = TypeVar("T")

POLL_INTERVAL = 0.05
POLL_TIMEOUT = 10.0


def wait_for(fetch: Callable[[], T], until: Callable[[T], bool] = bool, what: str = "condition",
             timeout: float = POLL_TIMEOUT, interval: float = POLL_INTERVAL) -> T:
    """Call `fetch()` every `interval` s until `until(value)` holds; return that value.

    Home-timeline fan-out and notifications are written by background consumers a
    few milliseconds after the request that caused them, so tests poll with a
    deadline instead of sleeping."""
    deadline = time.monotonic() + timeout
    while True:
        value = fetch()
        if until(value):
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}; last value:\n{value!r}")
        time.sleep(interval)


# ---------------------------------------------------------------------------
# Streaming: what a listener heard, waited for like everything else
# ---------------------------------------------------------------------------

class Recorder(StreamListener):
    """A Mastodon.py StreamListener that keeps every event it is handed
    (`(name, payload, for_stream)`, payloads as Mastodon.py parsed them), the
    heartbeats (`:)` and `:thump` comment lines on SSE) and any abort."""

    def __init__(self, name: str = "stream"):
        super().__init__()
        self.name = name
        self.events: List[Tuple[str, object, object]] = []
        self.heartbeats = 0
        self.aborts: List[Exception] = []
        self._lock = threading.Lock()

    def on_any_event(self, name, data=None, for_stream=None):
        with self._lock:
            self.events.append((name, data, for_stream))

    def handle_heartbeat(self):
        with self._lock:
            self.heartbeats += 1

    def on_abort(self, err):
        with self._lock:
            self.aborts.append(err)

    def snapshot(self) -> List[Tuple[str, object, object]]:
        with self._lock:
            return list(self.events)

    def find(self, name: str, want: Callable[[object], bool]):
        return next(((n, p, s) for (n, p, s) in self.snapshot() if n == name and want(p)), None)

    def wait(self, name: str, want: Callable[[object], bool], what: str):
        """The first `name` event whose payload `want` accepts: (payload, for_stream)."""
        found = wait_for(lambda: self.find(name, want), lambda e: e is not None,
                         what=f"{what} ({name}) on {self.name}; aborts: {self.aborts!r}")
        return found[1], found[2]

    def wait_connected(self):
        """SSE: the server's `:)`, written once the stream is subscribed."""
        wait_for(lambda: self.heartbeats, what=f"{self.name} to open (its first `:)`)")


def same_id(a, b) -> bool:
    return str(a) == str(b)


def until_listening(post: Callable[[], object], *recorders: "Recorder", what: str = "a probe post") -> None:
    """A WebSocket subscription is a message nothing answers: post (with
    `post`, which returns the status) every half second until every recorder
    heard one of those posts as an `update`, so later events are surely heard."""
    posted: List[str] = []

    def heard_by_all():
        posted.append(str(post()["id"]))
        deadline = time.monotonic() + 0.5
        while time.monotonic() < deadline:
            if all(r.find("update", lambda s: str(s["id"]) in posted) for r in recorders):
                return True
            time.sleep(POLL_INTERVAL)
        return False

    wait_for(heard_by_all, what=f"{what} heard on {', '.join(r.name for r in recorders)}", interval=0)


def close_streams(*handles, wake: Optional[Callable[[], object]] = None) -> None:
    """Closes stream handles and checks that their threads end.

    Mastodon.py's `close()` of an SSE stream returns once the server writes
    again (http.client's close waits for the handle's thread, blocked in a
    read), that is at the next 15 s heartbeat: `wake` (a post these streams
    carry), sent until every close() returned, saves that wait."""
    closers = [threading.Thread(target=h.close) for h in handles]
    for c in closers:
        c.start()
    deadline = time.monotonic() + 20
    while any(c.is_alive() for c in closers) and time.monotonic() < deadline:
        if wake is not None and all(h.closed for h in handles):
            wake()
        time.sleep(0.3)
    for h in handles:
        h.join(5)
        assert not h.is_alive(), "a stream's thread still runs after close()"


def text_of(fragment: str) -> str:
    """Plain text of an HTML fragment (status content, account note)."""
    return html.unescape(re.sub(r"<[^>]+>", "", fragment or ""))


def app_token(base_url: str, client_id: str, client_secret: str, scope: str = "read write follow push") -> str:
    """client_credentials token, obtained exactly like Mastodon.py's create_account() does."""
    r = requests.post(
        f"{base_url}/oauth/token",
        data={
            "grant_type": "client_credentials",
            "client_id": client_id,
            "client_secret": client_secret,
            "scope": scope,
        },
        timeout=TIMEOUT,
    )
    assert r.status_code == 200, (r.status_code, r.text)
    return r.json()["access_token"]


# ---------------------------------------------------------------------------
# A tiny browser: parse forms out of an HTML page and submit them.
# ---------------------------------------------------------------------------

@dataclass
class Form:
    method: str
    action: str
    # (name, type, value) for every <input>, in document order
    inputs: List[Tuple[str, str, str]] = field(default_factory=list)
    # (name, value) for every submit control (<button> or <input type=submit>)
    buttons: List[Tuple[str, str]] = field(default_factory=list)

    def hidden(self) -> Dict[str, str]:
        return {n: v for (n, t, v) in self.inputs if t == "hidden" and n}

    def input_names(self) -> List[str]:
        return [n for (n, t, v) in self.inputs if n and t not in ("submit", "button", "image", "reset")]


class PageParser(HTMLParser):
    """Collects forms and the text of <code id="authorization-code">."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.forms: List[Form] = []
        self._form: Optional[Form] = None
        self._button: Optional[Dict[str, str]] = None
        self._in_code = False
        self.auth_code: Optional[str] = None
        self._code_buf: List[str] = []

    def handle_starttag(self, tag, attrs):
        a = {k: (v if v is not None else "") for k, v in attrs}
        if tag == "form":
            self._form = Form(method=a.get("method", "get").lower(), action=a.get("action", ""))
            self.forms.append(self._form)
        elif tag == "input" and self._form is not None:
            typ = a.get("type", "text").lower()
            name = a.get("name", "")
            value = a.get("value", "")
            if typ == "submit":
                self._form.buttons.append((name, value))
            self._form.inputs.append((name, typ, value))
        elif tag == "button" and self._form is not None:
            typ = a.get("type", "submit").lower()
            if typ == "submit":
                self._form.buttons.append((a.get("name", ""), a.get("value", "")))
        elif tag == "code" and a.get("id") == "authorization-code":
            self._in_code = True
            self._code_buf = []

    def handle_startendtag(self, tag, attrs):
        self.handle_starttag(tag, attrs)

    def handle_endtag(self, tag):
        if tag == "form":
            self._form = None
        elif tag == "code" and self._in_code:
            self._in_code = False
            self.auth_code = "".join(self._code_buf).strip()

    def handle_data(self, data):
        if self._in_code:
            self._code_buf.append(data)


def parse_page(html: str) -> PageParser:
    p = PageParser()
    p.feed(html)
    p.close()
    return p


def authorize_form(page_html: str) -> Form:
    """The single POST form of the /oauth/authorize page."""
    forms = [f for f in parse_page(page_html).forms if f.method == "post"]
    assert len(forms) == 1, f"expected exactly one POST form on the authorize page, found {len(forms)}:\n{page_html[:2000]}"
    return forms[0]


def submit_authorize(http: requests.Session, page: requests.Response, login: str, password: str,
                     decision: str = "approve") -> requests.Response:
    """Fill in the sign-in form like a person would and press the `decision` button."""
    form = authorize_form(page.text)
    assert form.action, "authorize form has no action"
    action = urljoin(page.url, form.action)
    data = dict(form.hidden())
    data["username"] = login
    data["password"] = password
    data["decision"] = decision
    return http.post(action, data=data, allow_redirects=False, timeout=TIMEOUT)


def is_html(resp: requests.Response) -> bool:
    return resp.headers.get("Content-Type", "").lower().startswith("text/html")


# ---------------------------------------------------------------------------
# toot CLI runner
# ---------------------------------------------------------------------------

def toot_executable() -> str:
    # The venv's `toot` sits next to the interpreter running pytest.
    exe = Path(sys.executable).parent / "toot"
    return str(exe) if exe.exists() else "toot"


def toot_env(home: Path) -> Dict[str, str]:
    env = dict(os.environ)
    env["HOME"] = str(home)
    env["XDG_CONFIG_HOME"] = str(home / ".config")
    env["XDG_CACHE_HOME"] = str(home / ".cache")   # toot keeps the last posted id there
    env["PYTHONUNBUFFERED"] = "1"
    env["NO_COLOR"] = "1"
    env["COLUMNS"] = "120"
    # toot uses auto_envvar_prefix="TOOT": make sure nothing leaks in from the caller
    for k in list(env):
        if k.startswith("TOOT_"):
            del env[k]
    return env


def run_toot(home: Path, *args: str, input: Optional[str] = None, timeout: int = 60,
             env: Optional[Dict[str, str]] = None) -> subprocess.CompletedProcess:
    full_env = toot_env(home)
    if env:
        full_env.update(env)
    return subprocess.run(
        [toot_executable(), *args],
        env=full_env,
        input=input,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def invoke_toot(home: Path, *args: str, input: Optional[str] = None,
                env: Optional[Dict[str, str]] = None) -> subprocess.CompletedProcess:
    """Run the toot CLI in-process with click's CliRunner (same command code as the
    `toot` executable, without ~0.5 s of interpreter start-up per call).

    Same isolation as run_toot: HOME/XDG dirs point into `home`, TOOT_* variables are
    removed for the duration of the call.  Returns a CompletedProcess look-alike."""
    import traceback
    from click.testing import CliRunner
    from toot.cli import cli

    overrides: Dict[str, Optional[str]] = {k: None for k in os.environ if k.startswith("TOOT_")}
    full = toot_env(home)
    for k in ("HOME", "XDG_CONFIG_HOME", "XDG_CACHE_HOME", "NO_COLOR", "COLUMNS"):
        overrides[k] = full[k]
    if env:
        overrides.update(env)
    result = CliRunner().invoke(cli, list(args), input=input, env=overrides, catch_exceptions=True)
    stderr = result.stderr
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        stderr += "".join(traceback.format_exception(*result.exc_info))
    return subprocess.CompletedProcess(["toot", *args], result.exit_code, result.stdout, stderr)


def toot_config(home: Path) -> dict:
    return json.loads((home / ".config" / "toot" / "config.json").read_text())


# ---------------------------------------------------------------------------
# Media
# ---------------------------------------------------------------------------

def png(width=48, height=32):
    """A valid RGB gradient PNG."""
    def chunk(kind, data):
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body) & 0xFFFFFFFF)

    rows = b"".join(
        b"\x00" + b"".join(bytes((x * 255 // width, y * 255 // height, 128)) for x in range(width))
        for y in range(height)
    )
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows))
            + chunk(b"IEND", b""))
