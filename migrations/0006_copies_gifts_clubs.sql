-- Issue 23: copies, gifts and fan clubs. Forward only; existing purchases are one copy, not a
-- gift, owned by their buyer.

-- Copies bought in one order (1..99); the price is per copy.
ALTER TABLE purchases ADD COLUMN quantity BIGINT NOT NULL DEFAULT 1;
-- A gift's recipient (NULL: not a gift).
ALTER TABLE purchases ADD COLUMN gift_to TEXT;
-- 1 when the recipient's nameplate may name the buyer.
ALTER TABLE purchases ADD COLUMN gift_from_visible BIGINT NOT NULL DEFAULT 0;
-- Who the album belongs to: the recipient of a gift, else the buyer. Entitlements (play
-- tokens, licenses, nameplates, revocations, the change feed) read this, never user_id.
ALTER TABLE purchases ADD COLUMN owner_id TEXT NOT NULL DEFAULT '';
UPDATE purchases SET owner_id = user_id;
CREATE INDEX purchases_by_owner ON purchases (owner_id, album);
CREATE INDEX purchases_by_gift_to ON purchases (gift_to);

-- Fan clubs: one artist's, names unique per artist (compared by `name_key`, lowercased).
CREATE TABLE clubs (
    id TEXT PRIMARY KEY,
    artist_id TEXT NOT NULL,
    name TEXT NOT NULL,
    name_key TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    UNIQUE (artist_id, name_key)
);

-- Memberships over time: a purchase counts for a club when it lies in [joined_at, left_at).
-- A user has at most one open membership (left_at NULL) per artist.
CREATE TABLE club_members (
    club_id TEXT NOT NULL,
    artist_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    joined_at BIGINT NOT NULL,
    left_at BIGINT
);
CREATE INDEX club_members_by_user ON club_members (user_id, artist_id);
CREATE INDEX club_members_by_club ON club_members (club_id);
