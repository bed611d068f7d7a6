-- Graded verdicts and snapshots (the evaluation workbench).
-- `grade` is good / close / wrong, or NULL for a yes/no verdict (then relevant 1 = good, 0 = wrong).
-- A close verdict is stored with relevant = 0, so readers of `relevant` keep a sensible meaning.
ALTER TABLE labels ADD COLUMN grade TEXT
    CHECK (grade IS NULL OR (grade IN ('good', 'close', 'wrong') AND relevant = (grade = 'good')));

-- Recreated so that its columns include `grade` whatever SQLite made of `l.*` before.
DROP VIEW current_labels;
CREATE VIEW current_labels AS
SELECT l.* FROM labels l
WHERE l.id = (
    SELECT x.id FROM labels x
    WHERE x.query_kind = l.query_kind AND x.query_key = l.query_key AND x.candidate_id = l.candidate_id
    ORDER BY x.created_at DESC, x.id DESC LIMIT 1
);

-- A snapshot: one method's top k for every judged catalog-item query, frozen under a name.
CREATE TABLE snapshots (
    name          TEXT PRIMARY KEY,
    method        TEXT NOT NULL,
    version       TEXT,                -- the method's version when it was taken
    k             INTEGER NOT NULL CHECK (k >= 1),
    created_at    TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
CREATE TABLE snapshot_results (
    snapshot      TEXT NOT NULL REFERENCES snapshots(name) ON DELETE CASCADE,
    query_key     TEXT NOT NULL,       -- a catalog item id
    rank          INTEGER NOT NULL CHECK (rank >= 1),
    candidate_id  TEXT NOT NULL,
    PRIMARY KEY (snapshot, query_key, rank)
);
