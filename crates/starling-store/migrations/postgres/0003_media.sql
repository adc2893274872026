-- Uploads (media attachments), on their uploader's shard. `data` is the
-- attachment as one JSON document; the columns are what queries need.
CREATE TABLE media_attachments (
    id          BIGINT PRIMARY KEY,    -- snowflake on the uploader's shard
    account_id  BIGINT NOT NULL,
    status_id   BIGINT,                -- NULL until attached
    state       TEXT   NOT NULL,       -- processing | ready | failed
    created_at  BIGINT NOT NULL,       -- Unix ms
    data        TEXT   NOT NULL
);
-- The sweeper: unattached uploads by age.
CREATE INDEX media_unattached ON media_attachments(created_at) WHERE status_id IS NULL;
CREATE INDEX media_by_status ON media_attachments(status_id) WHERE status_id IS NOT NULL;
-- A status's attachments, as a JSON array ('' for none): they do not change
-- once attached, so a page of statuses stays one read.
ALTER TABLE statuses ADD COLUMN media TEXT NOT NULL DEFAULT '';
-- Profile pictures and headers: storage keys of their files.
ALTER TABLE accounts ADD COLUMN avatar TEXT;
ALTER TABLE accounts ADD COLUMN header TEXT;
