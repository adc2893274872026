"""Media through the real clients: Mastodon.py's media_post / media_update /
status_post(media_ids=...) and toot's `post --media`, against a live Starling.

The images are made here (helpers.png: a PNG written with zlib, no imaging
library), so the suite needs nothing beyond the pinned clients.
"""

import pytest
import requests
from mastodon import MastodonAPIError

from helpers import TIMEOUT, invoke_toot, png, unique_username


def test_media_post_describe_and_attach(user):
    api = user.api
    media = api.media_post(png(), mime_type="image/png", description="a gradient",
                           focus=(0.5, -0.5))
    assert media["type"] == "image"
    assert media["url"], media
    assert media["description"] == "a gradient"
    assert media["meta"]["original"]["width"] == 48
    assert media["meta"]["focus"]["x"] == 0.5

    updated = api.media_update(media, description="a better description")
    assert updated["description"] == "a better description"

    status = api.status_post("with a picture", media_ids=[media])
    attached = status["media_attachments"]
    assert [m["id"] for m in attached] == [media["id"]]
    assert attached[0]["description"] == "a better description"

    # The file is there, as an image, cacheable for ever.
    got = requests.get(attached[0]["url"], timeout=TIMEOUT)
    assert got.status_code == 200
    assert got.headers["Content-Type"] == "image/png"
    assert "immutable" in got.headers["Cache-Control"]
    assert got.content.startswith(b"\x89PNG")
    assert requests.get(attached[0]["preview_url"], timeout=TIMEOUT).status_code == 200

    again = api.status(status["id"])
    assert again["media_attachments"][0]["blurhash"]


def test_media_only_post_and_a_refused_file(user):
    api = user.api
    media = api.media_post(png(8, 8), mime_type="image/png")
    status = api.status_post("", media_ids=[media["id"]])
    assert status["media_attachments"][0]["id"] == media["id"]

    with pytest.raises(MastodonAPIError) as refused:
        api.media_post(b"this is not a picture", mime_type="image/png", file_name="fake.png")
    assert refused.value.args[1] == 422


def test_toot_posts_with_media(tmp_path, base_url, host, make_user):
    user = make_user(unique_username("tooter"))
    home = tmp_path / "home"
    (home / ".config").mkdir(parents=True)
    picture = tmp_path / "picture.png"
    picture.write_bytes(png())
    login = invoke_toot(home, "login_cli", "--instance", base_url,
                        "--email", user.email, "--password", user.password)
    assert login.returncode == 0, login.stdout + login.stderr
    post = invoke_toot(home, "--as", f"{user.username}@{host}", "post", "look at this",
                       "--media", str(picture), "--description", "alt text from toot")
    assert post.returncode == 0, post.stdout + post.stderr
    latest = user.api.account_statuses(user.api.me()["id"], limit=1)[0]
    assert latest["media_attachments"][0]["description"] == "alt text from toot"
    assert latest["media_attachments"][0]["url"]
