-- Catalog: listings, their images, embedding vectors and index bookkeeping.
CREATE TABLE items (
    id          TEXT PRIMARY KEY,
    source      TEXT NOT NULL,
    title       TEXT,
    description TEXT,
    brand       TEXT,
    gender      TEXT,
    category    TEXT,
    colour      TEXT,
    price       REAL,
    currency    TEXT,
    on_sale     INTEGER,
    stock       INTEGER,
    attributes  TEXT NOT NULL DEFAULT '{}',
    updated_at  TEXT NOT NULL DEFAULT (datetime('now'))
);
CREATE INDEX items_category ON items(category);
CREATE INDEX items_brand ON items(brand);

CREATE TABLE images (
    item_id  TEXT NOT NULL REFERENCES items(id) ON DELETE CASCADE,
    role     TEXT NOT NULL,            -- primary, cutout, model
    path     TEXT,                     -- local file, when there is one
    url      TEXT,                     -- source URL, when there is one
    width    INTEGER,
    height   INTEGER,
    sha256   TEXT,
    status   TEXT NOT NULL CHECK (status IN ('ok', 'missing', 'unreadable')),
    reason   TEXT,
    PRIMARY KEY (item_id, role)
);
CREATE INDEX images_status ON images(status);

CREATE TABLE embeddings (
    item_id      TEXT NOT NULL REFERENCES items(id) ON DELETE CASCADE,
    method       TEXT NOT NULL,
    version      TEXT NOT NULL,
    dim          INTEGER NOT NULL,
    vector       BLOB NOT NULL,        -- float32, little endian
    source_hash  TEXT NOT NULL,        -- sha256 of the image (or text) it was computed from
    created_at   TEXT NOT NULL DEFAULT (datetime('now')),
    PRIMARY KEY (method, item_id)
);

CREATE TABLE embedding_failures (
    item_id     TEXT NOT NULL REFERENCES items(id) ON DELETE CASCADE,
    method      TEXT NOT NULL,
    version     TEXT NOT NULL,
    source_hash TEXT,
    reason      TEXT NOT NULL,
    PRIMARY KEY (method, item_id)
);

CREATE TABLE indices (
    method    TEXT PRIMARY KEY,
    path      TEXT NOT NULL,
    manifest  TEXT NOT NULL,           -- JSON written beside the index too
    built_at  TEXT NOT NULL DEFAULT (datetime('now'))
);
