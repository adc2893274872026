"""Streams when an api process of the local cluster stops (SIGTERM).

Runs only against the local cluster, when COMPAT_CLUSTER_SCRIPT names its
script (scripts/cluster; .ci/run sets it): the test stops the api process
holding its streams with `scripts/cluster stop apiN` and starts it again
afterwards. Which process holds a stream is in HAProxy's X-Starling-Server
response header (the cluster's HAProxy sets it).

On SIGTERM the process ends its streams before it exits: an SSE response ends
(Mastodon.py's reader sees the end of the body, not an error, and reconnects
at once with reconnect_async) and a WebSocket gets close code 1001, "going
away" (Mastodon.py's WebSocket handle reconnects too). Through HAProxy the
new connections land on another process and hear new events.
"""

import os
import struct
import subprocess

import pytest
import websocket  # websocket-client

from helpers import Recorder, close_streams, same_id, until_listening, wait_for

CLUSTER = os.environ.get("COMPAT_CLUSTER_SCRIPT")

pytestmark = [
    pytest.mark.skipif(not CLUSTER, reason="COMPAT_CLUSTER_SCRIPT is not set (the local cluster's script)"),
    pytest.mark.filterwarnings("error::pytest.PytestUnhandledThreadExceptionWarning"),
]

SERVER = "X-Starling-Server"


def cluster(*args: str) -> None:
    r = subprocess.run([CLUSTER, *args], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, f"scripts/cluster {' '.join(args)}: {r.stderr}"


def on_process(connect, server_of, want: str, tries: int = 9):
    """Connects (round robin) until a connection lands on `want`; closes the others."""
    for _ in range(tries):
        conn = connect()
        if server_of(conn) == want:
            return conn
        conn.close()
    raise AssertionError(f"no connection landed on {want} in {tries} tries")


def close_code(ws) -> int:
    """Reads a raw WebSocket until its close frame; the code in it."""
    while True:
        opcode, frame = ws.recv_data_frame(control_frame=True)
        if opcode == websocket.ABNF.OPCODE_CLOSE:
            return struct.unpack("!H", frame.data[:2])[0] if len(frame.data) >= 2 else 1005


def test_stopping_an_api_ends_its_streams_and_clients_reconnect_elsewhere(make_user, base_url):
    alice, bob = make_user(), make_user()
    alice.api.account_follow(bob.id)
    ws_url = base_url.replace("http", "ws", 1) + "/api/v1/streaming"

    # Mastodon.py's SSE stream, reconnecting by itself; its process is the victim.
    sse = Recorder("SSE user stream")
    sse_handle = alice.api.stream_user(sse, run_async=True, reconnect_async=True, reconnect_async_wait_sec=1)
    handles = [sse_handle]
    victim = None
    try:
        sse.wait_connected()
        first_sse = sse_handle.connection
        victim = first_sse.headers[SERVER]

        # A raw WebSocket (the token as the subprotocol, as masto.js sends it) and
        # Mastodon.py's WebSocket handle, on the same process.
        raw = on_process(
            lambda: websocket.create_connection(f"{ws_url}?stream=user", subprotocols=[alice.access_token],
                                                timeout=10),
            lambda c: c.getheaders().get(SERVER.lower()), victim)
        handles.append(raw)
        ws = Recorder("Mastodon.py WebSocket")
        ws_handle = on_process(
            lambda: alice.api.stream_open_websocket(ws, reconnect_async=True, reconnect_async_wait_sec=1),
            lambda h: h.connection.getheaders().get(SERVER.lower()), victim)
        handles.append(ws_handle)
        ws_handle.subscribe("user")
        first_ws = ws_handle.connection
        until_listening(lambda: alice.api.status_post("listening", visibility="private"), ws)

        cluster("stop", victim)

        assert close_code(raw) == 1001
        # The SSE response ended (no error: no abort) and Mastodon.py reconnected,
        # through HAProxy, to another process.
        new_sse = wait_for(lambda: sse_handle.connection, lambda c: c is not first_sse and sse_handle.is_receiving(),
                           what="Mastodon.py's SSE stream to reconnect")
        assert new_sse.headers[SERVER] != victim
        assert sse.aborts == [], "the SSE stream ended with an error, not cleanly"
        # Mastodon.py's WebSocket saw the close, reconnected and subscribed again.
        new_ws = wait_for(lambda: ws_handle.connection,
                          lambda c: c not in (None, first_ws) and ws_handle.is_receiving(),
                          what="Mastodon.py's WebSocket to reconnect")
        assert new_ws.getheaders().get(SERVER.lower()) != victim
        until_listening(lambda: alice.api.status_post("listening again", visibility="private"), ws, sse)

        post = bob.api.status_post("after the failover")
        sse.wait("update", lambda s: same_id(s["id"], post["id"]), "bob's post after the failover")
        ws.wait("update", lambda s: same_id(s["id"], post["id"]), "bob's post after the failover")
        close_streams(sse_handle, ws_handle, wake=lambda: alice.api.status_post("bye", visibility="private"))
    finally:
        for h in handles:
            if not getattr(h, "closed", False):
                h.close()
        if victim is not None:
            cluster("start", victim)
