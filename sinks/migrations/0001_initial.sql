-- Events, known faces and descriptors. SQL that ClickHouse 18.16 and current releases accept:
-- DateTime (no DateTime64), ReplacingMergeTree for dedup by key, read with FINAL.
-- +up
CREATE TABLE IF NOT EXISTS {db}.events (
    event_id String,
    account_id String,
    source Nullable(String),
    created_at DateTime('UTC'),
    finished_at DateTime('UTC'),
    latency_ms Float32,
    status String,
    error_code Nullable(String),
    error_message Nullable(String),
    list_ids Array(String),
    image_width Nullable(Int32),
    image_height Nullable(Int32),
    descriptor_version Nullable(UInt8),
    face_count UInt16,
    face_sample_ids Array(String),
    face_boxes Array(Array(Float32)),
    face_scores Array(Float32),
    liveness_probability Array(Float32),
    liveness_quality Array(Float32),
    best_match_face_id Array(String),
    best_match_similarity Array(Float32),
    enrolled_face_ids Array(String),
    matches_json String,
    stage_names Array(String),
    stage_ms Array(Float64),
    inserted_at DateTime('UTC')
) ENGINE = ReplacingMergeTree(inserted_at)
PARTITION BY toYYYYMM(created_at)
ORDER BY (account_id, event_id);

CREATE TABLE IF NOT EXISTS {db}.faces (
    face_id String,
    account_id String,
    list_ids Array(String),
    user_data Nullable(String),
    event_id Nullable(String),
    sample_id Nullable(String),
    created_at DateTime('UTC'),
    deleted UInt8,
    updated_at DateTime('UTC')
) ENGINE = ReplacingMergeTree(updated_at)
ORDER BY face_id;  -- not by account: a tombstone carries only the face id

CREATE TABLE IF NOT EXISTS {db}.descriptors (
    account_id String,
    owner_kind String,
    owner_id String,
    face_index UInt16,
    sample_id Nullable(String),
    descriptor_version UInt8,
    descriptor Array(Float32),
    created_at DateTime('UTC'),
    inserted_at DateTime('UTC')
) ENGINE = ReplacingMergeTree(inserted_at)
ORDER BY (account_id, owner_kind, owner_id, face_index, descriptor_version);

-- +down
DROP TABLE IF EXISTS {db}.descriptors;
DROP TABLE IF EXISTS {db}.faces;
DROP TABLE IF EXISTS {db}.events;
