-- A counter that moves whenever an item goes or comes back (or a gone item is added or deleted): a
-- process keeps the set of gone items, which every search leaves out, and reads it again only when
-- the counter has moved (one row read per request instead of every gone id: core/search/space.py).
CREATE TABLE gone_generation (
    only        INTEGER PRIMARY KEY CHECK (only = 1),
    generation  INTEGER NOT NULL
);
INSERT INTO gone_generation (only, generation) VALUES (1, 0);

CREATE TRIGGER items_gone_generation_updated AFTER UPDATE OF gone_at ON items
WHEN (OLD.gone_at IS NULL) != (NEW.gone_at IS NULL) BEGIN
    UPDATE gone_generation SET generation = generation + 1;
END;

CREATE TRIGGER items_gone_generation_inserted AFTER INSERT ON items WHEN NEW.gone_at IS NOT NULL BEGIN
    UPDATE gone_generation SET generation = generation + 1;
END;

CREATE TRIGGER items_gone_generation_deleted AFTER DELETE ON items WHEN OLD.gone_at IS NOT NULL BEGIN
    UPDATE gone_generation SET generation = generation + 1;
END;
