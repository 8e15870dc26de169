-- Issue 26: one policy set for a fleet. `policy publish` stores a proved set
-- here; every gateway started with `--policy-source database` serves the
-- latest live publication and reports what it serves in `policy_gateways`.
-- SQLite is one machine: gateways hear a publication through the WAL probe.
-- Expand only: a gateway of the previous release ignores both tables.
CREATE TABLE policy_publications (
    -- 1, 2, 3...: a rollback is a new publication with the next number.
    seq INTEGER PRIMARY KEY,
    -- The content hash `policy validate` prints (schema and policy files).
    version TEXT NOT NULL,
    -- `live` serves; `shadow` is compared with live traffic until promoted.
    stage TEXT NOT NULL CHECK (stage IN ('live', 'shadow')),
    -- JSON: {"policies": {file: text}, "schema": {...}, "invariants": {...}}.
    files TEXT NOT NULL,
    invariants_digest TEXT NOT NULL,
    author TEXT NOT NULL,
    host TEXT NOT NULL,
    message TEXT NOT NULL,
    published_at TEXT NOT NULL,
    -- What was proved before it was stored, in one line.
    proof TEXT NOT NULL,
    -- The invariants removed or changed against the publication before,
    -- when `--allow-invariant-change` let that through; NULL otherwise.
    invariant_change TEXT,
    -- The publication whose content this one republishes (rollback, promote).
    copied_from INTEGER
);
CREATE INDEX policy_publications_version ON policy_publications (version);

-- One row per gateway instance, written by its heartbeat.
CREATE TABLE policy_gateways (
    instance TEXT PRIMARY KEY,
    host TEXT NOT NULL,
    -- The live set's version it serves, and the publication (NULL: files).
    version TEXT NOT NULL,
    seq INTEGER,
    -- Since when it serves that version.
    since TEXT NOT NULL,
    -- Whether every invariant of the set it serves is proved.
    proved INTEGER NOT NULL,
    -- The shadow set it compares, and how many live decisions that set
    -- decided otherwise (its flips) since it came.
    shadow_version TEXT,
    shadow_flips INTEGER NOT NULL DEFAULT 0,
    -- Why the latest publication does not serve here (refused), if it does not.
    problem TEXT,
    started_at TEXT NOT NULL,
    last_seen TEXT NOT NULL
);
