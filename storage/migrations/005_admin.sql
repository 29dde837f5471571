-- Upstream balances over time, for /reconcile: every account's balance at start and hourly.
CREATE TABLE balance_snapshots (
    account   TEXT    NOT NULL,                  -- Route.account (SMSPalm's servers share one)
    currency  TEXT    NOT NULL,                  -- the upstream's currency
    amount    TEXT    NOT NULL,                  -- Decimal, upstream currency
    taken_at  INTEGER NOT NULL,
    PRIMARY KEY (account, taken_at)
);  -- not WITHOUT ROWID: SQLite 3.40's integrity_check wrongly reports NULLs in such tables

-- /user shows why a user was banned: the latest 'ban' entry for that user.
CREATE INDEX audit_log_action_target ON audit_log(action, target);
