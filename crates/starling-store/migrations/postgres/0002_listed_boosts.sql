-- What Mastodon shows of replies and boosts to anyone: a reply counts in
-- its parent's replies_count only if public or unlisted, and a boost is
-- listed in reblogged_by only if public or unlisted. The parent's and the
-- original's shards do not hold the reply's or boost's visibility, so the
-- mirror rows carry it. Rows from before count and list as they did.
ALTER TABLE status_replies ADD COLUMN counted BOOLEAN NOT NULL DEFAULT TRUE;
ALTER TABLE status_reblogs ADD COLUMN listed BOOLEAN NOT NULL DEFAULT TRUE;
