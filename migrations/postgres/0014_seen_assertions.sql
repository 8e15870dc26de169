-- The identity assertions the domain store has accepted, by the SHA-256 of
-- the header, until they expire: each is accepted once, by whichever store
-- process sees it first (src/store/replays.rs). SQLite keeps them in the
-- process instead.
CREATE TABLE seen_assertions (
    digest     TEXT PRIMARY KEY,
    expires_at BIGINT NOT NULL
);
CREATE INDEX seen_assertions_expiry ON seen_assertions (expires_at);
