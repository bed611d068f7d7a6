-- Relevance labels: an append-only history; the latest judgement of a (query, candidate) pair
-- counts, whichever method showed it (so one judgement serves every method that finds the pair).
CREATE TABLE labels (
    id            INTEGER PRIMARY KEY,
    query_kind    TEXT NOT NULL CHECK (query_kind IN ('item', 'upload')),
    query_key     TEXT NOT NULL,       -- catalog item id, or the sha256 of an uploaded photo
    candidate_id  TEXT NOT NULL REFERENCES items(id),
    method        TEXT NOT NULL,       -- the method whose results were shown
    rank          INTEGER NOT NULL CHECK (rank >= 1),
    relevant      INTEGER NOT NULL CHECK (relevant IN (0, 1)),
    labeler       TEXT NOT NULL,
    note          TEXT,
    created_at    TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    UNIQUE (query_kind, query_key, candidate_id, labeler, created_at)
);
CREATE INDEX labels_pair ON labels(query_kind, query_key, candidate_id, created_at);
CREATE INDEX labels_method ON labels(method);

CREATE VIEW current_labels AS
SELECT l.* FROM labels l
WHERE l.id = (
    SELECT x.id FROM labels x
    WHERE x.query_kind = l.query_kind AND x.query_key = l.query_key AND x.candidate_id = l.candidate_id
    ORDER BY x.created_at DESC, x.id DESC LIMIT 1
);
