"""toot against a live Starling: the social core.

The `toot` CLI for what a person types -- post, reply, boost, favourite, follow,
timelines, notifications, thread, search, delete -- plus toot's own Python API
(toot.api) for its Link-following timeline generators and entity parsing.

CLI commands run in-process through click's CliRunner (`invoke_toot`: the same
command code as the `toot` executable, isolated config/cache dirs like test_toot.py),
because ~70 subprocesses would cost ~40 s of interpreter start-up; logins and one
smoke test still go through the real executable (`run_toot`).  Waiting for the
asynchronous fan-out and notifications is done through Mastodon.py (cheap) before
asserting with toot.
"""

import json
import re
import uuid

import pytest

from helpers import invoke_toot, run_toot, text_of, unique_username, wait_for

# toot's CLI prints every status of a page as "ID <id>  Visibility: ...".
STATUS_ID_LINE = re.compile(r"^ID (\d+)\s", re.M)
# Tall terminal: toot's pager prints all pages as one screen (no keypress needed).
TALL = {"LINES": "100000", "COLUMNS": "120"}


def check(proc):
    assert proc.returncode == 0, f"rc={proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    return proc


class Toot:
    """Several users logged in to one toot config; run commands as any of them."""

    def __init__(self, home, base_url, host):
        self.home, self.base_url, self.host = home, base_url, host

    def login(self, user):
        check(invoke_toot(self.home, "login_cli", "--instance", self.base_url,
                          "--email", user.email, "--password", user.password))

    def run(self, user, *args, env=None):
        return invoke_toot(self.home, "--as", f"{user.username}@{self.host}", *args, env=env)

    def __call__(self, user, *args, env=None):
        return check(self.run(user, *args, env=env)).stdout

    def json(self, user, *args):
        return json.loads(self(user, *args, "--json"))


@pytest.fixture
def toot(tmp_path, base_url, host):
    home = tmp_path / "home"
    (home / ".config").mkdir(parents=True)
    return Toot(home, base_url, host)


@pytest.fixture
def alice(make_user):
    return make_user(unique_username("alice"))


@pytest.fixture
def bob(make_user):
    return make_user(unique_username("bob"))


@pytest.fixture
def carol(make_user):
    return make_user(unique_username("carol"))


def ids(items):
    return [x["id"] for x in items]


def wait_home_has(user, *status_ids):
    want = set(status_ids)
    wait_for(lambda: ids(user.api.timeline_home(limit=40)), lambda got: want <= set(got),
             what=f"{sorted(want)} in @{user.username}'s home timeline")


def wait_notification_types(user, types):
    return wait_for(lambda: user.api.notifications(), lambda ns: set(types) <= {n["type"] for n in ns},
                    what=f"notifications {sorted(types)} for @{user.username}")


def toot_app_user(base_url, host, app, user):
    """toot's own App/User tuples for a Mastodon.py-registered user (toot.api calls)."""
    from toot import App, User
    client_id, client_secret = app
    return App(host, base_url, client_id, client_secret), User(host, user.username, user.access_token)


# --------------------------------------------------------------------------- the core loop through the CLI

def test_toot_cli_social_loop(toot, alice, bob, host):
    toot.login(alice)
    toot.login(bob)

    # follow, by @name and by name@<local domain> (toot searches, then POSTs .../follow)
    rel = toot.json(alice, "follow", f"@{bob.username}")
    assert rel["id"] == bob.id and rel["following"] is True
    rel = toot.json(bob, "follow", f"{alice.username}@{host}")
    assert rel["id"] == alice.id and rel["following"] is True and rel["followed_by"] is True
    assert "You are now following" in toot(alice, "follow", f"@{bob.username}")   # idempotent
    assert ids(json.loads(toot(alice, "following", "--json"))) == [bob.id]
    assert ids(json.loads(toot(alice, "followers", "--json"))) == [bob.id]

    # post (JSON body + Idempotency-Key), reply, reply-to-last
    tag = f"Toot{uuid.uuid4().hex[:8]}"
    post = toot.json(alice, "post", f"Hello from toot #{tag}")
    assert text_of(post["content"]) == f"Hello from toot #{tag}"
    assert [t["name"] for t in post["tags"]] == [tag.lower()]
    assert post["visibility"] == "public"
    out = toot(alice, "post", "plain output")
    m = re.search(rf"Toot posted: {re.escape(toot.base_url)}/@{alice.username}/(\d+)", out)
    assert m, out
    plain_id = m.group(1)

    wait_home_has(bob, post["id"])
    reply = toot.json(bob, "post", f"@{alice.username} nice one", "--reply-to", post["id"])
    assert reply["in_reply_to_id"] == post["id"]
    assert reply["in_reply_to_account_id"] == alice.id
    answer = toot.json(alice, "post", f"@{bob.username} thanks", "--reply-to", reply["id"],
                       "--visibility", "unlisted")
    assert answer["in_reply_to_id"] == reply["id"] and answer["visibility"] == "unlisted"
    more = toot.json(alice, "post", "and one more thing", "--reply-last")
    assert more["in_reply_to_id"] == answer["id"]

    # boost and favourite
    boost = toot.json(bob, "reblog", post["id"])
    assert boost["reblog"]["id"] == post["id"] and boost["account"]["id"] == bob.id
    fav = toot.json(bob, "favourite", post["id"])
    assert fav["id"] == post["id"] and fav["favourited"] is True
    assert "Status favourited" in toot(alice, "favourite", reply["id"])
    assert [a["id"] for a in json.loads(toot(alice, "reblogged-by", post["id"], "--json"))] == [bob.id]
    assert bob.username in toot(alice, "reblogged-by", post["id"])

    # home timeline, JSON and rendered
    wait_home_has(alice, reply["id"])
    home = toot.json(alice, "timelines", "home")
    assert {post["id"], reply["id"], answer["id"], more["id"]} <= set(ids(home))
    out = toot(alice, "timelines", "home", "--no-pager", "--no-clear", "--limit", "40")
    shown = STATUS_ID_LINE.findall(out)
    assert {post["id"], reply["id"], answer["id"], more["id"], plain_id} <= set(shown), out
    assert shown == sorted(set(shown), key=int, reverse=True), out
    assert "nice one" in out and f"@{bob.username}" in out

    # public and tag timelines
    public = toot.json(alice, "timelines", "public", "--local", "--limit", "40")
    assert post["id"] in ids(public)
    assert boost["id"] not in ids(public) and answer["id"] not in ids(public)
    assert ids(toot.json(bob, "timelines", "tag", tag)) == [post["id"]]
    assert ids(toot.json(bob, "timelines", "tag", tag.lower(), "--local")) == [post["id"]]
    acct_tl = toot.json(bob, "timelines", "account", f"@{alice.username}")
    assert ids(acct_tl) == [more["id"], answer["id"], plain_id, post["id"]]

    # notifications
    wait_notification_types(alice, {"follow", "mention", "reblog", "favourite"})
    notes = toot.json(alice, "notifications")
    assert {n["type"] for n in notes} == {"follow", "mention", "reblog", "favourite"}
    assert all(n["account"]["id"] == bob.id for n in notes)
    mentions = toot.json(alice, "notifications", "--type", "mention")
    assert [n["status"]["id"] for n in mentions] == [reply["id"]]
    rest = toot.json(alice, "notifications", "--exclude-type", "mention", "--exclude-type", "follow")
    assert sorted(n["type"] for n in rest) == ["favourite", "reblog"]
    out = toot(alice, "notifications")                   # toot parses Notification entities
    assert f"@{bob.username}" in out and "nice one" in out, out
    wait_notification_types(bob, {"follow", "mention", "favourite"})
    assert {n["type"] for n in toot.json(bob, "notifications")} == {"follow", "mention", "favourite"}

    # thread
    ctx = toot.json(bob, "thread", post["id"])
    assert ids(ctx["ancestors"]) == []
    assert ids(ctx["descendants"]) == [reply["id"], answer["id"], more["id"]]
    ctx = toot.json(bob, "thread", more["id"])
    assert ids(ctx["ancestors"]) == [post["id"], reply["id"], answer["id"]]
    out = toot(bob, "thread", answer["id"])
    assert STATUS_ID_LINE.findall(out) == [post["id"], reply["id"], answer["id"], more["id"]], out
    assert toot.json(bob, "status", post["id"])["reblogs_count"] == 1

    # search
    found = toot.json(alice, "search", f"@{bob.username}")
    assert bob.id in ids(found["accounts"])
    found = toot.json(alice, "search", f"#{tag}", "--type", "hashtags")
    assert tag.lower() in [t["name"] for t in found["hashtags"]]
    out = toot(alice, "search", bob.username)
    assert bob.username in out
    who = toot.json(alice, "whois", f"@{bob.username}")
    assert who["id"] == bob.id

    # undo, then delete (the JSON carries the source text for redraft)
    assert toot.json(bob, "unfavourite", post["id"])["favourited"] is False
    assert toot.json(bob, "unreblog", post["id"])["reblogged"] is False
    gone = toot.json(alice, "delete", more["id"])
    assert gone["id"] == more["id"] and gone["text"] == "and one more thing"
    assert "Status deleted" in toot(alice, "delete", answer["id"])
    ctx = toot.json(bob, "thread", post["id"])
    assert ids(ctx["descendants"]) == [reply["id"]]
    proc = toot.run(alice, "status", more["id"])
    assert proc.returncode != 0

    # unfollow
    rel = toot.json(alice, "unfollow", f"@{bob.username}")
    assert rel["following"] is False
    assert toot.json(alice, "following") == []


def test_toot_cli_post_options(toot, alice, bob, carol):
    toot.login(alice)
    bob.api.account_follow(alice.id)
    s = toot.json(alice, "post", "behind a warning", "--spoiler-text", "cw: spoilers", "--sensitive",
                  "--visibility", "private", "--language", "DE")
    assert (s["spoiler_text"], s["sensitive"], s["visibility"], s["language"]) == ("cw: spoilers", True, "private", "de")
    assert text_of(s["content"]) == "behind a warning"
    wait_home_has(bob, s["id"])
    assert carol.api.account_statuses(alice.id) == []         # followers-only

    # status text piped on stdin
    proc = invoke_toot(toot.home, "--as", f"{alice.username}@{toot.host}", "post", "--json",
                       input="line one\nline two & more\n")
    piped = json.loads(check(proc).stdout)
    assert "line one" in piped["content"] and "line two &amp; more" in piped["content"]
    assert "<br" in piped["content"] or piped["content"].count("<p>") == 2, piped["content"]

    dm = toot.json(alice, "post", f"@{bob.username} psst", "--visibility", "direct")
    assert dm["visibility"] == "direct" and [m["id"] for m in dm["mentions"]] == [bob.id]
    wait_notification_types(bob, {"mention"})
    wait_home_has(bob, dm["id"])
    assert dm["id"] not in ids(carol.api.account_statuses(alice.id))


def test_toot_executable_post_and_read(toot, alice, bob):
    """The installed `toot` executable itself (subprocesses) for the basic loop; bob
    acts through Mastodon.py."""
    run = lambda *args: check(run_toot(toot.home, *args)).stdout
    run("login_cli", "--instance", toot.base_url, "--email", alice.email, "--password", alice.password)
    bob.api.account_follow(alice.id)
    post = json.loads(run("post", "from the executable", "--json"))
    wait_home_has(bob, post["id"])
    bob.api.status_favourite(post["id"])
    wait_notification_types(alice, {"follow", "favourite"})
    notes = json.loads(run("notifications", "--json"))
    assert {n["type"] for n in notes} == {"follow", "favourite"}
    assert all(n["account"]["id"] == bob.id for n in notes)


# --------------------------------------------------------------------------- CLI pagination

def test_toot_cli_timelines_follow_link_headers(toot, alice, bob):
    """`toot timelines home|tag` with --pager walk every page via Link rel="next";
    the deprecated `toot timeline` shows the first page only when not on a tty."""
    toot.login(alice)
    alice.api.account_follow(bob.id)
    tag = f"Page{uuid.uuid4().hex[:8]}"
    posted = []
    for i in range(12):
        posted.append(bob.api.status_post(f"page post {i}" + (f" #{tag}" if i % 4 else ""))["id"])
    wait_home_has(alice, *posted)
    newest_first = list(reversed(posted))
    tagged = [i for n, i in enumerate(posted) if n % 4][::-1]

    out = toot(alice, "timelines", "home", "--limit", "5", "--no-clear", env=TALL)
    assert STATUS_ID_LINE.findall(out) == newest_first, out

    out = toot(alice, "timelines", "tag", tag, "--limit", "4", "--no-clear", env=TALL)
    assert STATUS_ID_LINE.findall(out) == tagged, out
    # anonymous, against the instance URL (absolute next links are followed as-is)
    out = toot(alice, "timelines", "tag", tag, "--instance", toot.base_url, "--limit", "3",
               "--no-clear", env=TALL)
    assert STATUS_ID_LINE.findall(out) == tagged, out

    # the public timeline holds every test's posts: ours are the newest, the rest must
    # follow without duplicates or disorder across the pages
    out = toot(alice, "timelines", "public", "--local", "--limit", "40", "--no-clear", env=TALL)
    shown = STATUS_ID_LINE.findall(out)
    assert shown[:12] == newest_first, out[:3000]
    assert shown == sorted(set(shown), key=int, reverse=True)

    out = toot(alice, "timelines", "home", "--limit", "5", "--max-id", posted[6], "--no-pager", "--no-clear")
    assert STATUS_ID_LINE.findall(out) == [posted[5], posted[4], posted[3], posted[2], posted[1]], out
    out = toot(alice, "timelines", "home", "--limit", "3", "--min-id", posted[6], "--no-pager", "--no-clear")
    assert STATUS_ID_LINE.findall(out) == [posted[9], posted[8], posted[7]], out

    out = toot(alice, "timeline", "--once", "--count", "5")
    assert STATUS_ID_LINE.findall(out) == newest_first[:5], out
    out = toot(alice, "timeline", "--tag", tag, "--count", "4")
    assert STATUS_ID_LINE.findall(out) == tagged[:4], out


# --------------------------------------------------------------------------- toot.api

def test_toot_api_generators_and_entities(base_url, host, app, alice, bob, carol):
    from toot import api
    from toot.entities import Account, Notification, Status, from_dict, from_dict_list

    a_app, a_user = toot_app_user(base_url, host, app, alice)
    b_app, b_user = toot_app_user(base_url, host, app, bob)

    # find_account: toot's search-based lookup (type=accounts&resolve=true)
    for name in (f"@{bob.username}", bob.username.upper(), f"{bob.username}@{host}"):
        assert api.find_account(a_app, a_user, name)["id"] == bob.id, name
    api.follow(a_app, a_user, bob.id)
    api.follow(a_app, a_user, carol.id)
    rel = api.get_relationship(a_app, a_user, bob.id)
    assert rel["id"] == bob.id and rel["following"] is True
    assert sorted(ids(api.following(a_app, a_user, alice.id))) == sorted([bob.id, carol.id])
    assert ids(api.followers(b_app, b_user, bob.id)) == [alice.id]

    tag = f"Gen{uuid.uuid4().hex[:8]}"
    posted = [api.post_status(b_app, b_user, f"gen {i} #{tag}").json()["id"] for i in range(11)]
    wait_home_has(alice, *posted)

    pages = [p for p in api.home_timeline_generator(a_app, a_user, limit=4) if p]
    assert [len(p) for p in pages] == [4, 4, 3]
    assert [i for p in pages for i in ids(p)] == posted[::-1]
    for p in pages:
        for s in from_dict_list(Status, p):          # toot's dataclasses accept the entities
            assert s.account.id == bob.id and s.original.id == s.id

    for gen in (api.tag_timeline_generator(a_app, a_user, tag, limit=5),
                api.anon_tag_timeline_generator(base_url, tag, limit=5),
                api.account_timeline_generator(a_app, a_user, f"@{bob.username}", limit=5)):
        assert [i for p in gen for i in ids(p)] == posted[::-1]

    # favourite / reblog by status URL: toot resolves it with a resolve=true statuses search
    url = api.fetch_status(a_app, a_user, posted[0]).json()["url"]
    assert api.favourite(a_app, a_user, url).json()["favourited"] is True
    boost = api.reblog(a_app, a_user, posted[1]).json()
    assert boost["reblog"]["id"] == posted[1]
    reply = api.post_status(a_app, a_user, f"@{bob.username} re", in_reply_to_id=posted[2]).json()
    assert reply["in_reply_to_id"] == posted[2]
    ctx = api.context(b_app, b_user, posted[2]).json()
    assert ids(ctx["descendants"]) == [reply["id"]]
    assert [a["id"] for a in api.reblogged_by(b_app, b_user, posted[1]).json()] == [alice.id]

    # notifications: entities parse; toot's mention generator skips follows/favourites/reblogs
    wait_notification_types(bob, {"follow", "favourite", "reblog", "mention"})
    notes = api.get_notifications(b_app, b_user).json()
    for n in from_dict_list(Notification, notes):
        assert n.account.id == alice.id
    # (toot's notification_timeline_generator is not used: it urlencodes the
    # exclude_types[] list without doseq, so no server -- Mastodon included -- can
    # apply the filter.)
    only = api.get_notifications(b_app, b_user, exclude_types=["follow", "favourite", "reblog"]).json()
    assert [n["status"]["id"] for n in only] == [reply["id"]]
    assert ids(api.get_notifications(b_app, b_user, types=["favourite"]).json()) == \
        [n["id"] for n in notes if n["type"] == "favourite"]

    # search (v2) through toot
    res = api.search(a_app, a_user, f"#{tag}", type="hashtags").json()
    assert api.find_tag(a_app, a_user, tag)["name"] == tag.lower()
    assert tag.lower() in [t["name"] for t in res["hashtags"]]

    me = from_dict(Account, api.verify_credentials(a_app, a_user).json())
    assert me.username == alice.username and me.following_count == 2

    # delete
    gone = api.delete_status(a_app, a_user, reply["id"]).json()
    assert gone["text"] == f"@{bob.username} re"
    api.clear_notifications(b_app, b_user)
    assert api.get_notifications(b_app, b_user).json() == []


# --------------------------------------------------------------------------- locked accounts, blocks, mutes via the CLI

def test_toot_cli_follow_requests_block_mute(toot, alice, bob, carol):
    carol.api.account_update_credentials(locked=True)
    for u in (alice, carol):
        toot.login(u)

    rel = toot.json(alice, "follow", f"@{carol.username}")
    assert rel["following"] is False and rel["requested"] is True
    bob.api.account_follow(carol.id)
    reqs = json.loads(toot(carol, "follow-requests", "list", "--json"))
    assert sorted(ids(reqs)) == sorted([alice.id, bob.id])
    wait_notification_types(carol, {"follow_request"})
    assert "follow_request" in {n["type"] for n in toot.json(carol, "notifications")}

    rel = toot.json(carol, "follow-requests", "accept", f"@{alice.username}")
    assert rel["followed_by"] is True
    toot(carol, "follow-requests", "reject", f"@{bob.username}")
    assert json.loads(toot(carol, "follow-requests", "list", "--json")) == []
    assert alice.api.account_relationships(carol.id)[0]["following"] is True
    assert bob.api.account_relationships(carol.id)[0]["requested"] is False
    # Answered requests leave no notification behind (Mastodon deletes them).
    assert "follow_request" not in {n["type"] for n in toot.json(carol, "notifications")}

    bob.api.status_post(f"@{carol.username} hello")
    wait_notification_types(carol, {"mention"})
    assert "Notifications cleared" in toot(carol, "notifications", "--clear")
    assert toot.json(carol, "notifications") == []

    rel = toot.json(carol, "block", f"@{bob.username}")
    assert rel["blocking"] is True
    assert ids(json.loads(toot(carol, "blocked", "--json"))) == [bob.id]
    assert toot.json(carol, "unblock", f"@{bob.username}")["blocking"] is False
    assert "No accounts blocked" in toot(carol, "blocked")

    rel = toot.json(alice, "mute", f"@{carol.username}")
    assert rel["muting"] is True
    assert ids(json.loads(toot(alice, "muted", "--json"))) == [carol.id]
    assert toot.json(alice, "unmute", f"@{carol.username}")["muting"] is False
