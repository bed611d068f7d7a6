-- Labels history without the (pair, labeller, created_at) UNIQUE key: two clicks in the same
-- millisecond, or a change of mind imported with one timestamp, are both kept; ties are ordered
-- by id (insertion order). Stored times are normalised to UTC 'YYYY-MM-DDTHH:MM:SS.SSSZ'; a
-- time that is not a date at all (e.g. 'zzz') sinks to 1970 so that it can never outrank a click.
CREATE TABLE labels_history (
    id            INTEGER PRIMARY KEY,
    query_kind    TEXT NOT NULL CHECK (query_kind IN ('item', 'upload')),
    query_key     TEXT NOT NULL,       -- catalog item id, or the sha256 of an uploaded photo
    candidate_id  TEXT NOT NULL REFERENCES items(id),
    method        TEXT NOT NULL,       -- the method whose results were shown
    rank          INTEGER NOT NULL CHECK (rank >= 1),
    relevant      INTEGER NOT NULL CHECK (relevant IN (0, 1)),
    labeler       TEXT NOT NULL,
    note          TEXT,
    created_at    TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);

INSERT INTO labels_history (id, query_kind, query_key, candidate_id, method, rank, relevant, labeler, note,
                            created_at)
SELECT id, query_kind, query_key, candidate_id, method, rank, relevant, labeler, note,
       coalesce(strftime('%Y-%m-%dT%H:%M:%fZ', created_at), '1970-01-01T00:00:00.000Z')
FROM labels;

DROP VIEW current_labels;
DROP TABLE labels;
ALTER TABLE labels_history RENAME TO labels;
CREATE INDEX labels_pair ON labels(query_kind, query_key, candidate_id, created_at);
CREATE INDEX labels_method ON labels(method);

CREATE VIEW current_labels AS
SELECT l.* FROM labels l
WHERE l.id = (
    SELECT x.id FROM labels x
    WHERE x.query_kind = l.query_kind AND x.query_key = l.query_key AND x.candidate_id = l.candidate_id
    ORDER BY x.created_at DESC, x.id DESC LIMIT 1
);
