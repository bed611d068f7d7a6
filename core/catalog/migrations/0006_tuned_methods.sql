-- Tuned methods: a small learnt head over frozen base methods' stored vectors, one row per
-- saved version. The current version of a name is its highest saved version.
CREATE TABLE tuned_methods (
    name         TEXT NOT NULL,
    version      INTEGER NOT NULL CHECK (version >= 1),
    bases        TEXT NOT NULL,        -- JSON list of base method names, in concatenation order
    base_weights TEXT NOT NULL,        -- JSON list of weights (sum 1), aligned with bases
    targets      TEXT NOT NULL,        -- JSON list of catalog fields whose shared values made positives
    uses_labels  INTEGER NOT NULL CHECK (uses_labels IN (0, 1)),
    dim          INTEGER NOT NULL,     -- size of the tuned vectors
    head         BLOB NOT NULL,        -- np.savez bytes (load with allow_pickle=False)
    record       TEXT NOT NULL,        -- JSON training record (validation metrics, counts, timing)
    created_at   TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    PRIMARY KEY (name, version)
);
