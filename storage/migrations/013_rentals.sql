-- Rentals (issue 15): SMSPool numbers by the day, paid from the wallet like numbers.
-- Portable SQL (SQLite and PostgreSQL): `id INTEGER PRIMARY KEY` is an identity column.

-- One rental. `buying` from the charge until purchase/rental answers: a row left there (a
-- crash, a stuck request) is settled as "outcome unknown" (refunded, flagged, alerted).
-- `active` and `extended` are live (polled); `refunded`, `expired` and `failed` are final.
CREATE TABLE rentals (
    id               INTEGER PRIMARY KEY,            -- identity
    user_id          INTEGER NOT NULL REFERENCES users(id),
    request_key      TEXT    NOT NULL UNIQUE,        -- one confirm screen buys at most once
    offer_id         TEXT    NOT NULL,               -- SMSPool's rental id (retrieve_all key)
    rental_code      TEXT    UNIQUE,                 -- SMSPool's rental_code once bought
    phone            TEXT,
    country          TEXT    NOT NULL,               -- SMSPool's country name
    extendable       INTEGER NOT NULL CHECK (extendable IN (0, 1)),
    service_id       TEXT,                           -- single-service line (US, 50% off)
    days             INTEGER NOT NULL CHECK (days > 0),   -- bought, extensions included
    price            INTEGER NOT NULL CHECK (price > 0),  -- charged for the purchase, minor units
    upstream_cost    TEXT    NOT NULL,               -- Decimal USD of the purchase
    cost             INTEGER NOT NULL,               -- upstream cost in shop minor units
    pricing          TEXT    NOT NULL,               -- the offer's table at purchase, JSON
    state            TEXT    NOT NULL CHECK (state IN (
                         'buying', 'active', 'extended', 'refunded', 'expired', 'failed')),
    expires_at       INTEGER,                        -- Unix seconds (SMSPool's expiry)
    reminded_at      INTEGER,                        -- the day-before reminder was sent
    ended_notified   INTEGER NOT NULL DEFAULT 0 CHECK (ended_notified IN (0, 1)),
    needs_attention  INTEGER NOT NULL DEFAULT 0 CHECK (needs_attention IN (0, 1)),
    error            TEXT,
    next_poll_at     INTEGER NOT NULL DEFAULT 0,     -- when the poller takes it next
    chat_id          INTEGER,
    message_id       INTEGER,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL,
    ended_at         INTEGER
);
CREATE INDEX rentals_user ON rentals(user_id, id);
CREATE INDEX rentals_due ON rentals(next_poll_at) WHERE state IN ('active', 'extended');
CREATE INDEX rentals_buying ON rentals(created_at) WHERE state = 'buying';

-- Every SMS a rented number received, once: SMSPool's message IDs are positional, so the key
-- is (timestamp, sender, text); `digest` is the SHA-256 of that triple (texts may be long).
-- A sender claims a message (`claimed_until`, a short lease) before sending it, so two polls
-- or two instances never send it both; `forwarded_at` is set after the chat message went out.
-- A crash in between leaves the lease to run out, and the message is sent again: once.
CREATE TABLE rental_messages (
    id            INTEGER PRIMARY KEY,               -- identity
    rental_id     INTEGER NOT NULL REFERENCES rentals(id),
    digest        TEXT    NOT NULL,
    sent_at       TEXT    NOT NULL,                  -- SMSPool's timestamp, verbatim
    sender        TEXT,
    text          TEXT    NOT NULL,
    received_at   INTEGER NOT NULL,                  -- when we first saw it
    claimed_until INTEGER,                           -- a sender's lease (Unix seconds)
    forwarded_at  INTEGER,
    UNIQUE (rental_id, digest)
);
CREATE INDEX rental_messages_unforwarded ON rental_messages(rental_id) WHERE forwarded_at IS NULL;

-- Extensions: `pending` from the charge until rental/extend answers, `done`, `refused` (and
-- refunded) or `unknown` (no clear answer: refunded, flagged). One pending per rental.
CREATE TABLE rental_extensions (
    id             INTEGER PRIMARY KEY,              -- identity
    rental_id      INTEGER NOT NULL REFERENCES rentals(id),
    seq            INTEGER NOT NULL CHECK (seq > 0),
    days           INTEGER NOT NULL CHECK (days > 0),
    price          INTEGER NOT NULL CHECK (price > 0),
    upstream_cost  TEXT    NOT NULL,
    cost           INTEGER NOT NULL,
    state          TEXT    NOT NULL CHECK (state IN ('pending', 'done', 'refused', 'unknown')),
    error          TEXT,
    created_at     INTEGER NOT NULL,
    updated_at     INTEGER NOT NULL,
    UNIQUE (rental_id, seq)
);
CREATE UNIQUE INDEX rental_extensions_one_pending ON rental_extensions(rental_id)
    WHERE state = 'pending';

-- The ledger learns rentals. Rebuilt, because SQLite cannot alter a CHECK.
CREATE TABLE ledger_v4 (
    id                   INTEGER PRIMARY KEY,        -- identity
    user_id              INTEGER NOT NULL REFERENCES users(id),
    amount               INTEGER NOT NULL CHECK (amount <> 0),
    kind                 TEXT    NOT NULL CHECK (kind IN (
                             'credit', 'purchase', 'refund', 'adjustment',
                             'topup', 'topup_refund', 'promo', 'referral',
                             'rental', 'rental_extend', 'rental_refund')),
    reason               TEXT    NOT NULL DEFAULT '',
    order_id             INTEGER REFERENCES orders(id),
    sms_send_id          INTEGER REFERENCES sms_sends(id),
    sms_message_id       INTEGER REFERENCES sms_messages(id),
    topup_id             INTEGER REFERENCES topups(id),
    promo_code           TEXT,
    rental_id            INTEGER REFERENCES rentals(id),
    rental_extension_id  INTEGER REFERENCES rental_extensions(id),
    actor_id             INTEGER,
    created_at           INTEGER NOT NULL,
    CHECK (kind NOT IN ('purchase', 'refund')
           OR (order_id IS NOT NULL) + (sms_send_id IS NOT NULL) = 1),
    CHECK (kind <> 'refund' OR sms_send_id IS NULL OR sms_message_id IS NOT NULL),
    CHECK (kind <> 'purchase' OR amount < 0),
    CHECK (kind <> 'refund' OR amount > 0),
    CHECK (kind NOT IN ('topup', 'topup_refund', 'referral') OR topup_id IS NOT NULL),
    CHECK (kind <> 'topup' OR amount > 0),
    CHECK (kind <> 'topup_refund' OR amount < 0),
    CHECK (kind <> 'referral' OR amount > 0),
    CHECK (kind <> 'promo' OR (promo_code IS NOT NULL AND amount > 0)),
    CHECK (kind NOT IN ('rental', 'rental_extend', 'rental_refund') OR rental_id IS NOT NULL),
    CHECK (kind <> 'rental' OR (amount < 0 AND rental_extension_id IS NULL)),
    CHECK (kind <> 'rental_extend' OR (amount < 0 AND rental_extension_id IS NOT NULL)),
    CHECK (kind <> 'rental_refund' OR amount > 0)
);
INSERT INTO ledger_v4 (id, user_id, amount, kind, reason, order_id, sms_send_id, sms_message_id,
                       topup_id, promo_code, actor_id, created_at)
    SELECT id, user_id, amount, kind, reason, order_id, sms_send_id, sms_message_id, topup_id,
           promo_code, actor_id, created_at
    FROM ledger;
DROP TABLE ledger;
ALTER TABLE ledger_v4 RENAME TO ledger;
CREATE UNIQUE INDEX ledger_one_purchase_per_order ON ledger(order_id) WHERE kind = 'purchase';
CREATE UNIQUE INDEX ledger_one_refund_per_order ON ledger(order_id) WHERE kind = 'refund';
CREATE UNIQUE INDEX ledger_one_purchase_per_sms_send ON ledger(sms_send_id) WHERE kind = 'purchase';
CREATE UNIQUE INDEX ledger_one_refund_per_sms_message ON ledger(sms_message_id) WHERE kind = 'refund';
CREATE UNIQUE INDEX ledger_one_credit_per_topup ON ledger(topup_id) WHERE kind = 'topup';
CREATE UNIQUE INDEX ledger_one_refund_per_topup ON ledger(topup_id) WHERE kind = 'topup_refund';
CREATE UNIQUE INDEX ledger_one_bonus_per_topup ON ledger(topup_id) WHERE kind = 'referral';
CREATE UNIQUE INDEX ledger_one_promo_per_user ON ledger(promo_code, user_id) WHERE kind = 'promo';
-- A rental is paid once, each extension charged once and refunded at most once, and the
-- rental as a whole refunded at most once (an extension's own refund names the extension).
CREATE UNIQUE INDEX ledger_one_payment_per_rental ON ledger(rental_id) WHERE kind = 'rental';
CREATE UNIQUE INDEX ledger_one_charge_per_rental_extension ON ledger(rental_extension_id)
    WHERE kind = 'rental_extend';
CREATE UNIQUE INDEX ledger_one_refund_per_rental_extension ON ledger(rental_extension_id)
    WHERE kind = 'rental_refund';
CREATE UNIQUE INDEX ledger_one_refund_per_rental ON ledger(rental_id)
    WHERE kind = 'rental_refund' AND rental_extension_id IS NULL;
CREATE INDEX ledger_user ON ledger(user_id, id);
CREATE INDEX ledger_created ON ledger(created_at);
CREATE INDEX ledger_rental ON ledger(rental_id) WHERE rental_id IS NOT NULL;
