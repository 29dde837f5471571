-- Money paths hardened (issue 12): when an SMS send was charged, and every Stars charge.

-- An SMS send is `sending` from its charge until SMSPM's answer is recorded; one left there
-- longer than a grace period is settled by the sweep, which needs to know when it began.
ALTER TABLE sms_sends ADD COLUMN charged_at INTEGER;
UPDATE sms_sends SET charged_at = created_at WHERE status <> 'draft';
