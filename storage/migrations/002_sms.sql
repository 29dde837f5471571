-- Outbound SMS (SMSPM): a send to up to 100 recipients, priced per segment per recipient.
CREATE TABLE sms_sends (
    id                INTEGER PRIMARY KEY,
    user_id           INTEGER NOT NULL REFERENCES users(id),
    text              TEXT    NOT NULL,
    sender            TEXT    NOT NULL,
    encoding          TEXT    NOT NULL,
    segments          INTEGER NOT NULL CHECK (segments > 0),
    total_price       INTEGER NOT NULL CHECK (total_price > 0),
    status            TEXT    NOT NULL CHECK (status IN
                          ('draft', 'sending', 'sent', 'done', 'failed')),
    error             TEXT,
    needs_attention   INTEGER NOT NULL DEFAULT 0,
    chat_id           INTEGER,
    message_id        INTEGER,
    quote_expires_at  INTEGER NOT NULL,            -- a draft's price is held until then
    deadline          INTEGER,                     -- statuses are tracked until then
    created_at        INTEGER NOT NULL,
    finished_at       INTEGER
);
CREATE INDEX sms_sends_user ON sms_sends(user_id, id);
CREATE INDEX sms_sends_live ON sms_sends(status) WHERE status IN ('sending', 'sent');

CREATE TABLE sms_messages (
    id           INTEGER PRIMARY KEY,
    send_id      INTEGER NOT NULL REFERENCES sms_sends(id),
    to_number    TEXT    NOT NULL,                 -- international digits, no "+"
    country      TEXT    NOT NULL,
    price        INTEGER NOT NULL CHECK (price > 0),
    upstream_id  TEXT    UNIQUE,
    status       TEXT    NOT NULL CHECK (status IN
                     ('pending', 'queued', 'submitted', 'delivered', 'failed')),
    cost         TEXT,                             -- EUR, from smsdetails
    updated_at   INTEGER NOT NULL,
    UNIQUE (send_id, to_number)
);

CREATE TABLE sms_prices (
    country     TEXT PRIMARY KEY,                  -- ISO 3166 alpha-2
    price       INTEGER NOT NULL CHECK (price > 0), -- per segment, shop minor units
    updated_at  INTEGER NOT NULL
);

-- The ledger learns to point at SMS sends: rebuilt, because SQLite cannot alter a CHECK.
CREATE TABLE ledger_v2 (
    id              INTEGER PRIMARY KEY,
    user_id         INTEGER NOT NULL REFERENCES users(id),
    amount          INTEGER NOT NULL CHECK (amount <> 0),
    kind            TEXT    NOT NULL CHECK (kind IN ('credit', 'purchase', 'refund', 'adjustment')),
    reason          TEXT    NOT NULL DEFAULT '',
    order_id        INTEGER REFERENCES orders(id),
    sms_send_id     INTEGER REFERENCES sms_sends(id),
    sms_message_id  INTEGER REFERENCES sms_messages(id),
    actor_id        INTEGER,
    created_at      INTEGER NOT NULL,
    CHECK (kind NOT IN ('purchase', 'refund')
           OR (order_id IS NOT NULL) + (sms_send_id IS NOT NULL) = 1),
    CHECK (kind <> 'refund' OR sms_send_id IS NULL OR sms_message_id IS NOT NULL),
    CHECK (kind <> 'purchase' OR amount < 0),
    CHECK (kind <> 'refund' OR amount > 0)
);
INSERT INTO ledger_v2 (id, user_id, amount, kind, reason, order_id, actor_id, created_at)
    SELECT id, user_id, amount, kind, reason, order_id, actor_id, created_at FROM ledger;
DROP TABLE ledger;
ALTER TABLE ledger_v2 RENAME TO ledger;
CREATE UNIQUE INDEX ledger_one_purchase_per_order ON ledger(order_id) WHERE kind = 'purchase';
CREATE UNIQUE INDEX ledger_one_refund_per_order ON ledger(order_id) WHERE kind = 'refund';
CREATE UNIQUE INDEX ledger_one_purchase_per_sms_send ON ledger(sms_send_id) WHERE kind = 'purchase';
CREATE UNIQUE INDEX ledger_one_refund_per_sms_message ON ledger(sms_message_id) WHERE kind = 'refund';
CREATE INDEX ledger_user ON ledger(user_id, id);

-- aiogram FSM state (typed input in progress), so it survives a restart.
CREATE TABLE fsm (
    key    TEXT PRIMARY KEY,
    state  TEXT,
    data   TEXT NOT NULL DEFAULT '{}'
);
