-- The key state shared by every origin when `[keys] store = "database"` (docs/KEYS.md): the
-- keys folder's files as named blobs (the state, public signing keys, content-key files, and
-- private signing keys wrapped under the active KEK; never a KEK, never a key in the clear),
-- and one version every change bumps. Portable SQL (SQLite and PostgreSQL).

CREATE TABLE key_state (
    -- The file's path in a keys folder, e.g. `keyring.json`, `content/demo-album.json`.
    name TEXT NOT NULL PRIMARY KEY,
    -- Its text (JSON or PEM; a private signing key as a wrapped JSON envelope).
    body TEXT NOT NULL,
    -- The version of the change that last wrote it.
    updated_seq BIGINT NOT NULL
);

-- One row: the version origins poll, and the lock a change holds until it commits.
CREATE TABLE key_state_version (
    id BIGINT NOT NULL PRIMARY KEY,
    version BIGINT NOT NULL
);

INSERT INTO key_state_version (id, version) VALUES (1, 0);
