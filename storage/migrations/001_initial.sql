-- Users and their wallet. balance is a cache of SUM(ledger.amount), kept in the same transaction.
CREATE TABLE users (
    id          INTEGER PRIMARY KEY,             -- Telegram user id
    username    TEXT,
    first_name  TEXT    NOT NULL DEFAULT '',
    language    TEXT,
    balance     INTEGER NOT NULL DEFAULT 0 CHECK (balance >= 0),
    is_active   INTEGER NOT NULL DEFAULT 1,      -- 0 once the user blocked the bot
    created_at  INTEGER NOT NULL
);

-- Catalog: canonical services and countries, and what each route sells at what cost.
CREATE TABLE services (
    id    INTEGER PRIMARY KEY,
    slug  TEXT NOT NULL UNIQUE,
    name  TEXT NOT NULL
);

CREATE TABLE countries (
    code  TEXT PRIMARY KEY,                      -- ISO 3166 alpha-2, or "x-<slug>" when unmapped
    name  TEXT NOT NULL,
    flag  TEXT NOT NULL DEFAULT ''
);

CREATE TABLE route_services (
    route       TEXT    NOT NULL,
    code        TEXT    NOT NULL,                -- upstream service code
    service_id  INTEGER NOT NULL REFERENCES services(id),
    PRIMARY KEY (route, code)
);
CREATE INDEX route_services_service ON route_services(service_id, route);

CREATE TABLE route_countries (
    route        TEXT NOT NULL,
    upstream_id  TEXT NOT NULL,                  -- upstream country id or code
    country      TEXT NOT NULL REFERENCES countries(code),
    PRIMARY KEY (route, upstream_id)
);

CREATE TABLE offers (
    route       TEXT    NOT NULL,
    service_id  INTEGER NOT NULL REFERENCES services(id),
    country     TEXT    NOT NULL REFERENCES countries(code),
    cost        TEXT    NOT NULL,                -- Decimal, upstream currency
    stock       INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL,
    PRIMARY KEY (service_id, country, route)
);

CREATE TABLE offer_refresh (
    route         TEXT    NOT NULL,
    service_id    INTEGER NOT NULL,
    refreshed_at  INTEGER NOT NULL,
    last_viewed   INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (route, service_id)
);

CREATE TABLE routes (
    route       TEXT PRIMARY KEY,
    ok          INTEGER NOT NULL DEFAULT 1,      -- 0 while the upstream does not answer
    checked_at  INTEGER NOT NULL,
    error       TEXT
);

-- A price shown on a confirm screen, held on the server and consumed at most once.
CREATE TABLE quotes (
    id             INTEGER PRIMARY KEY,
    user_id        INTEGER NOT NULL REFERENCES users(id),
    route          TEXT    NOT NULL,
    service_id     INTEGER NOT NULL REFERENCES services(id),
    country        TEXT    NOT NULL,
    upstream_cost  TEXT    NOT NULL,
    price          INTEGER NOT NULL CHECK (price > 0),
    created_at     INTEGER NOT NULL,
    expires_at     INTEGER NOT NULL,
    consumed_at    INTEGER
);

CREATE TABLE orders (
    id               INTEGER PRIMARY KEY,
    user_id          INTEGER NOT NULL REFERENCES users(id),
    quote_id         INTEGER UNIQUE REFERENCES quotes(id),   -- one order per quote
    route            TEXT    NOT NULL,
    service_id       INTEGER NOT NULL REFERENCES services(id),
    country          TEXT    NOT NULL,
    price            INTEGER NOT NULL CHECK (price > 0),      -- charged, shop minor units
    upstream_cost    TEXT    NOT NULL,                        -- Decimal, upstream currency
    cost             INTEGER NOT NULL,                        -- upstream cost in shop minor units
    status           TEXT    NOT NULL CHECK (status IN (
                         'created', 'number_issued', 'code_received',
                         'completed', 'cancelled', 'expired', 'failed')),
    activation_id    TEXT,
    phone            TEXT,
    deadline         INTEGER,
    error            TEXT,
    needs_attention  INTEGER NOT NULL DEFAULT 0,              -- flagged for the owner
    close_attempts   INTEGER NOT NULL DEFAULT 0,
    chat_id          INTEGER,
    message_id       INTEGER,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL,
    finished_at      INTEGER
);
CREATE INDEX orders_user ON orders(user_id, id);
CREATE INDEX orders_live ON orders(status) WHERE status IN ('created', 'number_issued', 'code_received');
CREATE INDEX orders_created ON orders(created_at);

CREATE TABLE order_codes (
    id            INTEGER PRIMARY KEY,
    order_id      INTEGER NOT NULL REFERENCES orders(id),
    code          TEXT    NOT NULL,
    text          TEXT,
    received_at   INTEGER NOT NULL,
    delivered_at  INTEGER,
    UNIQUE (order_id, code)
);
CREATE INDEX order_codes_undelivered ON order_codes(order_id) WHERE delivered_at IS NULL;

-- Every balance change. SUM(amount) per user equals users.balance.
CREATE TABLE ledger (
    id          INTEGER PRIMARY KEY,
    user_id     INTEGER NOT NULL REFERENCES users(id),
    amount      INTEGER NOT NULL CHECK (amount <> 0),
    kind        TEXT    NOT NULL CHECK (kind IN ('credit', 'purchase', 'refund', 'adjustment')),
    reason      TEXT    NOT NULL DEFAULT '',
    order_id    INTEGER REFERENCES orders(id),
    actor_id    INTEGER,
    created_at  INTEGER NOT NULL,
    CHECK (kind NOT IN ('purchase', 'refund') OR order_id IS NOT NULL),
    CHECK (kind <> 'purchase' OR amount < 0),
    CHECK (kind <> 'refund' OR amount > 0)
);
CREATE UNIQUE INDEX ledger_one_purchase_per_order ON ledger(order_id) WHERE kind = 'purchase';
CREATE UNIQUE INDEX ledger_one_refund_per_order ON ledger(order_id) WHERE kind = 'refund';
CREATE INDEX ledger_user ON ledger(user_id, id);

-- Small shared flags (alert throttles and the like), so no state lives in process memory.
CREATE TABLE kv (
    key         TEXT PRIMARY KEY,
    value       TEXT NOT NULL,
    updated_at  INTEGER NOT NULL
);
