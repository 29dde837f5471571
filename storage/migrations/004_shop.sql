-- Running the shop: top-ups, promo codes, referrals, bans, languages, audit log, broadcasts.

-- Who invited whom, bans, and the language the user picked (NULL: follow Telegram's).
ALTER TABLE users ADD COLUMN referrer_id INTEGER REFERENCES users(id);
ALTER TABLE users ADD COLUMN is_banned INTEGER NOT NULL DEFAULT 0;
ALTER TABLE users ADD COLUMN locale TEXT;
ALTER TABLE users ADD COLUMN last_seen INTEGER NOT NULL DEFAULT 0;
CREATE INDEX users_referrer ON users(referrer_id);
CREATE INDEX users_username ON users(username COLLATE NOCASE);

-- A top-up: an invoice we issued (Telegram Stars or Crypto Pay) and, once paid, the credit.
CREATE TABLE topups (
    id              INTEGER PRIMARY KEY,
    user_id         INTEGER NOT NULL REFERENCES users(id),
    method          TEXT    NOT NULL CHECK (method IN ('stars', 'crypto')),
    amount          INTEGER NOT NULL CHECK (amount > 0),   -- shop currency, minor units
    pay_amount      TEXT    NOT NULL,                      -- what the user pays: stars, or crypto
    pay_currency    TEXT    NOT NULL,                      -- XTR, USDT, TON, ...
    status          TEXT    NOT NULL DEFAULT 'pending'
                    CHECK (status IN ('pending', 'paid', 'expired', 'refunded')),
    external_id     TEXT,                                  -- Crypto Pay invoice id
    pay_url         TEXT,
    charge_id       TEXT UNIQUE,                           -- telegram_payment_charge_id
    created_at      INTEGER NOT NULL,
    expires_at      INTEGER NOT NULL,
    paid_at         INTEGER,
    refunded_at     INTEGER
);
CREATE UNIQUE INDEX topups_external ON topups(method, external_id) WHERE external_id IS NOT NULL;
CREATE INDEX topups_user ON topups(user_id, id);
CREATE INDEX topups_pending ON topups(status, method) WHERE status = 'pending';

CREATE TABLE promo_codes (
    code        TEXT    PRIMARY KEY COLLATE NOCASE,
    amount      INTEGER NOT NULL CHECK (amount > 0),
    max_uses    INTEGER NOT NULL CHECK (max_uses > 0),
    used        INTEGER NOT NULL DEFAULT 0 CHECK (used <= max_uses),
    expires_at  INTEGER,
    created_by  INTEGER,
    created_at  INTEGER NOT NULL
);

CREATE TABLE promo_redemptions (
    code        TEXT    NOT NULL COLLATE NOCASE REFERENCES promo_codes(code),
    user_id     INTEGER NOT NULL REFERENCES users(id),
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (code, user_id)
);

-- The ledger learns top-ups, promo credits, referral bonuses and Stars refunds.
-- Rebuilt, because SQLite cannot alter a CHECK.
CREATE TABLE ledger_v3 (
    id              INTEGER PRIMARY KEY,
    user_id         INTEGER NOT NULL REFERENCES users(id),
    amount          INTEGER NOT NULL CHECK (amount <> 0),
    kind            TEXT    NOT NULL CHECK (kind IN (
                        'credit', 'purchase', 'refund', 'adjustment',
                        'topup', 'topup_refund', 'promo', 'referral')),
    reason          TEXT    NOT NULL DEFAULT '',
    order_id        INTEGER REFERENCES orders(id),
    sms_send_id     INTEGER REFERENCES sms_sends(id),
    sms_message_id  INTEGER REFERENCES sms_messages(id),
    topup_id        INTEGER REFERENCES topups(id),
    promo_code      TEXT,
    actor_id        INTEGER,
    created_at      INTEGER NOT NULL,
    CHECK (kind NOT IN ('purchase', 'refund')
           OR (order_id IS NOT NULL) + (sms_send_id IS NOT NULL) = 1),
    CHECK (kind <> 'refund' OR sms_send_id IS NULL OR sms_message_id IS NOT NULL),
    CHECK (kind <> 'purchase' OR amount < 0),
    CHECK (kind <> 'refund' OR amount > 0),
    CHECK (kind NOT IN ('topup', 'topup_refund', 'referral') OR topup_id IS NOT NULL),
    CHECK (kind <> 'topup' OR amount > 0),
    CHECK (kind <> 'topup_refund' OR amount < 0),
    CHECK (kind <> 'referral' OR amount > 0),
    CHECK (kind <> 'promo' OR (promo_code IS NOT NULL AND amount > 0))
);
INSERT INTO ledger_v3 (id, user_id, amount, kind, reason, order_id, sms_send_id, sms_message_id,
                       actor_id, created_at)
    SELECT id, user_id, amount, kind, reason, order_id, sms_send_id, sms_message_id, actor_id,
           created_at
    FROM ledger;
DROP TABLE ledger;
ALTER TABLE ledger_v3 RENAME TO ledger;
CREATE UNIQUE INDEX ledger_one_purchase_per_order ON ledger(order_id) WHERE kind = 'purchase';
CREATE UNIQUE INDEX ledger_one_refund_per_order ON ledger(order_id) WHERE kind = 'refund';
CREATE UNIQUE INDEX ledger_one_purchase_per_sms_send ON ledger(sms_send_id) WHERE kind = 'purchase';
CREATE UNIQUE INDEX ledger_one_refund_per_sms_message ON ledger(sms_message_id) WHERE kind = 'refund';
-- A paid top-up is credited once, refunded once, and earns its referral bonus once.
CREATE UNIQUE INDEX ledger_one_credit_per_topup ON ledger(topup_id) WHERE kind = 'topup';
CREATE UNIQUE INDEX ledger_one_refund_per_topup ON ledger(topup_id) WHERE kind = 'topup_refund';
CREATE UNIQUE INDEX ledger_one_bonus_per_topup ON ledger(topup_id) WHERE kind = 'referral';
CREATE UNIQUE INDEX ledger_one_promo_per_user ON ledger(promo_code, user_id) WHERE kind = 'promo';
CREATE INDEX ledger_user ON ledger(user_id, id);
CREATE INDEX ledger_created ON ledger(created_at);

-- Who did what, when: every admin action.
CREATE TABLE audit_log (
    id          INTEGER PRIMARY KEY,
    actor_id    INTEGER NOT NULL,
    action      TEXT    NOT NULL,                -- e.g. "addbalance", "ban", "broadcast"
    target      TEXT    NOT NULL DEFAULT '',     -- user id, order id, charge id, ...
    detail      TEXT    NOT NULL DEFAULT '',
    created_at  INTEGER NOT NULL
);
CREATE INDEX audit_log_created ON audit_log(created_at);

-- A broadcast: the admin's message copied to every active user, resumable after a restart.
CREATE TABLE broadcasts (
    id              INTEGER PRIMARY KEY,
    admin_id        INTEGER NOT NULL,
    from_chat_id    INTEGER NOT NULL,
    message_id      INTEGER NOT NULL,            -- the admin's message, copied with copyMessage
    progress_chat   INTEGER NOT NULL,
    progress_msg    INTEGER,                     -- the one progress message, edited in place
    status          TEXT    NOT NULL DEFAULT 'draft'
                    CHECK (status IN ('draft', 'running', 'cancelled', 'done')),
    total           INTEGER NOT NULL DEFAULT 0,
    created_at      INTEGER NOT NULL,
    started_at      INTEGER,
    finished_at     INTEGER
);

-- One row per recipient; a row leaves 'pending' once, so nobody gets a broadcast twice.
CREATE TABLE broadcast_deliveries (
    broadcast_id  INTEGER NOT NULL REFERENCES broadcasts(id),
    user_id       INTEGER NOT NULL,
    status        TEXT    NOT NULL DEFAULT 'pending'
                  CHECK (status IN ('pending', 'sending', 'sent', 'failed', 'blocked')),
    error         TEXT,
    updated_at    INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (broadcast_id, user_id)
);
CREATE INDEX broadcast_deliveries_pending ON broadcast_deliveries(broadcast_id, status);
