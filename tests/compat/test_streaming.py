"""Streaming through Mastodon.py: Server-Sent Events (`stream_user`,
`stream_hashtag`, `stream_public` with `run_async=True`, the way bots use
them) and its WebSocket transport (`stream_open_websocket`: one socket,
subscribe messages, `Authorization` header).

Each stream is read by Mastodon.py's own thread into a `Recorder` (a
StreamListener keeping what it was handed); tests wait for the event they
want with a deadline. An SSE stream is subscribed once the server wrote its
first `:)`; a WebSocket subscription is a message nothing answers, so the
tests post probes until one is heard (`until_listening`).
"""

import uuid

import pytest
from mastodon import Mastodon
from mastodon.return_types import Notification, Status

from helpers import TIMEOUT, Recorder, close_streams, same_id, text_of, until_listening

# A handle's worker thread that dies of an exception fails the test.
pytestmark = pytest.mark.filterwarnings("error::pytest.PytestUnhandledThreadExceptionWarning")


@pytest.fixture
def handles():
    """Stream handles to close at the end of the test, whatever happened."""
    opened = []
    yield opened
    for h in opened:
        h.close()


def test_stream_user_sse_hears_follows_mentions_and_deletes(make_user, handles):
    alice, bob = make_user(), make_user()
    alice.api.account_follow(bob.id)
    heard = Recorder("alice's user stream (SSE)")
    handle = alice.api.stream_user(heard, run_async=True)
    handles.append(handle)
    heard.wait_connected()
    assert handle.is_receiving()

    post = bob.api.status_post("streamed to my followers")
    status, _ = heard.wait("update", lambda s: same_id(s["id"], post["id"]), "bob's post")
    assert isinstance(status, Status)
    assert same_id(status.account.id, bob.id)
    assert status.account.acct == bob.username
    assert text_of(status.content) == "streamed to my followers"
    assert status.visibility == "public"

    mention = bob.api.status_post(f"@{alice.username} are you listening?")
    notification, _ = heard.wait(
        "notification", lambda n: n["type"] == "mention" and same_id(n["status"]["id"], mention["id"]),
        "bob's mention")
    assert isinstance(notification, Notification)
    assert same_id(notification.account.id, bob.id)
    # A mention from someone she follows is also a home update.
    heard.wait("update", lambda s: same_id(s["id"], mention["id"]), "the mention as a home update")

    bob.api.status_delete(post["id"])
    # `delete` carries the bare id: Mastodon.py json.loads every `data`.
    heard.wait("delete", lambda i: same_id(i, post["id"]), "the deletion")

    assert heard.aborts == []
    close_streams(handle, wake=lambda: alice.api.status_post("bye", visibility="private"))


def test_stream_hashtag_and_public_sse(make_user, base_url, handles):
    alice, bob = make_user(), make_user()
    tag = f"streamtag{uuid.uuid4().hex[:10]}"
    anonymous = Mastodon(api_base_url=base_url, request_timeout=TIMEOUT)
    on_tag = Recorder(f"#{tag} (SSE, no token)")
    on_public = Recorder("public:local (SSE)")
    handles.append(anonymous.stream_hashtag(tag, on_tag, run_async=True))
    handles.append(alice.api.stream_public(on_public, run_async=True, local=True))
    on_tag.wait_connected()
    on_public.wait_connected()

    untagged = bob.api.status_post("nothing to see")
    tagged = bob.api.status_post(f"look at #{tag}")
    status, _ = on_tag.wait("update", lambda s: same_id(s["id"], tagged["id"]), "the tagged post")
    assert [t.name for t in status.tags] == [tag]
    assert status.account.acct == bob.username
    on_public.wait("update", lambda s: same_id(s["id"], untagged["id"]), "the untagged post")
    on_public.wait("update", lambda s: same_id(s["id"], tagged["id"]), "the tagged post")
    assert on_tag.find("update", lambda s: same_id(s["id"], untagged["id"])) is None

    # Not public: neither stream carries it (checked once a later public post came).
    hidden = bob.api.status_post(f"followers only #{tag}", visibility="private")
    sentinel = bob.api.status_post(f"sentinel #{tag}")
    on_tag.wait("update", lambda s: same_id(s["id"], sentinel["id"]), "the sentinel")
    on_public.wait("update", lambda s: same_id(s["id"], sentinel["id"]), "the sentinel")
    for heard in (on_tag, on_public):
        assert heard.find("update", lambda s: same_id(s["id"], hidden["id"])) is None, heard.name
        assert heard.aborts == []
    close_streams(*handles, wake=lambda: bob.api.status_post(f"bye #{tag}"))


def test_stream_websocket_subscriptions(make_user, handles):
    """Mastodon.py's WebSocket transport: user and hashtag on one socket."""
    alice, bob = make_user(), make_user()
    alice.api.account_follow(bob.id)
    tag = f"wstag{uuid.uuid4().hex[:10]}"
    on_user, on_tag = Recorder("user (WebSocket)"), Recorder(f"#{tag} (WebSocket)")
    socket = alice.api.stream_open_websocket()
    handles.append(socket)
    socket.subscribe("user", listener=on_user)
    socket.subscribe("hashtag", listener=on_tag, tag=tag)
    until_listening(lambda: alice.api.status_post(f"listening on #{tag}"), on_user, on_tag)

    post = bob.api.status_post(f"over the socket #{tag}")
    status, stream = on_user.wait("update", lambda s: same_id(s["id"], post["id"]), "bob's post")
    assert stream == ["user"]
    assert status.account.acct == bob.username
    _, stream = on_tag.wait("update", lambda s: same_id(s["id"], post["id"]), "bob's post")
    assert stream == ["hashtag", tag]

    mention = bob.api.status_post(f"@{alice.username} socket mention")
    notification, stream = on_user.wait(
        "notification", lambda n: same_id(n["status"]["id"], mention["id"]), "the mention")
    assert notification.type == "mention" and stream == ["user"]

    bob.api.status_delete(post["id"])
    on_user.wait("delete", lambda i: same_id(i, post["id"]), "the deletion")
    on_tag.wait("delete", lambda i: same_id(i, post["id"]), "the deletion")

    socket.unsubscribe("hashtag", tag=tag)
    assert [s.stream for s in socket.subscriptions()] == ["user"]
    assert on_user.aborts == [] and on_tag.aborts == []
    close_streams(socket)
