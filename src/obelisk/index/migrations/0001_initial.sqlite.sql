-- Obelisk index, version 1 (SQLite).
CREATE TABLE resources (
    id INTEGER PRIMARY KEY,
    level INTEGER NOT NULL,
    public_id TEXT NOT NULL UNIQUE,
    parent_id INTEGER REFERENCES resources(id) ON DELETE CASCADE,
    main_tags TEXT NOT NULL,
    patient_tags TEXT,
    is_stable INTEGER NOT NULL DEFAULT 0,
    last_update TEXT NOT NULL,
    last_update_epoch REAL NOT NULL,
    protected INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX resources_by_parent ON resources(parent_id);
CREATE INDEX resources_by_level ON resources(level, id);
CREATE INDEX resources_unstable ON resources(last_update_epoch) WHERE is_stable = 0;

CREATE TABLE tag_values (
    resource_id INTEGER NOT NULL REFERENCES resources(id) ON DELETE CASCADE,
    tag INTEGER NOT NULL,
    value TEXT NOT NULL,
    value_norm TEXT NOT NULL
);
CREATE INDEX tag_values_by_norm ON tag_values(tag, value_norm);
CREATE INDEX tag_values_by_value ON tag_values(tag, value);
CREATE INDEX tag_values_by_resource ON tag_values(resource_id);

CREATE TABLE attachments (
    resource_id INTEGER NOT NULL REFERENCES resources(id) ON DELETE CASCADE,
    content_type INTEGER NOT NULL,
    uuid TEXT NOT NULL,
    compression INTEGER NOT NULL,
    uncompressed_size INTEGER NOT NULL,
    uncompressed_md5 TEXT NOT NULL,
    compressed_size INTEGER NOT NULL,
    compressed_md5 TEXT NOT NULL,
    revision INTEGER NOT NULL DEFAULT 1,
    PRIMARY KEY (resource_id, content_type)
);

CREATE TABLE metadata (
    resource_id INTEGER NOT NULL REFERENCES resources(id) ON DELETE CASCADE,
    type INTEGER NOT NULL,
    value TEXT NOT NULL,
    revision INTEGER NOT NULL DEFAULT 1,
    PRIMARY KEY (resource_id, type)
);

CREATE TABLE changes (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    change_type INTEGER NOT NULL,
    level INTEGER NOT NULL,
    public_id TEXT NOT NULL,
    date TEXT NOT NULL
);

CREATE TABLE exports (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    level INTEGER NOT NULL,
    public_id TEXT NOT NULL,
    remote_modality TEXT NOT NULL,
    patient_id TEXT NOT NULL,
    study_uid TEXT NOT NULL,
    series_uid TEXT NOT NULL,
    sop_instance_uid TEXT NOT NULL,
    date TEXT NOT NULL
);

CREATE TABLE global_properties (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
