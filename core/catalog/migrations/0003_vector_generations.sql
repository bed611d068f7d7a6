-- A counter per method that moves whenever any of its vectors changes: an index built at
-- generation G is stale as soon as the counter is past G (cheap to check on every query).
CREATE TABLE vector_generations (
    method      TEXT PRIMARY KEY,
    generation  INTEGER NOT NULL DEFAULT 0
);
INSERT INTO vector_generations (method, generation) SELECT DISTINCT method, 1 FROM embeddings;

CREATE TRIGGER embeddings_inserted AFTER INSERT ON embeddings BEGIN
    INSERT INTO vector_generations (method, generation) VALUES (NEW.method, 1)
    ON CONFLICT (method) DO UPDATE SET generation = generation + 1;
END;

CREATE TRIGGER embeddings_updated AFTER UPDATE ON embeddings BEGIN
    UPDATE vector_generations SET generation = generation + 1 WHERE method = NEW.method;
END;

CREATE TRIGGER embeddings_deleted AFTER DELETE ON embeddings BEGIN
    UPDATE vector_generations SET generation = generation + 1 WHERE method = OLD.method;
END;
