-- Markup overrides: per provider, per service, or both ('' / 0 mean "any").
CREATE TABLE markups (
    provider    TEXT    NOT NULL DEFAULT '',
    service_id  INTEGER NOT NULL DEFAULT 0,
    percent     TEXT    NOT NULL,
    updated_at  INTEGER NOT NULL,
    PRIMARY KEY (provider, service_id)
);

-- "Tell me when it is in stock": one message per watch, then the watch is gone.
CREATE TABLE stock_watches (
    user_id     INTEGER NOT NULL REFERENCES users(id),
    service_id  INTEGER NOT NULL REFERENCES services(id),
    country     TEXT    NOT NULL,
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (user_id, service_id, country)
);

-- Upstream push events (PapSMS webhooks), stored once per event.
CREATE TABLE upstream_events (
    route        TEXT    NOT NULL,
    event_key    TEXT    NOT NULL,
    activation_id TEXT   NOT NULL,
    received_at  INTEGER NOT NULL,
    PRIMARY KEY (route, event_key)
);

CREATE INDEX orders_route_activation ON orders(route, activation_id);
CREATE INDEX orders_service ON orders(service_id);
