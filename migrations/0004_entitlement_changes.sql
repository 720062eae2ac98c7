-- The entitlement change feed: every refund that takes an album away from a user, and every
-- purchase that gives a refunded album back, numbered in commit order. Each origin keeps the
-- last number it applied to its revocation list and reads what came after (on a
-- notification, and on a timer in case one was lost).
CREATE TABLE entitlement_changes (
    -- 1, 2, 3, ... in commit order: given out inside the write transaction, whose writers
    -- take turns (SQLite's write lock, PostgreSQL's lock on purchases), so a reader never
    -- sees a number before every smaller one is committed.
    seq BIGINT NOT NULL PRIMARY KEY,
    -- 'revoke' (a refund left the user no purchase of the album) or 'restore' (a purchase
    -- after such a refund).
    change TEXT NOT NULL,
    user_id TEXT NOT NULL,
    album TEXT NOT NULL,
    -- When, Unix seconds: the refund's time for a revoke (tokens issued at or before it lose
    -- the album), the purchase's recording time for a restore.
    at BIGINT NOT NULL
);

-- Refunds recorded before the feed existed are in force from each origin's start (the
-- revocation list is rebuilt from the purchases), so the feed starts empty.
