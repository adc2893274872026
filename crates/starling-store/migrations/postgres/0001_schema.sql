-- Starling's schema for PostgreSQL. Every physical database holds the whole
-- schema; each row lives on the database of the logical shard that owns it
-- (DESIGN.md "Data placement"): an account, its credentials and tokens on
-- its own shard (the username's hash, so a unique index per database keeps
-- usernames unique), an email directory row on the email's shard, a status
-- on its author's, a notification on its recipient's, a tag's rows on the
-- tag's.
--
-- A fact with two sides is stored twice, once on each side's shard, in a
-- table per side (`follows_out` on the follower's shard, `follows_in` on
-- the followee's...), so that every keyed query reads one database. The
-- first side is written with the domain event and a `mirror_ops` row per
-- change the other side needs, in one transaction; the mirror log is then
-- applied on the other side (see `src/postgres/mirror.rs`).
--
-- Times are Unix milliseconds (BIGINT), as in the SQLite schema; ids are
-- the callers' snowflakes. Keys that are searched by prefix or listed in
-- order (`username_key`, `display_key`, tag names) use the "C" collation,
-- so the database orders them byte by byte, as Rust compares strings.

-- ---- accounts and OAuth ---------------------------------------------------

CREATE TABLE accounts (
    id              BIGINT  PRIMARY KEY,
    username        TEXT    NOT NULL,
    username_key    TEXT    COLLATE "C" NOT NULL,  -- lowercase; the username directory
    display_name    TEXT    NOT NULL DEFAULT '',
    display_key     TEXT    COLLATE "C" NOT NULL DEFAULT '', -- lowercase display name (search)
    note            TEXT    NOT NULL DEFAULT '',
    fields          TEXT    NOT NULL DEFAULT '[]', -- JSON [{"name","value"}]
    locked          BOOLEAN NOT NULL DEFAULT FALSE,
    bot             BOOLEAN NOT NULL DEFAULT FALSE,
    discoverable    BOOLEAN NOT NULL DEFAULT TRUE,
    privacy         TEXT    NOT NULL DEFAULT 'public',
    sensitive       BOOLEAN NOT NULL DEFAULT FALSE,
    language        TEXT,
    created_at      BIGINT  NOT NULL,
    statuses_count  BIGINT  NOT NULL DEFAULT 0,
    followers_count BIGINT  NOT NULL DEFAULT 0,
    following_count BIGINT  NOT NULL DEFAULT 0,
    last_status_at  BIGINT,
    -- Not fanned out on write; copied onto follow rows (follows_out).
    large           BOOLEAN NOT NULL DEFAULT FALSE,
    -- Bumped by every change of `large`: a copy on a follow row is only
    -- overwritten by a newer one, whatever order the mirror log applies in.
    large_version   BIGINT  NOT NULL DEFAULT 0,
    CONSTRAINT accounts_username_key_unique UNIQUE (username_key)
);
CREATE INDEX accounts_by_display_key ON accounts (display_key, id);

-- Sign-in data, on the account's shard.
CREATE TABLE credentials (
    account_id    BIGINT PRIMARY KEY REFERENCES accounts (id) ON DELETE CASCADE,
    email         TEXT   NOT NULL,
    password_hash TEXT   NOT NULL,
    locale        TEXT
);

-- email (lowercase) -> account, on the email's shard. Registration claims
-- the email here first (`pending`), creates the account on its own shard,
-- then confirms the claim; `repair_mirrors` settles claims left pending.
CREATE TABLE email_directory (
    email_key  TEXT        PRIMARY KEY,
    account_id BIGINT      NOT NULL,
    pending    BOOLEAN     NOT NULL DEFAULT TRUE,
    claimed_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX email_directory_pending ON email_directory (claimed_at) WHERE pending;

CREATE TABLE oauth_apps (
    id                 BIGINT PRIMARY KEY,
    client_id          TEXT   NOT NULL UNIQUE,
    client_secret_hash BYTEA  NOT NULL,
    name               TEXT   NOT NULL,
    website            TEXT,
    redirect_uris      TEXT   NOT NULL,            -- newline-separated
    scopes             TEXT   NOT NULL,            -- space-separated
    created_at         BIGINT NOT NULL
);

CREATE TABLE oauth_codes (
    code_hash      BYTEA  PRIMARY KEY,
    app_id         BIGINT NOT NULL,
    account_id     BIGINT NOT NULL,
    redirect_uri   TEXT   NOT NULL,
    scopes         TEXT   NOT NULL,
    code_challenge TEXT,
    expires_at     BIGINT NOT NULL
);

CREATE TABLE oauth_tokens (
    token_hash BYTEA  PRIMARY KEY,
    app_id     BIGINT NOT NULL,
    account_id BIGINT,                             -- NULL for app tokens
    scopes     TEXT   NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX oauth_tokens_by_account ON oauth_tokens (account_id);

-- ---- statuses --------------------------------------------------------------

-- On the author's shard (boosts are statuses of their booster).
CREATE TABLE statuses (
    id                     BIGINT   PRIMARY KEY,
    account_id             BIGINT   NOT NULL,
    reblog_of_id           BIGINT,
    in_reply_to_id         BIGINT,
    in_reply_to_account_id BIGINT,
    text                   TEXT     NOT NULL,
    content                TEXT     NOT NULL,
    spoiler_text           TEXT     NOT NULL DEFAULT '',
    sensitive              BOOLEAN  NOT NULL DEFAULT FALSE,
    visibility             SMALLINT NOT NULL,      -- 0 public, 1 unlisted, 2 private, 3 direct
    language               TEXT,
    app_id                 BIGINT,
    mentions               BIGINT[] NOT NULL DEFAULT '{}', -- in order of appearance
    tags                   TEXT[]   NOT NULL DEFAULT '{}', -- lowercase names, as given
    created_at             BIGINT   NOT NULL,
    replies_count          BIGINT   NOT NULL DEFAULT 0,
    reblogs_count          BIGINT   NOT NULL DEFAULT 0,
    favourites_count       BIGINT   NOT NULL DEFAULT 0
);
CREATE INDEX statuses_by_account ON statuses (account_id, id);
-- One boost per account and status (the booster's side).
CREATE UNIQUE INDEX statuses_one_boost ON statuses (account_id, reblog_of_id)
    WHERE reblog_of_id IS NOT NULL;
-- The public timeline: public posts that are not boosts nor replies to
-- someone else.
CREATE INDEX statuses_public ON statuses (id)
    WHERE visibility = 0 AND reblog_of_id IS NULL
      AND (in_reply_to_account_id IS NULL OR in_reply_to_account_id = account_id);

-- Who boosted a status, on the status's shard (mirror of the boosts).
CREATE TABLE status_reblogs (
    status_id  BIGINT NOT NULL,
    boost_id   BIGINT NOT NULL,
    account_id BIGINT NOT NULL,
    PRIMARY KEY (status_id, boost_id)
);

-- parent -> reply, on the parent's shard: thread reads.
CREATE TABLE status_replies (
    parent_id BIGINT NOT NULL,
    reply_id  BIGINT NOT NULL,
    PRIMARY KEY (parent_id, reply_id)
);

-- Hashtags, on the tag's shard: how often used (search), and the public
-- statuses carrying them (the hashtag timeline).
CREATE TABLE tags (
    name TEXT   COLLATE "C" PRIMARY KEY,
    uses BIGINT NOT NULL DEFAULT 0
);
CREATE TABLE status_tags (
    tag       TEXT   COLLATE "C" NOT NULL,
    status_id BIGINT NOT NULL,
    PRIMARY KEY (tag, status_id)
);

-- Idempotency-Key -> the status it created, per author, until it expires.
CREATE TABLE idempotency_keys (
    account_id BIGINT NOT NULL,
    key        TEXT   NOT NULL,
    status_id  BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    PRIMARY KEY (account_id, key)
);

-- ---- favourites ------------------------------------------------------------

-- On the favouriter's shard.
CREATE TABLE favourites (
    id         BIGINT PRIMARY KEY,
    account_id BIGINT NOT NULL,
    status_id  BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    CONSTRAINT favourites_once UNIQUE (account_id, status_id)
);
CREATE INDEX favourites_by_account ON favourites (account_id, id);

-- Who favourited a status, on the status's shard (with its counter).
CREATE TABLE status_favourites (
    status_id    BIGINT NOT NULL,
    account_id   BIGINT NOT NULL,
    favourite_id BIGINT NOT NULL,
    PRIMARY KEY (status_id, account_id)
);
CREATE INDEX status_favourites_by_id ON status_favourites (status_id, favourite_id);

-- ---- the follow graph ------------------------------------------------------

-- follower -> followee, on the follower's shard.
CREATE TABLE follows_out (
    follower_id    BIGINT  NOT NULL,
    followee_id    BIGINT  NOT NULL,
    id             BIGINT  NOT NULL,
    reblogs        BOOLEAN NOT NULL DEFAULT TRUE,
    notify         BOOLEAN NOT NULL DEFAULT FALSE,
    followee_large BOOLEAN NOT NULL DEFAULT FALSE, -- copy of accounts.large
    large_version  BIGINT  NOT NULL DEFAULT 0,     -- of that copy
    created_at     BIGINT  NOT NULL,
    PRIMARY KEY (follower_id, followee_id)
);
CREATE INDEX follows_out_by_id ON follows_out (follower_id, id);
CREATE INDEX follows_out_large ON follows_out (follower_id) WHERE followee_large;

-- followee <- follower, on the followee's shard. The primary key is the
-- fan-out's cursor walk.
CREATE TABLE follows_in (
    followee_id BIGINT  NOT NULL,
    follower_id BIGINT  NOT NULL,
    id          BIGINT  NOT NULL,
    reblogs     BOOLEAN NOT NULL DEFAULT TRUE,
    notify      BOOLEAN NOT NULL DEFAULT FALSE,
    created_at  BIGINT  NOT NULL,
    PRIMARY KEY (followee_id, follower_id)
);
CREATE INDEX follows_in_by_id ON follows_in (followee_id, id);
CREATE INDEX follows_in_notify ON follows_in (followee_id, follower_id) WHERE notify;

-- Pending follow requests, on the requester's shard and on the requested's.
CREATE TABLE follow_requests_out (
    follower_id BIGINT  NOT NULL,
    followee_id BIGINT  NOT NULL,
    id          BIGINT  NOT NULL,
    reblogs     BOOLEAN NOT NULL DEFAULT TRUE,
    notify      BOOLEAN NOT NULL DEFAULT FALSE,
    created_at  BIGINT  NOT NULL,
    PRIMARY KEY (follower_id, followee_id)
);
CREATE TABLE follow_requests_in (
    followee_id BIGINT  NOT NULL,
    follower_id BIGINT  NOT NULL,
    id          BIGINT  NOT NULL,
    reblogs     BOOLEAN NOT NULL DEFAULT TRUE,
    notify      BOOLEAN NOT NULL DEFAULT FALSE,
    created_at  BIGINT  NOT NULL,
    PRIMARY KEY (followee_id, follower_id)
);
CREATE INDEX follow_requests_in_by_id ON follow_requests_in (followee_id, id);

-- account blocks target: on the blocker's shard, and on the target's. An
-- unblock keeps the row, `ended` (a tombstone with the last block's id): a
-- follow older than any block between two accounts must not come back when
-- its mirror arrives late, even after an unblock.
CREATE TABLE blocks (
    account_id BIGINT  NOT NULL,
    target_id  BIGINT  NOT NULL,
    id         BIGINT  NOT NULL,
    created_at BIGINT  NOT NULL,
    ended      BOOLEAN NOT NULL DEFAULT FALSE,
    PRIMARY KEY (account_id, target_id)
);
CREATE INDEX blocks_by_id ON blocks (account_id, id) WHERE NOT ended;
CREATE TABLE blocked_by (
    target_id  BIGINT  NOT NULL,
    account_id BIGINT  NOT NULL,
    id         BIGINT  NOT NULL,
    created_at BIGINT  NOT NULL,
    ended      BOOLEAN NOT NULL DEFAULT FALSE,
    PRIMARY KEY (target_id, account_id)
);

-- One-sided: on the muter's shard only.
CREATE TABLE mutes (
    account_id    BIGINT  NOT NULL,
    target_id     BIGINT  NOT NULL,
    id            BIGINT  NOT NULL,
    notifications BOOLEAN NOT NULL DEFAULT TRUE,
    created_at    BIGINT  NOT NULL,
    PRIMARY KEY (account_id, target_id)
);
CREATE INDEX mutes_by_id ON mutes (account_id, id);

-- ---- notifications and markers ----------------------------------------------

CREATE TABLE notifications (
    id              BIGINT PRIMARY KEY,            -- on the recipient's shard
    account_id      BIGINT NOT NULL,
    kind            TEXT   NOT NULL,
    from_account_id BIGINT NOT NULL,
    status_id       BIGINT,
    created_at      BIGINT NOT NULL,
    event_id        BIGINT NOT NULL,
    CONSTRAINT notifications_once UNIQUE (account_id, kind, event_id)
);
CREATE INDEX notifications_by_account ON notifications (account_id, id);

CREATE TABLE markers (
    account_id   BIGINT NOT NULL,
    timeline     TEXT   NOT NULL,
    last_read_id BIGINT NOT NULL,
    version      BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL,
    PRIMARY KEY (account_id, timeline)
);

-- ---- events and the mirror log ------------------------------------------------

-- Events written in the same transaction as their change. A transaction
-- takes a database-wide advisory lock just before its outbox insert (its
-- last statement), so `seq` order is commit order.
CREATE TABLE outbox (
    seq   BIGSERIAL PRIMARY KEY,
    event TEXT      NOT NULL                       -- JSON of starling_domain::Event
);

CREATE TABLE dead_letters (
    id         BIGSERIAL PRIMARY KEY,
    consumer   TEXT   NOT NULL,
    event      TEXT   NOT NULL,
    error      TEXT   NOT NULL,
    created_at BIGINT NOT NULL
);

-- Changes the other side of a cross-shard write still needs, written in the
-- same transaction as the first side. Applied in `id` order per target
-- database, then deleted.
CREATE TABLE mirror_ops (
    id           BIGSERIAL   PRIMARY KEY,
    op_id        UUID        NOT NULL DEFAULT gen_random_uuid() UNIQUE,
    target_shard INTEGER     NOT NULL,             -- logical shard of the other side
    body         TEXT        NOT NULL,             -- JSON: what to do there
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    attempts     INTEGER     NOT NULL DEFAULT 0,
    last_error   TEXT
);

-- Ops applied on this database (from any origin): applying one twice
-- changes nothing. Pruned after a week by `repair_mirrors`.
CREATE TABLE applied_mirror_ops (
    op_id      UUID        PRIMARY KEY,
    applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX applied_mirror_ops_by_time ON applied_mirror_ops (applied_at);

-- Ops whose application failed for a reason other than unavailability (a
-- bug): kept aside for an operator rather than blocking their queue.
CREATE TABLE dead_mirror_ops (
    id           BIGINT      PRIMARY KEY,
    op_id        UUID        NOT NULL,
    target_shard INTEGER     NOT NULL,
    body         TEXT        NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL,
    failed_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    error        TEXT        NOT NULL
);
