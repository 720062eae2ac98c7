-- The purchase ledger. Portable SQL (SQLite and PostgreSQL): TEXT and BIGINT columns only,
-- times as Unix seconds, no autoincrement, no vendor functions.

CREATE TABLE purchases (
    -- The store's order id: the idempotency key.
    order_id TEXT NOT NULL PRIMARY KEY,
    user_id TEXT NOT NULL,
    album TEXT NOT NULL,
    -- Minor units (cents, fen) of `currency`.
    price BIGINT NOT NULL,
    currency TEXT NOT NULL,
    purchased_at BIGINT NOT NULL,
    recorded_at BIGINT NOT NULL,
    -- 1 for the album's first purchase, 2 for the next, ...; never reused, never renumbered.
    buyer_number BIGINT NOT NULL,
    -- SHA-256 of the canonical request: the same order id with another body is a conflict.
    request_hash TEXT NOT NULL,
    -- The exact response body of the first acknowledgement, replayed on retries.
    response TEXT NOT NULL,
    request_id TEXT NOT NULL,
    refunded_at BIGINT,
    refund_request_id TEXT,
    UNIQUE (album, buyer_number)
);

CREATE INDEX purchases_by_user ON purchases (user_id, album);
CREATE INDEX purchases_by_time ON purchases (purchased_at);
CREATE INDEX purchases_by_refund ON purchases (refunded_at);
