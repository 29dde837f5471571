-- The instance registry (issue 14): one row per running bot process, refreshed by its
-- heartbeat. Without REDIS_URL only one instance may run on a database; the rows are how a
-- second one finds out (shop/services/instances.py).
CREATE TABLE instances (
    id TEXT PRIMARY KEY,
    host TEXT NOT NULL,
    node TEXT NOT NULL,
    pid INTEGER NOT NULL,
    shared INTEGER NOT NULL CHECK (shared IN (0, 1)),
    started_at INTEGER NOT NULL,
    seen_at INTEGER NOT NULL
);
