-- Accounts and OAuth. Every table is written as if sharded: each row lives on
-- the logical shard its key names (an account on its username's shard, an
-- email directory row on its email's shard, a token on its account's or
-- app's shard). In the embedded shape all 1024 logical shards share this one
-- file, so cross-shard facts can still be written in one transaction.

CREATE TABLE accounts (
    id              INTEGER PRIMARY KEY,          -- snowflake; carries the shard
    username        TEXT    NOT NULL,
    username_key    TEXT    NOT NULL UNIQUE,      -- lowercase; the username directory
    display_name    TEXT    NOT NULL DEFAULT '',
    note            TEXT    NOT NULL DEFAULT '',  -- plain text as typed
    fields          TEXT    NOT NULL DEFAULT '[]',-- JSON [{"name","value"}]
    locked          INTEGER NOT NULL DEFAULT 0,
    bot             INTEGER NOT NULL DEFAULT 0,
    discoverable    INTEGER NOT NULL DEFAULT 1,
    privacy         TEXT    NOT NULL DEFAULT 'public',
    sensitive       INTEGER NOT NULL DEFAULT 0,
    language        TEXT,
    created_at      INTEGER NOT NULL,             -- Unix ms
    statuses_count  INTEGER NOT NULL DEFAULT 0,
    followers_count INTEGER NOT NULL DEFAULT 0,
    following_count INTEGER NOT NULL DEFAULT 0,
    last_status_at  INTEGER                       -- Unix ms
);

-- Sign-in data, on the account's shard, apart from the public profile.
CREATE TABLE credentials (
    account_id    INTEGER PRIMARY KEY REFERENCES accounts(id) ON DELETE CASCADE,
    email         TEXT    NOT NULL,
    password_hash TEXT    NOT NULL,               -- argon2id PHC string
    locale        TEXT
);

-- email (lowercase) -> account, on the shard of the email's hash.
CREATE TABLE email_directory (
    email_key  TEXT    PRIMARY KEY,
    account_id INTEGER NOT NULL
);

CREATE TABLE oauth_apps (
    id                 INTEGER PRIMARY KEY,
    client_id          TEXT    NOT NULL UNIQUE,
    client_secret_hash BLOB    NOT NULL,
    name               TEXT    NOT NULL,
    website            TEXT,
    redirect_uris      TEXT    NOT NULL,          -- newline-separated
    scopes             TEXT    NOT NULL,          -- space-separated
    created_at         INTEGER NOT NULL
);

CREATE TABLE oauth_codes (
    code_hash      BLOB    PRIMARY KEY,
    app_id         INTEGER NOT NULL,
    account_id     INTEGER NOT NULL,
    redirect_uri   TEXT    NOT NULL,
    scopes         TEXT    NOT NULL,
    code_challenge TEXT,
    expires_at     INTEGER NOT NULL              -- Unix ms
);

CREATE TABLE oauth_tokens (
    token_hash BLOB    PRIMARY KEY,
    app_id     INTEGER NOT NULL,
    account_id INTEGER,                          -- NULL for app tokens
    scopes     TEXT    NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE INDEX oauth_tokens_by_account ON oauth_tokens(account_id);
