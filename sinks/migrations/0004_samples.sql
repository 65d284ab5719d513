-- Face samples where a request reads one at once (GET /v1/samples/{id}, a face's avatar), kept
-- from the compacted samples topic by the store stage (a tombstone marks one deleted); the
-- JPEG as base64, which both clients carry as text. And the sample a face shows as its avatar.
-- +up
CREATE TABLE IF NOT EXISTS {db}.samples (
    sample_id String,
    account_id String,
    event_id Nullable(String),
    face_index UInt16,
    image_base64 String,
    created_at DateTime('UTC'),
    deleted UInt8,
    updated_at DateTime('UTC')
) ENGINE = ReplacingMergeTree(updated_at)
ORDER BY sample_id;
ALTER TABLE {db}.faces ADD COLUMN IF NOT EXISTS avatar_sample_id Nullable(String) AFTER sample_id;

-- +down
ALTER TABLE {db}.faces DROP COLUMN IF EXISTS avatar_sample_id;
DROP TABLE IF EXISTS {db}.samples;
