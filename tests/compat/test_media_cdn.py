"""Media files as a CDN sees them, and `delete_media` through Mastodon.py.

Media URLs in API answers point at `media.base_url` when one is set (a CDN
whose origin is Starling's `/media/...`), else at the server itself. The test
tells which from the URLs it is given:

- behind a CDN (the local cluster: nginx caching /media/ from HAProxy), the
  first fetch of a new file is a cache MISS and the next ones are HITs
  (`X-Cache-Status`), byte ranges included. With COMPAT_EXPECT_CDN=1 (CI's
  cluster step) media URLs that do not point at a CDN fail the test, so the
  cluster cannot lose its CDN unnoticed;
- always, the origin (STARLING_URL) serves the file as a CDN needs it
  (`Cache-Control: immutable`, an ETag, 304 for If-None-Match), and answers
  404 for it once its status is deleted with `delete_media=True`.

A CDN keeps its copy of a deleted file (the origin cannot purge it), so after
the delete only the origin is asked.
"""

import os
from urllib.parse import urlsplit

import pytest
import requests
from mastodon import MastodonAPIError

from helpers import TIMEOUT, png


def origin(base_url: str, url: str) -> str:
    """The same file asked of the origin (STARLING_URL) directly."""
    return base_url + urlsplit(url).path


def behind_a_cdn(base_url: str, url: str) -> bool:
    served, ours = urlsplit(url), urlsplit(base_url)
    return (served.scheme, served.netloc) != (ours.scheme, ours.netloc)


def test_media_through_the_cdn_then_deleted_with_the_status(user, base_url):
    api = user.api
    media = api.media_post(png(40, 30), mime_type="image/png", description="for the CDN")
    status = api.status_post("a picture for the CDN", media_ids=[media])
    attached = status["media_attachments"][0]
    files = [attached["url"], attached["preview_url"]]
    assert all(files), attached

    cdn = behind_a_cdn(base_url, files[0])
    if os.environ.get("COMPAT_EXPECT_CDN") == "1":
        assert cdn, f"media URLs should point at the CDN, not at the origin {base_url}: {files}"

    if cdn:
        first = requests.get(files[0], timeout=TIMEOUT)
        assert first.status_code == 200, first.text
        assert first.headers.get("X-Cache-Status") == "MISS", first.headers
        assert first.content.startswith(b"\x89PNG")
        second = requests.get(files[0], timeout=TIMEOUT)
        assert second.status_code == 200
        assert second.headers.get("X-Cache-Status") == "HIT", second.headers
        assert second.content == first.content
        assert "immutable" in second.headers["Cache-Control"]
        # Byte ranges (video seeking) and revalidation, from the CDN's copy.
        part = requests.get(files[0], headers={"Range": "bytes=0-7"}, timeout=TIMEOUT)
        assert part.status_code == 206, part.headers
        assert part.headers.get("X-Cache-Status") == "HIT", part.headers
        assert part.content == first.content[:8]
        etag = second.headers["ETag"]
        again = requests.get(files[0], headers={"If-None-Match": etag}, timeout=TIMEOUT)
        assert again.status_code == 304, again.headers
        assert requests.get(files[1], timeout=TIMEOUT).headers.get("X-Cache-Status") == "MISS"

    # The origin serves what a CDN needs to keep it for ever.
    direct = requests.get(origin(base_url, files[0]), timeout=TIMEOUT)
    assert direct.status_code == 200, direct.text
    assert direct.headers["Content-Type"] == "image/png"
    assert "immutable" in direct.headers["Cache-Control"]
    assert "X-Cache-Status" not in direct.headers
    etag = direct.headers["ETag"]
    revalidated = requests.get(origin(base_url, files[0]), headers={"If-None-Match": etag},
                               timeout=TIMEOUT)
    assert revalidated.status_code == 304

    # delete_media must be a boolean: a garbled value deletes nothing.
    refused = requests.delete(f"{base_url}/api/v1/statuses/{status['id']}",
                              params={"delete_media": "notabool"},
                              headers={"Authorization": f"Bearer {user.access_token}"},
                              timeout=TIMEOUT)
    assert refused.status_code == 422, refused.text
    assert "delete_media" in refused.json()["error"]
    assert api.status(status["id"])["id"] == status["id"]

    # Deleted with its media (Mastodon.py sends delete_media=1): the origin
    # no longer has the files, and the upload cannot be attached again.
    deleted = api.status_delete(status, delete_media=True)
    assert deleted["text"] == "a picture for the CDN"
    for url in files:
        gone = requests.get(origin(base_url, url), timeout=TIMEOUT)
        assert gone.status_code == 404, (url, gone.status_code)
    with pytest.raises(MastodonAPIError) as refused_again:
        api.status_post("redrafted", media_ids=[media])
    assert refused_again.value.args[1] == 422


def test_deleting_without_delete_media_keeps_the_files_for_a_redraft(user, base_url):
    api = user.api
    media = api.media_post(png(8, 8), mime_type="image/png")
    status = api.status_post("first draft", media_ids=[media])
    url = status["media_attachments"][0]["url"]
    api.status_delete(status)
    assert requests.get(origin(base_url, url), timeout=TIMEOUT).status_code == 200
    redraft = api.status_post("second draft", media_ids=[media])
    assert redraft["media_attachments"][0]["id"] == media["id"]
