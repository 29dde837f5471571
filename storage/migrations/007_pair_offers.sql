-- Offers priced one pair at a time: a route whose bulk list leaves pairs out (SMSPool's
-- suggested countries) is asked for the one pair a customer picks. looked_up marks those rows,
-- so the bulk refresh of a service keeps them until the catalog refresh period has passed.
ALTER TABLE offers ADD COLUMN looked_up INTEGER NOT NULL DEFAULT 0;

-- When each such pair was last asked, whether it sold there or not, so a pair with no offer
-- costs one request per refresh period rather than one per tap.
CREATE TABLE offer_checks (
    route       TEXT    NOT NULL,
    service_id  INTEGER NOT NULL,
    country     TEXT    NOT NULL,
    checked_at  INTEGER NOT NULL,
    PRIMARY KEY (route, service_id, country)
);
