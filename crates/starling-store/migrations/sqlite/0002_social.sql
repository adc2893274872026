-- The social core: statuses, the follow graph, blocks and mutes,
-- favourites, hashtags, notifications, markers, idempotency keys and the
-- outbox.
--
-- Rows sit where DESIGN.md places them (a status on its author's shard, a
-- follow on the follower's shard, a notification on its recipient's...).
-- In this one file every shard is here, so a fact that the distributed shape
-- stores twice (a follow under the follower and under the followee) is one
-- row with an index for each side, and cross-shard writes are one
-- transaction.
--
-- Every list is read newest first by an id, through an index that ends in
-- that id, so a page costs its size whatever the table holds.

-- Authors at or above the large-account threshold are not fanned out on
-- write; their posts are merged into home timelines at read time.
ALTER TABLE accounts ADD COLUMN large INTEGER NOT NULL DEFAULT 0;
-- Account search by display-name prefix (username prefix uses username_key).
CREATE INDEX accounts_by_display_name ON accounts(lower(display_name));

CREATE TABLE statuses (
    id                     INTEGER PRIMARY KEY,   -- snowflake on the author's shard
    account_id             INTEGER NOT NULL,
    reblog_of_id           INTEGER,               -- a boost: the boosted status
    in_reply_to_id         INTEGER,
    in_reply_to_account_id INTEGER,
    text                   TEXT    NOT NULL,      -- source as typed
    content                TEXT    NOT NULL,      -- sanitized HTML
    spoiler_text           TEXT    NOT NULL DEFAULT '',
    sensitive              INTEGER NOT NULL DEFAULT 0,
    visibility             INTEGER NOT NULL,      -- 0 public, 1 unlisted, 2 private, 3 direct
    language               TEXT,
    app_id                 INTEGER,
    mentions               TEXT    NOT NULL DEFAULT '', -- space-separated account ids
    tags                   TEXT    NOT NULL DEFAULT '', -- space-separated lowercase names
    created_at             INTEGER NOT NULL,      -- Unix ms
    replies_count          INTEGER NOT NULL DEFAULT 0,
    reblogs_count          INTEGER NOT NULL DEFAULT 0,
    favourites_count       INTEGER NOT NULL DEFAULT 0
);
-- Account timelines, home rebuilds and large-account merges.
CREATE INDEX statuses_by_account ON statuses(account_id, id);
-- One boost per account and status; who boosted a status.
CREATE UNIQUE INDEX statuses_one_boost ON statuses(account_id, reblog_of_id)
    WHERE reblog_of_id IS NOT NULL;
CREATE INDEX statuses_by_reblog_of ON statuses(reblog_of_id, id)
    WHERE reblog_of_id IS NOT NULL;
-- The public timeline: public posts that are not boosts nor replies to
-- someone else.
CREATE INDEX statuses_public ON statuses(id)
    WHERE visibility = 0 AND reblog_of_id IS NULL
      AND (in_reply_to_account_id IS NULL OR in_reply_to_account_id = account_id);

-- parent -> reply (on the parent's shard): thread reads.
CREATE TABLE status_replies (
    parent_id INTEGER NOT NULL,
    reply_id  INTEGER NOT NULL,
    PRIMARY KEY (parent_id, reply_id)
) WITHOUT ROWID;

-- Hashtags (on the tag's shard): how often used, for search.
CREATE TABLE tags (
    name TEXT    PRIMARY KEY,                     -- lowercase, without '#'
    uses INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;

-- tag -> public status: the hashtag timeline.
CREATE TABLE status_tags (
    tag       TEXT    NOT NULL,
    status_id INTEGER NOT NULL,
    PRIMARY KEY (tag, status_id)
) WITHOUT ROWID;

-- Idempotency-Key -> the status it created, per author, until it expires.
CREATE TABLE idempotency_keys (
    account_id INTEGER NOT NULL,
    key        TEXT    NOT NULL,
    status_id  INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,                  -- Unix ms
    PRIMARY KEY (account_id, key)
) WITHOUT ROWID;

CREATE TABLE favourites (
    id         INTEGER PRIMARY KEY,               -- on the favouriter's shard
    account_id INTEGER NOT NULL,
    status_id  INTEGER NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE UNIQUE INDEX favourites_by_account_status ON favourites(account_id, status_id);
CREATE INDEX favourites_by_account ON favourites(account_id, id);
CREATE INDEX favourites_by_status ON favourites(status_id, id);

CREATE TABLE follows (
    id             INTEGER PRIMARY KEY,           -- on the follower's shard
    follower_id    INTEGER NOT NULL,
    followee_id    INTEGER NOT NULL,
    reblogs        INTEGER NOT NULL DEFAULT 1,
    notify         INTEGER NOT NULL DEFAULT 0,
    followee_large INTEGER NOT NULL DEFAULT 0,    -- copy of accounts.large
    created_at     INTEGER NOT NULL
);
CREATE UNIQUE INDEX follows_by_pair ON follows(follower_id, followee_id);
CREATE INDEX follows_by_follower ON follows(follower_id, id);
CREATE INDEX follows_by_followee ON follows(followee_id, id);
-- The fan-out's cursor walk over an author's followers.
CREATE INDEX follows_by_followee_follower ON follows(followee_id, follower_id);
CREATE INDEX follows_large ON follows(follower_id) WHERE followee_large = 1;
CREATE INDEX follows_notify ON follows(followee_id, follower_id) WHERE notify = 1;

CREATE TABLE follow_requests (
    id          INTEGER PRIMARY KEY,
    follower_id INTEGER NOT NULL,
    followee_id INTEGER NOT NULL,
    reblogs     INTEGER NOT NULL DEFAULT 1,
    notify      INTEGER NOT NULL DEFAULT 0,
    created_at  INTEGER NOT NULL
);
CREATE UNIQUE INDEX follow_requests_by_pair ON follow_requests(follower_id, followee_id);
CREATE INDEX follow_requests_by_followee ON follow_requests(followee_id, id);

CREATE TABLE blocks (
    id         INTEGER PRIMARY KEY,
    account_id INTEGER NOT NULL,
    target_id  INTEGER NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE UNIQUE INDEX blocks_by_pair ON blocks(account_id, target_id);
CREATE INDEX blocks_by_account ON blocks(account_id, id);
CREATE INDEX blocks_by_target ON blocks(target_id, account_id);

CREATE TABLE mutes (
    id            INTEGER PRIMARY KEY,
    account_id    INTEGER NOT NULL,
    target_id     INTEGER NOT NULL,
    notifications INTEGER NOT NULL DEFAULT 1,
    created_at    INTEGER NOT NULL
);
CREATE UNIQUE INDEX mutes_by_pair ON mutes(account_id, target_id);
CREATE INDEX mutes_by_account ON mutes(account_id, id);

CREATE TABLE notifications (
    id              INTEGER PRIMARY KEY,          -- on the recipient's shard
    account_id      INTEGER NOT NULL,
    kind            TEXT    NOT NULL,
    from_account_id INTEGER NOT NULL,
    status_id       INTEGER,
    created_at      INTEGER NOT NULL,
    event_id        INTEGER NOT NULL              -- the event that caused it
);
CREATE INDEX notifications_by_account ON notifications(account_id, id);
-- A redelivered event creates nothing new.
CREATE UNIQUE INDEX notifications_once ON notifications(account_id, kind, event_id);

CREATE TABLE markers (
    account_id   INTEGER NOT NULL,
    timeline     TEXT    NOT NULL,
    last_read_id INTEGER NOT NULL,
    version      INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL,
    PRIMARY KEY (account_id, timeline)
) WITHOUT ROWID;

-- Events written in the same transaction as the change they describe,
-- waiting for the relay (oldest first by seq).
CREATE TABLE outbox (
    seq   INTEGER PRIMARY KEY AUTOINCREMENT,
    event TEXT    NOT NULL                        -- JSON of starling_domain::Event
);

-- Events a consumer gave up on, for an operator to look at.
CREATE TABLE dead_letters (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    consumer   TEXT    NOT NULL,
    event      TEXT    NOT NULL,
    error      TEXT    NOT NULL,
    created_at INTEGER NOT NULL                   -- Unix ms
);
