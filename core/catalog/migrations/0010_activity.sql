-- Who did what, when: every verdict, pin, hide, rule, import, export, embedding, index, tuning and
-- training, with the person who did it (the signed-in email; without sign-in, the typed name or "local").
CREATE TABLE activity (
    id          INTEGER PRIMARY KEY,
    at          TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    person      TEXT NOT NULL,
    action      TEXT NOT NULL,
    detail      TEXT NOT NULL DEFAULT ''
);
CREATE INDEX activity_by_person ON activity (person, id);
