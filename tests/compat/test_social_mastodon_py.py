"""Mastodon.py against a live Starling: the social core.

Follows, posts, replies, boosts, favourites, threads, home/public/tag timelines with
Link-header pagination, notifications, locked accounts, blocks/mutes, search,
delete-and-redraft, idempotent posting, markers and preferences -- all through
Mastodon.py's own methods, asserting on the objects it parses.

Home-timeline fan-out and notifications are written by background consumers
shortly after the request: tests wait for them with `wait_for` (50 ms polls, 10 s
deadline).  Absence ("X is *not* in the home timeline") is checked after a later
sentinel post has arrived, since the consumers work through events in order.
"""

import datetime
import uuid

import pytest
import requests
from mastodon import Mastodon, MastodonAPIError, MastodonNotFoundError

from helpers import TIMEOUT, text_of, unique_username, wait_for


# --------------------------------------------------------------------------- helpers

def ids(items):
    return [x["id"] for x in items]


def walk(api, first_page, direction="next"):
    """Follow fetch_next / fetch_previous from `first_page`; return the list of pages."""
    pages = []
    page = first_page
    while page is not None and len(page) > 0:
        pages.append(page)
        assert len(pages) < 50, "pagination does not terminate"
        page = api.fetch_next(page) if direction == "next" else api.fetch_previous(page)
    return pages


def home_ids(user, limit=40):
    return ids(user.api.timeline_home(limit=limit))


def all_home_ids(user):
    """Every id in the home timeline, walked with fetch_next in pages of 40."""
    return [i for page in walk(user.api, user.api.timeline_home(limit=40)) for i in ids(page)]


def wait_home_has(user, *status_ids):
    want = set(status_ids)
    return wait_for(lambda: home_ids(user), lambda got: want <= set(got),
                    what=f"{sorted(want)} in @{user.username}'s home timeline")


def notifications_of(user, **kw):
    return user.api.notifications(**kw)


def wait_notifications(user, count, **kw):
    return wait_for(lambda: notifications_of(user, **kw), lambda got: len(got) >= count,
                    what=f"{count} notifications ({kw}) for @{user.username}")


def sentinel(author, *readers):
    """`author` posts a fresh status and we wait until every reader has it at home.

    Fan-out handles events in order, so anything `author` or others did before is
    already reflected in those home timelines once the sentinel shows up."""
    s = author.api.status_post(f"sentinel {uuid.uuid4().hex[:8]}")
    for r in readers:
        wait_home_has(r, s["id"])
    return s


def follow(a, b, **kw):
    rel = a.api.account_follow(b.id, **kw)
    assert rel["id"] == b.id
    return rel


def rel(a, b):
    (r,) = a.api.account_relationships(b.id)
    assert r["id"] == b.id
    return r


def api_status(exc):
    """HTTP status of a MastodonAPIError: args are (message, status, reason, error)."""
    return exc.value.args[1]


@pytest.fixture
def alice(make_user):
    return make_user(unique_username("alice"))


@pytest.fixture
def bob(make_user):
    return make_user(unique_username("bob"))


@pytest.fixture
def carol(make_user):
    return make_user(unique_username("carol"))


@pytest.fixture
def anon(base_url):
    return Mastodon(api_base_url=base_url, request_timeout=TIMEOUT)


# --------------------------------------------------------------------------- the end-to-end scenario

def test_two_people_follow_post_reply_boost_favourite(alice, bob):
    """The issue's scenario: alice and bob follow each other, post, reply, boost and
    favourite; each sees the right home timeline, notifications and thread."""
    # --- follow each other
    r = follow(alice, bob)
    assert r["following"] is True and r["followed_by"] is False and r["requested"] is False
    r = follow(bob, alice)
    assert r["following"] is True and r["followed_by"] is True
    r = rel(alice, bob)
    assert r["following"] is True and r["followed_by"] is True
    assert r["showing_reblogs"] is True and r["notifying"] is False
    assert r["blocking"] is False and r["muting"] is False
    for key in ("blocked_by", "muting_notifications", "requested_by", "domain_blocking", "endorsed", "note"):
        assert key in r, key

    # --- alice posts, bob replies, alice answers
    tag = f"Hello{uuid.uuid4().hex[:8]}"
    post = alice.api.status_post(f"First post! #{tag}")
    assert text_of(post["content"]) == f"First post! #{tag}"
    assert post["account"]["id"] == alice.id
    assert post["visibility"] == "public"
    assert [t["name"] for t in post["tags"]] == [tag.lower()]

    wait_home_has(bob, post["id"])
    bob_view = bob.api.status(post["id"])
    reply = bob.api.status_reply(bob_view, "welcome!")       # prepends "@alice "
    assert reply["in_reply_to_id"] == post["id"]
    assert reply["in_reply_to_account_id"] == alice.id
    assert [m["id"] for m in reply["mentions"]] == [alice.id]
    assert reply["mentions"][0]["acct"] == alice.username
    assert text_of(reply["content"]) == f"@{alice.username} welcome!"

    wait_home_has(alice, reply["id"])
    answer = alice.api.status_reply(alice.api.status(reply["id"]), "thanks :)")
    assert answer["in_reply_to_id"] == reply["id"]
    assert [m["acct"] for m in answer["mentions"]] == [bob.username]

    # --- bob boosts and favourites alice's post
    boost = bob.api.status_reblog(post["id"])
    assert boost["id"] != post["id"]
    assert boost["account"]["id"] == bob.id
    assert boost["reblog"]["id"] == post["id"]
    assert boost["reblog"]["reblogged"] is True
    assert boost["content"] == ""
    fav = bob.api.status_favourite(post["id"])
    assert fav["id"] == post["id"]
    assert fav["favourited"] is True
    assert fav["favourites_count"] == 1

    # --- counters and per-viewer flags
    mine = alice.api.status(post["id"])
    assert mine["replies_count"] == 1
    assert mine["reblogs_count"] == 1
    assert mine["favourites_count"] == 1
    assert mine["favourited"] is False and mine["reblogged"] is False
    theirs = bob.api.status(post["id"])
    assert theirs["favourited"] is True and theirs["reblogged"] is True
    assert ids(alice.api.status_reblogged_by(post["id"])) == [bob.id]
    assert ids(alice.api.status_favourited_by(post["id"])) == [bob.id]

    # --- home timelines
    wait_home_has(alice, post["id"], reply["id"], answer["id"])
    wait_home_has(bob, post["id"], reply["id"], answer["id"])

    # --- notifications: alice got follow, mention, reblog, favourite from bob
    want = {"follow", "mention", "reblog", "favourite"}
    notes = wait_for(lambda: alice.api.notifications(),
                     lambda ns: want <= {n["type"] for n in ns},
                     what="alice's follow/mention/reblog/favourite notifications")
    by_type = {n["type"]: n for n in notes}
    assert len(notes) == 4, [n["type"] for n in notes]
    for n in notes:
        assert n["account"]["id"] == bob.id
        assert isinstance(n["id"], str)
        assert isinstance(n["created_at"], datetime.datetime)
    assert by_type["mention"]["status"]["id"] == reply["id"]
    assert by_type["reblog"]["status"]["id"] == post["id"]
    assert by_type["favourite"]["status"]["id"] == post["id"]
    assert by_type["follow"].get("status") is None
    # newest first
    assert ids(notes) == sorted(ids(notes), key=int, reverse=True)

    # bob got follow and mention from alice
    notes = wait_for(lambda: bob.api.notifications(),
                     lambda ns: {"follow", "mention"} <= {n["type"] for n in ns},
                     what="bob's follow/mention notifications")
    assert sorted(n["type"] for n in notes) == ["follow", "mention"]
    assert all(n["account"]["id"] == alice.id for n in notes)
    assert [n["status"]["id"] for n in notes if n["type"] == "mention"] == [answer["id"]]

    # --- the thread, seen from both ends
    ctx = alice.api.status_context(post["id"])
    assert ids(ctx["ancestors"]) == []
    assert ids(ctx["descendants"]) == [reply["id"], answer["id"]]
    ctx = bob.api.status_context(answer["id"])
    assert ids(ctx["ancestors"]) == [post["id"], reply["id"]]
    assert ids(ctx["descendants"]) == []

    # --- tag timeline and search find it
    assert ids(bob.api.timeline_hashtag(tag)) == [post["id"]]
    found = bob.api.search_v2(f"#{tag}")
    assert tag.lower() in [t["name"] for t in found["hashtags"]]
    found = alice.api.search_v2(f"@{bob.username}")
    assert bob.id in ids(found["accounts"])


# --------------------------------------------------------------------------- follows

def test_follow_options_relationships_and_lists(alice, bob, carol):
    r = follow(alice, bob, reblogs=False, notify=True)
    assert r["following"] is True
    assert r["showing_reblogs"] is False
    assert r["notifying"] is True
    # following again updates the options (idempotent, no error)
    r = follow(alice, bob, reblogs=True, notify=False)
    assert r["following"] is True and r["showing_reblogs"] is True and r["notifying"] is False
    follow(carol, bob)

    # relationships come back in request order
    rels = alice.api.account_relationships([carol.id, bob.id])
    assert ids(rels) == [carol.id, bob.id]
    assert rels[0]["following"] is False and rels[1]["following"] is True
    # a single id is sent as plain `id=` by Mastodon.py
    assert rel(bob, alice)["followed_by"] is True

    assert set(ids(alice.api.account_followers(bob.id))) == {alice.id, carol.id}
    assert ids(alice.api.account_following(alice.id)) == [bob.id]
    assert ids(alice.api.account_followers(alice.id)) == []
    b = alice.api.account(bob.id)
    assert b["followers_count"] == 2 and b["following_count"] == 0
    assert alice.api.account_verify_credentials()["following_count"] == 1

    r = alice.api.account_unfollow(bob.id)
    assert r["following"] is False
    assert alice.api.account_unfollow(bob.id)["following"] is False   # idempotent
    assert ids(alice.api.account_followers(bob.id)) == [carol.id]
    assert alice.api.account(bob.id)["followers_count"] == 1


def test_follow_self_or_unknown_is_not_found(alice):
    with pytest.raises(MastodonNotFoundError):
        alice.api.account_follow(alice.id)
    with pytest.raises(MastodonNotFoundError):
        alice.api.account_follow("999999999999999999")


def test_followers_pagination(make_user, alice):
    fans = [make_user() for _ in range(5)]
    for f in fans:
        follow(f, alice)
    first = alice.api.account_followers(alice.id, limit=2)
    pages = walk(alice.api, first)
    assert [len(p) for p in pages] == [2, 2, 1]
    got = [i for p in pages for i in ids(p)]
    assert sorted(got) == sorted(f.id for f in fans)
    assert got == [f.id for f in reversed(fans)]            # most recent follow first


def test_notify_follow_creates_status_notifications(alice, bob):
    follow(alice, bob, notify=True)
    s = bob.api.status_post("ping to my subscribers")
    notes = wait_for(lambda: alice.api.notifications(types=["status"]), lambda ns: len(ns) >= 1,
                     what="a `status` notification")
    assert notes[0]["type"] == "status"
    assert notes[0]["status"]["id"] == s["id"]
    assert notes[0]["account"]["id"] == bob.id


# --------------------------------------------------------------------------- posting

def test_post_entity(alice, bob, base_url, host):
    follow(bob, alice)
    tag = f"Entity{uuid.uuid4().hex[:6]}"
    s = alice.api.status_post(
        f"Hi @{bob.username}, see #{tag} & more",
        visibility="unlisted", spoiler_text="cw here", sensitive=True, language="en",
    )
    assert isinstance(s["id"], str) and s["id"].isdigit()
    assert isinstance(s["created_at"], datetime.datetime)
    assert s["visibility"] == "unlisted"
    assert s["spoiler_text"] == "cw here"
    assert s["sensitive"] is True
    assert s["language"] == "en"
    assert s["in_reply_to_id"] is None and s["reblog"] is None
    assert s["reblogs_count"] == 0 and s["favourites_count"] == 0 and s["replies_count"] == 0
    assert s["favourited"] is False and s["reblogged"] is False and s["bookmarked"] is False
    assert s["media_attachments"] == [] and s["emojis"] == []
    assert s["url"] == f"{base_url}/@{alice.username}/{s['id']}"
    assert s["uri"].startswith(base_url)
    assert s["account"]["username"] == alice.username
    # content: sanitized HTML with Mastodon's mention/hashtag markup
    assert s["content"].startswith("<p>") and s["content"].endswith("</p>")
    assert text_of(s["content"]) == f"Hi @{bob.username}, see #{tag} & more"
    assert 'class="u-url mention"' in s["content"]
    assert f'href="{base_url}/@{bob.username}"' in s["content"]
    assert 'class="mention hashtag"' in s["content"]
    assert f'href="{base_url}/tags/{tag.lower()}"' in s["content"]
    assert [(m["id"], m["username"], m["acct"]) for m in s["mentions"]] == [(bob.id, bob.username, bob.username)]
    assert [t["name"] for t in s["tags"]] == [tag.lower()]
    assert s["tags"][0]["url"] == f"{base_url}/tags/{tag.lower()}"
    # the same status read back, anonymously too (unlisted is readable by link)
    again = bob.api.status(s["id"])
    assert again["content"] == s["content"]
    assert Mastodon(api_base_url=base_url, request_timeout=TIMEOUT).status(s["id"])["id"] == s["id"]
    # mentioned user is notified
    n = wait_notifications(bob, 1, types=["mention"])
    assert n[0]["status"]["id"] == s["id"]


def test_post_blank_is_rejected(alice):
    with pytest.raises(MastodonAPIError) as exc:
        alice.api.status_post("")
    assert api_status(exc) == 422


def test_idempotency_key_returns_the_same_status(alice, bob):
    key = uuid.uuid4().hex
    first = alice.api.status_post("only once", idempotency_key=key)
    again = alice.api.status_post("only once", idempotency_key=key)
    assert again["id"] == first["id"]
    # parameters are not compared: the original comes back
    third = alice.api.status_post("something else", idempotency_key=key)
    assert third["id"] == first["id"]
    assert text_of(third["content"]) == "only once"
    # a new key posts a new status; another account's identical key is its own
    other = alice.api.status_post("only once", idempotency_key=uuid.uuid4().hex)
    assert other["id"] != first["id"]
    bobs = bob.api.status_post("bob's", idempotency_key=key)
    assert bobs["id"] != first["id"] and bobs["account"]["id"] == bob.id
    assert alice.api.account(alice.id)["statuses_count"] == 2
    assert sorted(ids(alice.api.account_statuses(alice.id))) == sorted([first["id"], other["id"]])


def test_visibility(alice, bob, carol, anon):
    follow(bob, alice)
    pub = alice.api.status_post("public one")
    unl = alice.api.status_post("unlisted one", visibility="unlisted")
    priv = alice.api.status_post("followers only", visibility="private")
    dm = alice.api.status_post(f"@{bob.username} just for you", visibility="direct")
    assert (priv["visibility"], dm["visibility"]) == ("private", "direct")

    # a follower (and mentioned) sees all four at home
    wait_home_has(bob, pub["id"], unl["id"], priv["id"], dm["id"])
    assert bob.api.status(priv["id"])["id"] == priv["id"]
    assert bob.api.status(dm["id"])["id"] == dm["id"]

    # a stranger and an anonymous reader do not see private/direct
    for api in (carol.api, anon):
        assert api.status(unl["id"])["id"] == unl["id"]
        for hidden in (priv, dm):
            with pytest.raises(MastodonNotFoundError):
                api.status(hidden["id"])
        seen = ids(api.account_statuses(alice.id))
        assert pub["id"] in seen and unl["id"] in seen
        assert priv["id"] not in seen and dm["id"] not in seen

    # the follower's view of the account includes followers-only posts
    seen = ids(bob.api.account_statuses(alice.id))
    assert {pub["id"], unl["id"], priv["id"]} <= set(seen)

    # reblogging a followers-only post of someone else is refused
    with pytest.raises(MastodonAPIError) as exc:
        bob.api.status_reblog(priv["id"])
    assert api_status(exc) == 403

    # replying to a status one cannot see fails
    with pytest.raises(MastodonAPIError) as exc:
        carol.api.status_post("sneaky", in_reply_to_id=priv["id"])
    assert api_status(exc) in (404, 422)


# --------------------------------------------------------------------------- boosts and favourites

def test_boost_and_favourite_through_a_boost(alice, bob, carol):
    """Clients act on what the timeline shows: a boost wrapper's id.  Boosting or
    favouriting the wrapper acts on the original (Mastodon unwraps)."""
    follow(carol, bob)
    s = alice.api.status_post("original")
    wrapper = bob.api.status_reblog(s["id"], visibility="unlisted")
    assert wrapper["visibility"] == "unlisted"
    wait_home_has(carol, wrapper["id"])
    (seen,) = [x for x in carol.api.timeline_home() if x["id"] == wrapper["id"]]
    again = carol.api.status_reblog(seen)          # Mastodon.py unpacks the wrapper's id
    assert again["reblog"]["id"] == s["id"]
    fav = carol.api.status_favourite(seen)
    assert fav["id"] == s["id"] and fav["favourited"] is True
    orig = alice.api.status(s["id"])
    assert orig["reblogs_count"] == 2 and orig["favourites_count"] == 1
    assert set(ids(alice.api.status_reblogged_by(s["id"]))) == {bob.id, carol.id}
    assert carol.api.status_unfavourite(seen)["favourited"] is False
    assert carol.api.status_unreblog(seen)["reblogged"] is False
    assert alice.api.status(s["id"])["reblogs_count"] == 1



def test_reblog_unreblog(alice, bob, carol):
    follow(carol, bob)
    s = alice.api.status_post("boost me")
    b1 = bob.api.status_reblog(s["id"])
    b2 = bob.api.status_reblog(s["id"])           # idempotent: same wrapper
    assert b2["id"] == b1["id"]
    assert b1["reblog"]["reblogs_count"] == 1
    assert alice.api.status(s["id"])["reblogs_count"] == 1

    # carol follows bob (not alice): the boost reaches her home as a wrapper
    wait_home_has(carol, b1["id"])
    (wrapper,) = [x for x in carol.api.timeline_home() if x["id"] == b1["id"]]
    assert wrapper["account"]["id"] == bob.id
    assert wrapper["reblog"]["id"] == s["id"]
    assert wrapper["reblog"]["account"]["id"] == alice.id
    # the wrapper itself resolves via status()
    assert carol.api.status(b1["id"])["reblog"]["id"] == s["id"]
    # reblogs are listed on the booster's profile
    assert b1["id"] in ids(alice.api.account_statuses(bob.id))
    assert b1["id"] not in ids(alice.api.account_statuses(bob.id, exclude_reblogs=True))

    n = wait_notifications(alice, 1, types=["reblog"])
    assert n[0]["status"]["id"] == s["id"] and n[0]["account"]["id"] == bob.id

    orig = bob.api.status_unreblog(s["id"])
    assert orig["id"] == s["id"]
    assert orig["reblogged"] is False
    assert orig["reblogs_count"] == 0
    assert ids(alice.api.status_reblogged_by(s["id"])) == []
    with pytest.raises(MastodonNotFoundError):
        bob.api.status(b1["id"])
    wait_for(lambda: home_ids(carol), lambda got: b1["id"] not in got,
             what="the undone boost to leave carol's home timeline")


def test_favourite_unfavourite(alice, bob, carol):
    s = alice.api.status_post("fav me")
    own = alice.api.status_favourite(s["id"])     # one's own: counted, not notified
    assert own["favourited"] is True and own["favourites_count"] == 1
    f1 = bob.api.status_favourite(s["id"])
    f2 = bob.api.status_favourite(s["id"])        # idempotent
    assert f1["favourited"] is True and f2["favourited"] is True
    assert f2["favourites_count"] == 2
    carol.api.status_favourite(s["id"])
    assert set(ids(alice.api.status_favourited_by(s["id"]))) == {alice.id, bob.id, carol.id}
    notes = wait_notifications(alice, 2, types=["favourite"])
    assert sorted(n["account"]["id"] for n in notes) == sorted([bob.id, carol.id])

    other = carol.api.status_post("also fav")
    bob.api.status_favourite(other["id"])
    favs = bob.api.favourites()
    assert ids(favs) == [other["id"], s["id"]]        # most recently favourited first
    page = bob.api.favourites(limit=1)
    assert ids(page) == [other["id"]]
    assert ids(bob.api.fetch_next(page)) == [s["id"]]

    u = bob.api.status_unfavourite(s["id"])
    assert u["favourited"] is False
    assert u["favourites_count"] == 2                   # alice's and carol's remain
    assert bob.api.status_unfavourite(s["id"])["favourited"] is False   # idempotent
    assert ids(bob.api.favourites()) == [other["id"]]
    assert set(ids(alice.api.status_favourited_by(s["id"]))) == {alice.id, carol.id}


# --------------------------------------------------------------------------- threads

def test_context_ordering(alice, bob, carol, anon):
    root = alice.api.status_post("root")
    r1 = bob.api.status_post("r1", in_reply_to_id=root["id"])
    r2 = alice.api.status_post("r2", in_reply_to_id=r1["id"])
    r3 = carol.api.status_post("r3", in_reply_to_id=root["id"])
    r4 = bob.api.status_post("r4", in_reply_to_id=r2["id"])

    # descendants: depth-first, siblings by id
    for api in (alice.api, carol.api, anon):
        ctx = api.status_context(root["id"])
        assert ids(ctx["ancestors"]) == []
        assert ids(ctx["descendants"]) == [r1["id"], r2["id"], r4["id"], r3["id"]]
    ctx = bob.api.status_context(r4["id"])
    assert ids(ctx["ancestors"]) == [root["id"], r1["id"], r2["id"]]
    assert ids(ctx["descendants"]) == []
    ctx = carol.api.status_context(r1["id"])
    assert ids(ctx["ancestors"]) == [root["id"]]
    assert ids(ctx["descendants"]) == [r2["id"], r4["id"]]

    assert alice.api.status(root["id"])["replies_count"] == 2
    assert alice.api.status(r2["id"])["replies_count"] == 1
    assert r4["in_reply_to_account_id"] == alice.id

    # status_reply() mentions the author of the status replied to (and its mentions)
    reply = carol.api.status_reply(r4, "me too")
    assert set(m["id"] for m in reply["mentions"]) == {bob.id}
    ctx = alice.api.status_context(root["id"])
    assert ids(ctx["descendants"]) == [r1["id"], r2["id"], r4["id"], reply["id"], r3["id"]]

    with pytest.raises(MastodonNotFoundError):
        alice.api.status_context("999999999999999999")


# --------------------------------------------------------------------------- timelines

def test_home_timeline_pagination_45_posts(alice, bob):
    """fetch_next walks 45 posts in pages of 20: no duplicates, no gaps; fetch_previous,
    min_id, since_id and max_id behave like Mastodon's."""
    follow(alice, bob)
    posted = [bob.api.status_post(f"post {i}")["id"] for i in range(45)]
    newest_first = list(reversed(posted))
    wait_for(lambda: all_home_ids(alice), lambda got: set(posted) <= set(got),
             what="all 45 posts in alice's home timeline")

    first = alice.api.timeline_home(limit=20)
    pages = walk(alice.api, first)
    assert [len(p) for p in pages] == [20, 20, 5]
    got = [i for p in pages for i in ids(p)]
    assert got == newest_first
    assert all(s["account"]["id"] == bob.id for p in pages for s in p)

    # default page size is 20, fetch_remaining gets everything
    assert len(alice.api.timeline_home()) == 20
    assert ids(alice.api.fetch_remaining(alice.api.timeline_home(limit=40))) == newest_first

    # explicit cursors
    assert ids(alice.api.timeline_home(max_id=posted[10], limit=3)) == [posted[9], posted[8], posted[7]]
    assert ids(alice.api.timeline_home(since_id=posted[10], limit=3)) == [posted[44], posted[43], posted[42]]
    assert ids(alice.api.timeline_home(min_id=posted[10], limit=3)) == [posted[13], posted[12], posted[11]]
    assert ids(alice.api.timeline_home(min_id=posted[10], max_id=posted[13])) == [posted[12], posted[11]]

    # limit is clamped to 40
    assert len(alice.api.timeline_home(limit=100)) == 40
    # datetimes: Mastodon.py turns them into snowflake cursors ((epoch_s << 16) * 1000),
    # which only works if ids are Mastodon-style time-based snowflakes
    now = datetime.datetime.now(datetime.timezone.utc)
    hour = datetime.timedelta(hours=1)
    assert ids(alice.api.timeline_home(max_id=now + hour, limit=3)) == newest_first[:3]
    assert ids(alice.api.timeline_home(min_id=now - hour, limit=3)) == [posted[2], posted[1], posted[0]]
    assert list(alice.api.timeline_home(max_id=now - hour)) == []

    # walking backwards from the oldest page gets back to the top, page by page
    back = walk(alice.api, pages[-1], direction="previous")
    got_back = [i for p in back[1:] for i in ids(p)]
    assert sorted(got_back, key=int) == sorted(posted[5:], key=int)
    assert len(got_back) == len(set(got_back))

    # nothing newer than the first page yet; then two new posts show up via fetch_previous
    newer = alice.api.fetch_previous(first)
    assert newer is None or len(newer) == 0
    fresh = [bob.api.status_post(f"fresh {i}")["id"] for i in range(2)]
    wait_home_has(alice, *fresh)
    assert ids(alice.api.fetch_previous(first)) == list(reversed(fresh))


def test_home_timeline_contents(alice, bob, carol):
    """Own posts + followees' posts and boosts; followees' replies to strangers are
    left out (Mastodon); showing_reblogs=False hides boosts; unfollow removes posts."""
    follow(alice, bob)
    follow(alice, carol, reblogs=False)
    own = alice.api.status_post("mine")
    other = carol.api.status_post("carol speaking")
    bob_boost = bob.api.status_reblog(other["id"])
    carol_boost = carol.api.status_reblog(own["id"])        # hidden: reblogs off for carol
    s = sentinel(bob, alice)
    home = home_ids(alice)
    assert own["id"] in home
    assert other["id"] in home
    assert carol_boost["id"] not in home
    # bob's boost of carol's post: the original is already in the feed, so Mastodon
    # may or may not add the wrapper; if it is there it must wrap carol's post
    for x in alice.api.timeline_home(limit=40):
        if x["id"] == bob_boost["id"]:
            assert x["reblog"]["id"] == other["id"]
    assert s["id"] in home

    # unfollowing removes the followee's posts from home
    alice.api.account_unfollow(bob.id)
    wait_for(lambda: home_ids(alice), lambda got: s["id"] not in got,
             what="bob's posts to leave alice's home after unfollow")


def test_home_timeline_skips_replies_to_strangers(make_user, alice, bob):
    stranger = make_user()
    follow(alice, bob)
    theirs = stranger.api.status_post("a stranger's post")
    to_stranger = bob.api.status_post(f"@{stranger.username} hi", in_reply_to_id=theirs["id"])
    to_self = bob.api.status_post("thread 1/2")
    self_reply = bob.api.status_post("thread 2/2", in_reply_to_id=to_self["id"])
    mine = alice.api.status_post("alice's own")
    to_alice = bob.api.status_post(f"@{alice.username} yes", in_reply_to_id=mine["id"])
    s = sentinel(bob, alice)
    home = home_ids(alice)
    assert {to_self["id"], self_reply["id"], to_alice["id"], s["id"]} <= set(home)
    assert to_stranger["id"] not in home


def test_public_timeline(alice, bob, anon):
    follow(bob, alice)
    fence = alice.api.status_post("fence")
    pub = alice.api.status_post("public post")
    alice.api.status_post("unlisted post", visibility="unlisted")
    alice.api.status_post("private post", visibility="private")
    boost = bob.api.status_reblog(pub["id"])
    self_reply = alice.api.status_post("self reply", in_reply_to_id=pub["id"])
    reply_other = bob.api.status_post(f"@{alice.username} reply", in_reply_to_id=pub["id"])
    last = alice.api.status_post("last public")

    want = [last["id"], self_reply["id"], pub["id"]]
    for api in (anon, bob.api):
        for kw in ({}, {"local": True}):
            page = api.timeline_public(since_id=fence["id"], limit=40, **kw)
            got = [i for i in ids(page) if int(i) <= int(last["id"])]
            assert got == want, (kw, [text_of(x["content"]) for x in page])
            assert all(x["reblog"] is None for x in page)
            assert boost["id"] not in ids(page) and reply_other["id"] not in ids(page)
        assert ids(api.timeline_local(since_id=fence["id"], limit=40))[-3:] == want

    # paging down the public timeline with a small limit reaches the fence without gaps
    page = anon.timeline_public(limit=2)
    collected = []
    while page and all(int(i) > int(fence["id"]) for i in ids(page)):
        collected += ids(page)
        page = anon.fetch_next(page)
    collected += [i for i in ids(page or []) if int(i) > int(fence["id"])]
    assert [i for i in collected if int(i) <= int(last["id"])] == want


def test_hashtag_timeline_pagination(alice, bob, anon):
    tag = f"Walk{uuid.uuid4().hex[:8]}"
    posted = []
    for i in range(25):
        author = alice if i % 2 else bob
        # vary the case: tags match case-insensitively
        t = tag if i % 3 else tag.upper()
        posted.append(author.api.status_post(f"step {i} #{t}")["id"])
    alice.api.status_post(f"unlisted #{tag}", visibility="unlisted")
    alice.api.status_post(f"private #{tag}", visibility="private")
    newest_first = list(reversed(posted))

    for api in (anon, bob.api):
        for name in (tag, tag.lower()):
            pages = walk(api, api.timeline_hashtag(name, limit=10))
            assert [len(p) for p in pages] == [10, 10, 5]
            assert [i for p in pages for i in ids(p)] == newest_first
    assert ids(anon.timeline_hashtag(tag, local=True, limit=40)) == newest_first
    assert ids(anon.timeline_hashtag(tag, max_id=posted[3])) == [posted[2], posted[1], posted[0]]
    assert list(anon.timeline_hashtag(f"nothing{uuid.uuid4().hex[:10]}")) == []


def test_unicode_hashtags(alice, bob):
    suffix = uuid.uuid4().hex[:6]
    s = alice.api.status_post(f"Grüße #Über{suffix} und #café{suffix}")
    assert [t["name"] for t in s["tags"]] == [f"über{suffix}", f"café{suffix}"]
    for name in (f"über{suffix}", f"ÜBER{suffix}", f"café{suffix}"):
        assert ids(bob.api.timeline_hashtag(name)) == [s["id"]], name
    assert f"über{suffix}" in [t["name"] for t in bob.api.search_v2(f"#Über{suffix}")["hashtags"]]


def test_account_statuses(alice, bob, anon):
    follow(bob, alice)
    a = alice.api.status_post("a")
    b = alice.api.status_post("b", in_reply_to_id=a["id"])
    other = bob.api.status_post("bob's")
    c = alice.api.status_post(f"@{bob.username} reply to bob", in_reply_to_id=other["id"])
    boost = alice.api.status_reblog(other["id"])
    d = alice.api.status_post("last")

    everything = [d["id"], boost["id"], c["id"], b["id"], a["id"]]
    # Read-your-writes holds for the writer's token; other readers of the
    # cluster may be served by a read replica a few milliseconds behind.
    wait_for(lambda: ids(anon.account_statuses(alice.id)), lambda got: got == everything,
             "alice's statuses as an anonymous reader sees them")
    # Mastodon's exclude_replies keeps self-replies (threads)
    assert ids(anon.account_statuses(alice.id, exclude_replies=True)) == [d["id"], boost["id"], b["id"], a["id"]]
    assert ids(anon.account_statuses(alice.id, exclude_reblogs=True)) == [d["id"], c["id"], b["id"], a["id"]]
    pages = walk(bob.api, bob.api.account_statuses(alice.id, limit=2))
    assert [i for p in pages for i in ids(p)] == everything
    assert [len(p) for p in pages] == [2, 2, 1]
    assert alice.api.account(alice.id)["statuses_count"] == 5
    assert list(anon.account_statuses(alice.id, only_media=True)) == []


def test_account_statuses_tagged(alice, anon):
    tag = f"acct{uuid.uuid4().hex[:6]}"
    alice.api.status_post("untagged")
    d = alice.api.status_post(f"tagged #{tag}")
    alice.api.status_post(f"other #x{tag}")
    assert ids(anon.account_statuses(alice.id, tagged=tag)) == [d["id"]]
    assert ids(anon.account_statuses(alice.id, tagged=tag.upper())) == [d["id"]]


# --------------------------------------------------------------------------- notifications

def test_notifications_filters_pagination_dismiss_clear(alice, bob, carol):
    s = alice.api.status_post("notify me")
    alice.api.status_favourite(s["id"])                       # own: no notification
    alice.api.status_post(f"@{alice.username} self mention")  # own: no notification
    follow(bob, alice)
    bob.api.status_favourite(s["id"])
    bob.api.status_reblog(s["id"])
    mention = bob.api.status_post(f"@{alice.username} hey")
    follow(carol, alice)

    notes = wait_notifications(alice, 5)
    assert sorted((n["type"], n["account"]["id"]) for n in notes) == sorted([
        ("follow", bob.id), ("favourite", bob.id), ("reblog", bob.id), ("mention", bob.id), ("follow", carol.id)])
    assert ids(notes) == sorted(ids(notes), key=int, reverse=True)      # newest first
    types = [n["type"] for n in notes]
    (m,) = [n for n in notes if n["type"] == "mention"]
    assert m["status"]["id"] == mention["id"]
    assert m["status"]["mentions"][0]["id"] == alice.id
    (r,) = [n for n in notes if n["type"] == "reblog"]

    def only(*keep):
        return [t for t in types if t in keep]

    assert [n["type"] for n in alice.api.notifications(types=["mention"])] == ["mention"]
    assert [n["type"] for n in alice.api.notifications(mentions_only=True)] == ["mention"]
    assert [n["type"] for n in alice.api.notifications(types=["follow", "favourite"])] == only("follow", "favourite")
    assert [n["type"] for n in alice.api.notifications(exclude_types=["follow", "favourite"])] == only("mention", "reblog")
    assert [n["type"] for n in alice.api.notifications(account_id=carol.id)] == ["follow"]

    # one notification by id
    one = alice.api.notifications(id=r["id"])
    assert one["id"] == r["id"] and one["type"] == "reblog"
    assert one["status"]["id"] == s["id"]

    # Link-header pagination, both directions
    pages = walk(alice.api, alice.api.notifications(limit=2))
    assert [len(p) for p in pages] == [2, 2, 1]
    assert [i for p in pages for i in ids(p)] == ids(notes)
    assert ids(alice.api.notifications(max_id=notes[1]["id"])) == ids(notes[2:])
    assert ids(alice.api.notifications(min_id=notes[3]["id"], limit=2)) == ids(notes[1:3])
    assert ids(alice.api.notifications(since_id=notes[3]["id"], limit=2)) == ids(notes[0:2])

    # dismiss one, then clear all
    alice.api.notifications_dismiss(notes[0]["id"])
    assert ids(alice.api.notifications()) == ids(notes[1:])
    with pytest.raises(MastodonNotFoundError):
        alice.api.notifications(id=notes[0]["id"])
    alice.api.notifications_clear()
    assert list(alice.api.notifications()) == []
    # bob's notifications are his own
    assert all(n["account"]["id"] != bob.id for n in bob.api.notifications())


# --------------------------------------------------------------------------- locked accounts, blocks, mutes

def test_locked_account_follow_requests(alice, bob, carol, anon):
    carol.api.account_update_credentials(locked=True)

    r = follow(alice, carol)
    assert r["following"] is False and r["requested"] is True
    r = follow(bob, carol)
    assert r["requested"] is True
    reqs = carol.api.follow_requests()
    assert set(ids(reqs)) == {alice.id, bob.id}
    notes = wait_notifications(carol, 2, types=["follow_request"])
    assert {n["account"]["id"] for n in notes} == {alice.id, bob.id}
    assert rel(carol, alice)["requested_by"] is True

    r = carol.api.follow_request_authorize(alice.id)
    assert r["id"] == alice.id and r["followed_by"] is True
    r = carol.api.follow_request_reject(bob.id)
    assert r["id"] == bob.id and r["followed_by"] is False
    assert list(carol.api.follow_requests()) == []

    r = rel(alice, carol)
    assert r["following"] is True and r["requested"] is False
    r = rel(bob, carol)
    assert r["following"] is False and r["requested"] is False
    assert ids(carol.api.account_followers(carol.id)) == [alice.id]

    # accepted follower gets the followers-only posts at home; others do not see them
    priv = carol.api.status_post("for my approved followers", visibility="private")
    wait_home_has(alice, priv["id"])
    with pytest.raises(MastodonNotFoundError):
        bob.api.status(priv["id"])
    with pytest.raises(MastodonNotFoundError):
        anon.status(priv["id"])

    # an authorized follower can unfollow like any other
    assert alice.api.account_unfollow(carol.id)["following"] is False


def test_follow_requests_count(alice, bob, carol):
    carol.api.account_update_credentials(locked=True)
    follow(alice, carol)
    follow(bob, carol)
    assert carol.api.account_verify_credentials()["source"]["follow_requests_count"] == 2
    carol.api.follow_request_authorize(alice.id)
    assert carol.api.account_verify_credentials()["source"]["follow_requests_count"] == 1


def test_block(alice, bob, carol):
    follow(bob, carol)
    follow(carol, bob)
    r = carol.api.account_block(bob.id)
    assert r["blocking"] is True
    # a block severs follows both ways
    assert r["following"] is False and r["followed_by"] is False
    r = rel(bob, carol)
    assert r["following"] is False and r["blocked_by"] is True
    assert ids(carol.api.blocks()) == [bob.id]

    with pytest.raises(MastodonAPIError) as exc:
        bob.api.account_follow(carol.id)
    assert api_status(exc) == 403
    with pytest.raises(MastodonAPIError) as exc:
        carol.api.account_follow(bob.id)
    assert api_status(exc) == 403

    # the blocked account can no longer interact with the blocker's posts
    s = carol.api.status_post("not for bob")
    with pytest.raises(MastodonAPIError) as exc:
        bob.api.status_favourite(s["id"])
    assert api_status(exc) in (403, 404)

    r = carol.api.account_unblock(bob.id)
    assert r["blocking"] is False
    assert list(carol.api.blocks()) == []
    assert follow(bob, carol)["following"] is True


def test_mute(alice, bob, carol):
    follow(alice, bob)
    follow(alice, carol)
    r = alice.api.account_mute(bob.id)
    assert r["muting"] is True and r["muting_notifications"] is True
    assert r["following"] is True                # muting keeps the follow
    assert ids(alice.api.mutes()) == [bob.id]

    muted = bob.api.status_post("you won't see this")
    s = sentinel(carol, alice)
    home = home_ids(alice)
    assert s["id"] in home and muted["id"] not in home

    r = alice.api.account_unmute(bob.id)
    assert r["muting"] is False
    assert list(alice.api.mutes()) == []
    after = bob.api.status_post("back again")
    wait_home_has(alice, after["id"])


# --------------------------------------------------------------------------- search

def test_search(alice, bob, base_url, host):
    tag = f"Find{uuid.uuid4().hex[:8]}"
    s = bob.api.status_post(f"look for #{tag}")

    for q in (f"@{bob.username}", bob.username, f"{bob.username}@{host}", f"@{bob.username}@{host}"):
        found = alice.api.search_v2(q)
        assert bob.id in ids(found["accounts"]), q
        assert isinstance(found["statuses"], list) and isinstance(found["hashtags"], list)
    # search() picks /api/v2/search for a 4.x server
    assert bob.id in ids(alice.api.search(f"@{bob.username}", result_type="accounts")["accounts"])
    # prefix and case-insensitive
    assert bob.id in ids(alice.api.search_v2(bob.username[:8].upper(), result_type="accounts")["accounts"])

    found = alice.api.search_v2(f"#{tag}")
    names = [t["name"] for t in found["hashtags"]]
    assert tag.lower() in names
    (t,) = [t for t in found["hashtags"] if t["name"] == tag.lower()]
    assert t["url"] == f"{base_url}/tags/{tag.lower()}"
    assert isinstance(t["history"], list)
    found = alice.api.search_v2(tag, result_type="hashtags")
    assert tag.lower() in [t["name"] for t in found["hashtags"]]
    assert found["accounts"] == [] and found["statuses"] == []

    # a status URL resolves to the status
    found = alice.api.search_v2(s["url"], result_type="statuses")
    assert ids(found["statuses"]) == [s["id"]]

    # account_search (GET /api/v1/accounts/search)
    assert bob.id in ids(alice.api.account_search(bob.username))
    assert bob.id in ids(alice.api.account_search(bob.username[:8], limit=5))
    assert list(alice.api.account_search(f"zz{uuid.uuid4().hex}")) == []

    nothing = alice.api.search_v2(f"zz{uuid.uuid4().hex}")
    assert (nothing["accounts"], nothing["statuses"], nothing["hashtags"]) == ([], [], [])
    # no federation: remote names resolve to nothing, without an error
    remote = alice.api.search_v2("@someone@remote.example")
    assert remote["accounts"] == []
    with pytest.raises(MastodonNotFoundError):
        alice.api.account_lookup("someone@remote.example")


# --------------------------------------------------------------------------- delete and redraft

def test_delete_and_redraft(alice, bob, carol):
    follow(bob, alice)
    parent = bob.api.status_post("parent")
    text = f"@{bob.username} to be #redrafted & fixed"
    s = alice.api.status_post(text, in_reply_to_id=parent["id"], visibility="unlisted", spoiler_text="cw")
    boost = carol.api.status_reblog(s["id"])
    wait_home_has(bob, s["id"])

    deleted = alice.api.status_delete(s["id"])
    assert deleted["id"] == s["id"]
    assert deleted["text"] == text                       # source text for redraft
    assert deleted["spoiler_text"] == "cw"
    assert deleted["visibility"] == "unlisted"
    assert deleted["in_reply_to_id"] == parent["id"]

    for api in (alice.api, bob.api):
        with pytest.raises(MastodonNotFoundError):
            api.status(s["id"])
    with pytest.raises(MastodonNotFoundError):
        carol.api.status(boost["id"])                    # its boosts go with it
    with pytest.raises(MastodonNotFoundError):
        alice.api.status_delete(s["id"])
    wait_for(lambda: home_ids(bob), lambda got: s["id"] not in got,
             what="the deleted status to leave bob's home timeline")
    assert ids(bob.api.status_context(parent["id"])["descendants"]) == []
    assert bob.api.status(parent["id"])["replies_count"] == 0

    # redraft, like Mastodon.py's docs suggest
    again = alice.api.status_post(deleted["text"], in_reply_to_id=deleted["in_reply_to_id"],
                                  visibility=deleted["visibility"], spoiler_text=deleted["spoiler_text"])
    assert text_of(again["content"]) == text
    assert again["in_reply_to_id"] == parent["id"]

    # nobody deletes someone else's status
    with pytest.raises(MastodonAPIError) as exc:
        bob.api.status_delete(again["id"])
    assert api_status(exc) in (403, 404)
    assert alice.api.status(again["id"])["id"] == again["id"]


def test_idempotency_key_after_delete(alice):
    key = uuid.uuid4().hex
    s = alice.api.status_post("once", idempotency_key=key)
    alice.api.status_delete(s["id"])
    with pytest.raises(MastodonNotFoundError):
        alice.api.status_post("once", idempotency_key=key)


# --------------------------------------------------------------------------- markers, preferences

def test_markers_and_preferences(alice, bob):
    follow(bob, alice)
    s = alice.api.status_post("mark me")
    n = wait_notifications(alice, 1)[0]

    assert dict(alice.api.markers_get(["home", "notifications"])) == {}
    assert alice.api.notifications_unread_count()["count"] == 1
    res = alice.api.markers_set(["home", "notifications"], [s["id"], n["id"]])
    assert res["home"]["last_read_id"] == s["id"]
    assert res["notifications"]["last_read_id"] == n["id"]
    got = alice.api.markers_get(["home", "notifications"])
    assert got["home"]["last_read_id"] == s["id"]
    assert got["notifications"]["last_read_id"] == n["id"]
    assert isinstance(got["home"]["updated_at"], datetime.datetime)
    assert isinstance(got["home"]["version"], int)
    # unread notifications are those above the notifications marker
    assert alice.api.notifications_unread_count()["count"] == 0
    only_home = alice.api.markers_get("home")
    assert set(only_home) == {"home"}
    # markers are per user
    assert "home" not in bob.api.markers_get("home")

    prefs = alice.api.preferences()
    assert prefs["posting:default:visibility"] == "public"
    assert prefs["posting:default:sensitive"] is False
    assert "reading:expand:spoilers" in prefs
    alice.api.account_update_credentials(default_privacy="unlisted")
    assert alice.api.preferences()["posting:default:visibility"] == "unlisted"
    # and the default applies when visibility is omitted
    assert alice.api.status_post("default privacy")["visibility"] == "unlisted"


# --------------------------------------------------------------------------- raw Link headers

def test_link_header_shape(base_url, alice, bob):
    """What the clients' Link parsers need (Mastodon.py regexes, toot's anchored
    `<...>; rel="next"` match): absolute URLs, next first, max_id=/min_id=, filters
    carried over, no Link on an empty page."""
    tag = f"Link{uuid.uuid4().hex[:8]}"
    posted = [alice.api.status_post(f"{i} #{tag}")["id"] for i in range(3)]
    r = requests.get(f"{base_url}/api/v1/timelines/tag/{tag}", params={"limit": 2, "local": "true"},
                     timeout=TIMEOUT)
    assert r.status_code == 200
    link = r.headers["Link"]
    assert link.startswith(f'<{base_url}/api/v1/timelines/tag/{tag.lower()}?') or \
        link.startswith(f'<{base_url}/api/v1/timelines/tag/{tag}?'), link
    assert r.links["next"]["url"].startswith(base_url) and r.links["prev"]["url"].startswith(base_url)
    assert link.index('rel="next"') < link.index('rel="prev"')
    nxt, prv = r.links["next"]["url"], r.links["prev"]["url"]
    assert f"max_id={posted[1]}" in nxt and "limit=2" in nxt and "local=true" in nxt
    assert f"min_id={posted[2]}" in prv
    r2 = requests.get(nxt, timeout=TIMEOUT)
    assert [x["id"] for x in r2.json()] == [posted[0]]
    r3 = requests.get(r2.links["next"]["url"], timeout=TIMEOUT)
    assert r3.json() == [] and "Link" not in r3.headers

    h = {"Authorization": f"Bearer {bob.access_token}"}
    r = requests.get(f"{base_url}/api/v1/notifications", params={"types[]": ["mention", "follow"]},
                     headers=h, timeout=TIMEOUT)
    assert r.json() == [] and "Link" not in r.headers
    follow(alice, bob)
    wait_notifications(bob, 1)
    r = requests.get(f"{base_url}/api/v1/notifications", params={"types[]": ["mention", "follow"]},
                     headers=h, timeout=TIMEOUT)
    nxt = r.links["next"]["url"]
    assert "types%5B%5D=mention" in nxt or "types[]=mention" in nxt, nxt
    assert "types%5B%5D=follow" in nxt or "types[]=follow" in nxt, nxt
