-- One row the readiness probe rewrites: a commit that reaches the disk proves the ledger can
-- take purchases again after a failed one.
CREATE TABLE ledger_heartbeat (
    id BIGINT NOT NULL PRIMARY KEY,
    at BIGINT NOT NULL
);

INSERT INTO ledger_heartbeat (id, at) VALUES (1, 0);
