-- Money paths hardened (issue 12): when an SMS send was charged, and every Stars charge.

-- An SMS send is `sending` from its charge until SMSPM's answer is recorded; one left there
-- longer than a grace period is settled by the sweep, which needs to know when it began.
ALTER TABLE sms_sends ADD COLUMN charged_at INTEGER;
UPDATE sms_sends SET charged_at = created_at WHERE status <> 'draft';

-- Every Stars payment Telegram reported (successful_payment), by its charge id, and how it
-- ended: credited to the top-up its payload names, or refunded with refundStarPayment (a second
-- payment of one invoice, or one that matches no top-up of the payer). `refund_due`: the refund
-- got no answer yet (retried); `refund_failed`: Telegram refused it (/refundstars finishes it).
CREATE TABLE star_charges (
    charge_id   TEXT    PRIMARY KEY,                 -- telegram_payment_charge_id
    user_id     INTEGER NOT NULL REFERENCES users(id),
    topup_id    INTEGER REFERENCES topups(id),       -- the payer's top-up its payload names
    stars       INTEGER NOT NULL,                    -- total_amount
    currency    TEXT    NOT NULL,
    payload     TEXT    NOT NULL,
    status      TEXT    NOT NULL CHECK (status IN
                    ('credited', 'refund_due', 'refunded', 'refund_failed')),
    reason      TEXT    CHECK (reason IN ('duplicate', 'unmatched')),
    error       TEXT,                                -- Telegram's words on a failed refund
    created_at  INTEGER NOT NULL,
    settled_at  INTEGER,
    CHECK ((status = 'credited') = (reason IS NULL)),
    CHECK (status <> 'credited' OR topup_id IS NOT NULL)
);
-- A top-up is credited by one charge at most.
CREATE UNIQUE INDEX star_charges_one_credit_per_topup ON star_charges(topup_id)
    WHERE status = 'credited';
CREATE INDEX star_charges_open ON star_charges(status, created_at)
    WHERE status IN ('refund_due', 'refund_failed');
-- Charges credited before this table existed.
INSERT INTO star_charges (charge_id, user_id, topup_id, stars, currency, payload, status,
                          created_at, settled_at)
    SELECT charge_id, user_id, id, CAST(pay_amount AS INTEGER), pay_currency, 't:' || id,
           'credited', COALESCE(paid_at, created_at), paid_at
    FROM topups WHERE method = 'stars' AND charge_id IS NOT NULL;

-- Telegram's refunded_payment messages: one per charge (the primary key), with what it took
-- from the wallet (`debited`) and what the balance no longer covered (`shortfall`).
CREATE TABLE star_refunds (
    charge_id   TEXT    PRIMARY KEY,                 -- may name a charge we never recorded
    user_id     INTEGER NOT NULL,
    stars       INTEGER NOT NULL,
    debited     INTEGER NOT NULL DEFAULT 0 CHECK (debited >= 0),
    shortfall   INTEGER NOT NULL DEFAULT 0 CHECK (shortfall >= 0),
    created_at  INTEGER NOT NULL
);
