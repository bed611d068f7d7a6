-- Curation decisions: pins, hides and catalog-wide rules, as an append-only history. Each row sets
-- one subject to a value: a pin (item_id, candidate_id) to its place (value = the position), a hide
-- (item_id) to '1', a rule (rule) to its value; value NULL takes the subject away (unpin, unhide,
-- rule off). The latest row of a subject counts; every row keeps who made it and when, and an undo
-- is one more row (undoes = the id of the change it reverses).
CREATE TABLE curation (
    id            INTEGER PRIMARY KEY,
    kind          TEXT NOT NULL CHECK (kind IN ('pin', 'hide', 'rule')),
    item_id       TEXT NOT NULL DEFAULT '',   -- pin: the item whose list it is; hide: the hidden item
    candidate_id  TEXT NOT NULL DEFAULT '',   -- pin: the pinned item
    rule          TEXT NOT NULL DEFAULT '',   -- rule: its name
    value         TEXT,                       -- NULL: removed
    author        TEXT NOT NULL,
    created_at    TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    undoes        INTEGER
);
CREATE INDEX curation_subject ON curation(kind, item_id, candidate_id, rule, created_at);

CREATE VIEW current_curation AS
SELECT c.* FROM curation c
WHERE c.value IS NOT NULL AND c.id = (
    SELECT x.id FROM curation x
    WHERE x.kind = c.kind AND x.item_id = c.item_id AND x.candidate_id = c.candidate_id AND x.rule = c.rule
    ORDER BY x.created_at DESC, x.id DESC LIMIT 1
);
