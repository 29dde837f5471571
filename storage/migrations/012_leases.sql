-- Leases (issue 14): several instances share one database, and each live order is watched
-- (polled, expired) by exactly one of them, each singleton job runs on one of them.
-- An instance holds an order until `lease_until` (epoch seconds; ORDER_LEASE_SECONDS ahead)
-- and renews it every third of that. A lease that ran out, or whose owner is no longer in
-- the instance registry (`instances`), is free: any instance may claim it by a conditional
-- UPDATE (storage/leases.py). Closing an order releases its lease.
ALTER TABLE orders ADD COLUMN lease_owner TEXT;
ALTER TABLE orders ADD COLUMN lease_until BIGINT;
CREATE INDEX orders_live_lease_until ON orders (lease_until)
    WHERE status IN ('created', 'number_issued', 'code_received');
CREATE INDEX orders_live_lease_owner ON orders (lease_owner)
    WHERE status IN ('created', 'number_issued', 'code_received');

-- Sending a stored code is claimed the same way, so two instances never both send it.
ALTER TABLE order_codes ADD COLUMN send_owner TEXT;
ALTER TABLE order_codes ADD COLUMN send_until BIGINT;

-- SMS sends being followed (status 'sent'), or in flight ('sending'), by one instance.
ALTER TABLE sms_sends ADD COLUMN lease_owner TEXT;
ALTER TABLE sms_sends ADD COLUMN lease_until BIGINT;

-- A singleton job (catalog refresh, Crypto Pay polling, backups...) runs only on the
-- instance holding its row; the holder renews it at every run and while the run lasts.
CREATE TABLE job_leases (
    name  TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    until BIGINT NOT NULL  -- epoch seconds
);
