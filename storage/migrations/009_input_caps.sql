-- What users' taps store is capped per user and purged when it expires (issue 12, item 11):
-- the newest open quotes and SMS drafts of a user are found by these, and the scheduled purge
-- finds expired ones without scanning the tables.
CREATE INDEX quotes_open ON quotes(user_id, id) WHERE consumed_at IS NULL;
CREATE INDEX quotes_expiry ON quotes(expires_at) WHERE consumed_at IS NULL;
CREATE INDEX sms_sends_drafts ON sms_sends(quote_expires_at) WHERE status = 'draft';
