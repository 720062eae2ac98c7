-- Issue 24: devices (X25519 public keys a buyer registers) and the offline licenses issued to
-- them. Forward only; nothing existing changes.

-- A registered device. Removing one keeps its row (removed_at set), so a renewal for it is
-- refused as "removed" rather than "unknown", and the audit trail stays.
CREATE TABLE devices (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL,
    name TEXT NOT NULL,
    -- X25519, 32 bytes in base64url without padding.
    public_key TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    removed_at BIGINT
);
CREATE INDEX devices_by_user ON devices (user_id);

-- One offline license per row; a renewal moves its expires_at (and renewed_at).
CREATE TABLE offline_licenses (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL,
    album TEXT NOT NULL,
    device_id TEXT NOT NULL,
    issued_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    renewed_at BIGINT
);
CREATE INDEX offline_licenses_by_device ON offline_licenses (device_id);
