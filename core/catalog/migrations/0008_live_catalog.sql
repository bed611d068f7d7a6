-- A live catalog: items that left the shop's feed, what changed since an index was built, and a
-- method's next version embedded beside the one served until it is complete.

-- An item missing from the last synced feed is gone (NULL: live). It keeps its labels, pins, history
-- and vectors; searches, exports and the API leave it out until a feed brings it back.
ALTER TABLE items ADD COLUMN gone_at TEXT;
CREATE INDEX items_gone ON items(gone_at) WHERE gone_at IS NOT NULL;

-- Which version a method's vectors are of, and how many live ones it has, read from an index alone.
CREATE INDEX embeddings_version ON embeddings(method, version, item_id);

-- Per method and item, the vector generation of its last change (a vector stored, replaced or deleted,
-- or the item gone or back). An index built at generation G is brought up to date by the items
-- changed at G or later: searched exactly beside it, their old entries in it ignored.
CREATE TABLE vector_changes (
    method      TEXT NOT NULL,
    item_id     TEXT NOT NULL,
    generation  INTEGER NOT NULL,
    PRIMARY KEY (method, item_id)
);
CREATE INDEX vector_changes_generation ON vector_changes(method, generation);
INSERT INTO vector_changes (method, item_id, generation)  -- older than any index built before this
    SELECT method, item_id, 0 FROM embeddings;

CREATE TRIGGER embeddings_changed_inserted AFTER INSERT ON embeddings BEGIN
    INSERT INTO vector_changes (method, item_id, generation)
    VALUES (NEW.method, NEW.item_id, coalesce((SELECT generation FROM vector_generations WHERE method = NEW.method), 0))
    ON CONFLICT (method, item_id) DO UPDATE SET generation = excluded.generation;
END;

CREATE TRIGGER embeddings_changed_updated AFTER UPDATE ON embeddings BEGIN
    INSERT INTO vector_changes (method, item_id, generation)
    VALUES (NEW.method, NEW.item_id, coalesce((SELECT generation FROM vector_generations WHERE method = NEW.method), 0))
    ON CONFLICT (method, item_id) DO UPDATE SET generation = excluded.generation;
END;

CREATE TRIGGER embeddings_changed_deleted AFTER DELETE ON embeddings BEGIN
    INSERT INTO vector_changes (method, item_id, generation)
    VALUES (OLD.method, OLD.item_id, coalesce((SELECT generation FROM vector_generations WHERE method = OLD.method), 0))
    ON CONFLICT (method, item_id) DO UPDATE SET generation = excluded.generation;
END;

-- An item gone or back changes what every method with a vector of it may return.
CREATE TRIGGER items_gone_or_back AFTER UPDATE OF gone_at ON items
WHEN (OLD.gone_at IS NULL) != (NEW.gone_at IS NULL) BEGIN
    UPDATE vector_generations SET generation = generation + 1
    WHERE method IN (SELECT method FROM embeddings WHERE item_id = NEW.id);
    INSERT INTO vector_changes (method, item_id, generation)
    SELECT e.method, e.item_id, g.generation FROM embeddings e JOIN vector_generations g ON g.method = e.method
    WHERE e.item_id = NEW.id
    ON CONFLICT (method, item_id) DO UPDATE SET generation = excluded.generation;
END;

-- A method's next version (re-tuned, retrained, a new model release), embedded beside the version served:
-- searches, exports and the API keep using the complete served version until this one covers the
-- catalog, then it replaces it in one transaction (core/catalog/vectors.py: promote).
CREATE TABLE embeddings_next (
    item_id      TEXT NOT NULL REFERENCES items(id) ON DELETE CASCADE,
    method       TEXT NOT NULL,
    version      TEXT NOT NULL,
    dim          INTEGER NOT NULL,
    vector       BLOB NOT NULL,
    source_hash  TEXT NOT NULL,
    created_at   TEXT NOT NULL DEFAULT (datetime('now')),
    PRIMARY KEY (method, item_id)
);
