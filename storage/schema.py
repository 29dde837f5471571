"""The whole schema as SQLAlchemy Core tables: one description for SQLite and PostgreSQL.

What `storage/migrations/001..010_*.sql` built, table for table, with the same names of tables,
columns and indexes. The CHECKs and UNIQUE indexes are money rules (one purchase and one refund
per order, one credit per payment, no balance below zero): they stay in the schema, not in code.

Telegram ids, money and epoch seconds are BIGINT (PostgreSQL's INTEGER stops at 2^31). Identity
ids are `ID`: BIGINT (BIGSERIAL) on PostgreSQL, `INTEGER PRIMARY KEY` (the rowid) on SQLite, so
both assign them. Booleans are INTEGER 0/1 on both. Decimals (upstream costs) are TEXT.

Alembic's revisions (`storage/alembic/versions/`) create and change the database; this module is
what the code and `copy-db` read (and the revisions are checked against it by a test).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    Table,
    Text,
    UniqueConstraint,
    func,
    text,
)

ID = BigInteger().with_variant(Integer(), "sqlite")

metadata = MetaData()


def _where(condition: str) -> dict[str, Any]:
    """A partial index's condition, for both dialects."""
    return {"sqlite_where": text(condition), "postgresql_where": text(condition)}


def _id() -> Column[int]:
    return Column("id", ID, primary_key=True, autoincrement=True)


users = Table(
    "users",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=False),  # Telegram user id
    Column("username", Text),
    Column("first_name", Text, nullable=False, server_default=""),
    Column("language", Text),
    Column("balance", BigInteger, nullable=False, server_default="0"),
    Column("is_active", Integer, nullable=False, server_default="1"),
    Column("created_at", BigInteger, nullable=False),
    Column("referrer_id", BigInteger, ForeignKey("users.id")),
    Column("is_banned", Integer, nullable=False, server_default="0"),
    Column("locale", Text),
    Column("last_seen", BigInteger, nullable=False, server_default="0"),
    CheckConstraint("balance >= 0"),
)
Index("users_referrer", users.c.referrer_id)
Index("users_username", func.lower(users.c.username))

services = Table(
    "services",
    metadata,
    _id(),
    Column("slug", Text, nullable=False, unique=True),
    Column("name", Text, nullable=False),
)

countries = Table(
    "countries",
    metadata,
    Column("code", Text, primary_key=True),  # ISO 3166 alpha-2, or "x-<slug>" when unmapped
    Column("name", Text, nullable=False),
    Column("flag", Text, nullable=False, server_default=""),
)

route_services = Table(
    "route_services",
    metadata,
    Column("route", Text, nullable=False),
    Column("code", Text, nullable=False),
    Column("service_id", ID, ForeignKey("services.id"), nullable=False),
    PrimaryKeyConstraint("route", "code"),
)
Index("route_services_service", route_services.c.service_id, route_services.c.route)

route_countries = Table(
    "route_countries",
    metadata,
    Column("route", Text, nullable=False),
    Column("upstream_id", Text, nullable=False),
    Column("country", Text, ForeignKey("countries.code"), nullable=False),
    PrimaryKeyConstraint("route", "upstream_id"),
)

offers = Table(
    "offers",
    metadata,
    Column("route", Text, nullable=False),
    Column("service_id", ID, ForeignKey("services.id"), nullable=False),
    Column("country", Text, ForeignKey("countries.code"), nullable=False),
    Column("cost", Text, nullable=False),
    Column("stock", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
    Column("looked_up", Integer, nullable=False, server_default="0"),
    PrimaryKeyConstraint("service_id", "country", "route"),
)

offer_refresh = Table(
    "offer_refresh",
    metadata,
    Column("route", Text, nullable=False),
    Column("service_id", ID, nullable=False),
    Column("refreshed_at", BigInteger, nullable=False),
    Column("last_viewed", BigInteger, nullable=False, server_default="0"),
    PrimaryKeyConstraint("route", "service_id"),
)

offer_checks = Table(
    "offer_checks",
    metadata,
    Column("route", Text, nullable=False),
    Column("service_id", ID, nullable=False),
    Column("country", Text, nullable=False),
    Column("checked_at", BigInteger, nullable=False),
    PrimaryKeyConstraint("route", "service_id", "country"),
)

routes = Table(
    "routes",
    metadata,
    Column("route", Text, primary_key=True),
    Column("ok", Integer, nullable=False, server_default="1"),
    Column("checked_at", BigInteger, nullable=False),
    Column("error", Text),
)

quotes = Table(
    "quotes",
    metadata,
    _id(),
    Column("user_id", BigInteger, ForeignKey("users.id"), nullable=False),
    Column("route", Text, nullable=False),
    Column("service_id", ID, ForeignKey("services.id"), nullable=False),
    Column("country", Text, nullable=False),
    Column("upstream_cost", Text, nullable=False),
    Column("price", BigInteger, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("expires_at", BigInteger, nullable=False),
    Column("consumed_at", BigInteger),
    CheckConstraint("price > 0"),
)
Index("quotes_open", quotes.c.user_id, quotes.c.id, **_where("consumed_at IS NULL"))
Index("quotes_expiry", quotes.c.expires_at, **_where("consumed_at IS NULL"))

ORDER_STATUSES = (
    "'created', 'number_issued', 'code_received', 'completed', 'cancelled', 'expired', 'failed'"
)
orders = Table(
    "orders",
    metadata,
    _id(),
    Column("user_id", BigInteger, ForeignKey("users.id"), nullable=False),
    Column("quote_id", ID, ForeignKey("quotes.id"), unique=True),  # one order per quote
    Column("route", Text, nullable=False),
    Column("service_id", ID, ForeignKey("services.id"), nullable=False),
    Column("country", Text, nullable=False),
    Column("price", BigInteger, nullable=False),
    Column("upstream_cost", Text, nullable=False),
    Column("cost", BigInteger, nullable=False),
    Column("status", Text, nullable=False),
    Column("activation_id", Text),
    Column("phone", Text),
    Column("deadline", BigInteger),
    Column("error", Text),
    Column("needs_attention", Integer, nullable=False, server_default="0"),
    Column("close_attempts", Integer, nullable=False, server_default="0"),
    Column("chat_id", BigInteger),
    Column("message_id", BigInteger),
    Column("created_at", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
    Column("finished_at", BigInteger),
    # Leases (revision 0003): the instance watching a live order, until when.
    Column("lease_owner", Text),
    Column("lease_until", BigInteger),
    CheckConstraint("price > 0"),
    CheckConstraint(f"status IN ({ORDER_STATUSES})"),
)
Index("orders_user", orders.c.user_id, orders.c.id)
Index(
    "orders_live",
    orders.c.status,
    **_where("status IN ('created', 'number_issued', 'code_received')"),
)
Index("orders_created", orders.c.created_at)
Index("orders_route_activation", orders.c.route, orders.c.activation_id)
Index("orders_service", orders.c.service_id)
_LIVE = "status IN ('created', 'number_issued', 'code_received')"
Index("orders_live_lease_until", orders.c.lease_until, **_where(_LIVE))
Index("orders_live_lease_owner", orders.c.lease_owner, **_where(_LIVE))
# Popular first (revision 0004): the counts of the last 30 days' orders read only these.
Index("orders_bought_since", orders.c.created_at, orders.c.service_id)
Index("orders_service_bought", orders.c.service_id, orders.c.created_at, orders.c.country)

order_codes = Table(
    "order_codes",
    metadata,
    _id(),
    Column("order_id", ID, ForeignKey("orders.id"), nullable=False),
    Column("code", Text, nullable=False),
    Column("text", Text),
    Column("received_at", BigInteger, nullable=False),
    Column("delivered_at", BigInteger),
    Column("send_owner", Text),  # sending it is claimed (revision 0003)
    Column("send_until", BigInteger),
    UniqueConstraint("order_id", "code"),
)
Index("order_codes_undelivered", order_codes.c.order_id, **_where("delivered_at IS NULL"))

sms_sends = Table(
    "sms_sends",
    metadata,
    _id(),
    Column("user_id", BigInteger, ForeignKey("users.id"), nullable=False),
    Column("text", Text, nullable=False),
    Column("sender", Text, nullable=False),
    Column("encoding", Text, nullable=False),
    Column("segments", Integer, nullable=False),
    Column("total_price", BigInteger, nullable=False),
    Column("status", Text, nullable=False),
    Column("error", Text),
    Column("needs_attention", Integer, nullable=False, server_default="0"),
    Column("chat_id", BigInteger),
    Column("message_id", BigInteger),
    Column("quote_expires_at", BigInteger, nullable=False),
    Column("deadline", BigInteger),
    Column("created_at", BigInteger, nullable=False),
    Column("finished_at", BigInteger),
    Column("charged_at", BigInteger),
    Column("lease_owner", Text),  # the instance following it (revision 0003)
    Column("lease_until", BigInteger),
    CheckConstraint("segments > 0"),
    CheckConstraint("total_price > 0"),
    CheckConstraint("status IN ('draft', 'sending', 'sent', 'done', 'failed')"),
)
Index("sms_sends_user", sms_sends.c.user_id, sms_sends.c.id)
Index("sms_sends_live", sms_sends.c.status, **_where("status IN ('sending', 'sent')"))
Index("sms_sends_drafts", sms_sends.c.quote_expires_at, **_where("status = 'draft'"))

sms_messages = Table(
    "sms_messages",
    metadata,
    _id(),
    Column("send_id", ID, ForeignKey("sms_sends.id"), nullable=False),
    Column("to_number", Text, nullable=False),
    Column("country", Text, nullable=False),
    Column("price", BigInteger, nullable=False),
    Column("upstream_id", Text, unique=True),
    Column("status", Text, nullable=False),
    Column("cost", Text),
    Column("updated_at", BigInteger, nullable=False),
    CheckConstraint("price > 0"),
    CheckConstraint("status IN ('pending', 'queued', 'submitted', 'delivered', 'failed')"),
    UniqueConstraint("send_id", "to_number"),
)

sms_prices = Table(
    "sms_prices",
    metadata,
    Column("country", Text, primary_key=True),
    Column("price", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
    CheckConstraint("price > 0"),
)

topups = Table(
    "topups",
    metadata,
    _id(),
    Column("user_id", BigInteger, ForeignKey("users.id"), nullable=False),
    Column("method", Text, nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("pay_amount", Text, nullable=False),
    Column("pay_currency", Text, nullable=False),
    Column("status", Text, nullable=False, server_default="pending"),
    Column("external_id", Text),
    Column("pay_url", Text),
    Column("charge_id", Text, unique=True),
    Column("created_at", BigInteger, nullable=False),
    Column("expires_at", BigInteger, nullable=False),
    Column("paid_at", BigInteger),
    Column("refunded_at", BigInteger),
    CheckConstraint("method IN ('stars', 'crypto')"),
    CheckConstraint("amount > 0"),
    CheckConstraint("status IN ('pending', 'paid', 'expired', 'refunded')"),
)
Index(
    "topups_external",
    topups.c.method,
    topups.c.external_id,
    unique=True,
    **_where("external_id IS NOT NULL"),
)
Index("topups_user", topups.c.user_id, topups.c.id)
Index("topups_pending", topups.c.status, topups.c.method, **_where("status = 'pending'"))

# Codes are case-insensitive: unique by lower(code), looked up by lower(code).
promo_codes = Table(
    "promo_codes",
    metadata,
    Column("code", Text, primary_key=True),
    Column("amount", BigInteger, nullable=False),
    Column("max_uses", Integer, nullable=False),
    Column("used", Integer, nullable=False, server_default="0"),
    Column("expires_at", BigInteger),
    Column("created_by", BigInteger),
    Column("created_at", BigInteger, nullable=False),
    CheckConstraint("amount > 0"),
    CheckConstraint("max_uses > 0"),
    CheckConstraint("used <= max_uses"),
)
Index("promo_codes_lower", func.lower(promo_codes.c.code), unique=True)

promo_redemptions = Table(
    "promo_redemptions",
    metadata,
    Column("code", Text, ForeignKey("promo_codes.code"), nullable=False),
    Column("user_id", BigInteger, ForeignKey("users.id"), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    PrimaryKeyConstraint("code", "user_id"),
)

# Rentals (issue 15, revision 0002): SMSPool numbers by the day, paid from the wallet. `buying`
# from the charge until the purchase answers; `active`/`extended` are live; the rest final.
rentals = Table(
    "rentals",
    metadata,
    _id(),
    Column("user_id", BigInteger, ForeignKey("users.id"), nullable=False),
    Column("request_key", Text, nullable=False, unique=True),  # one confirm screen, one buy
    Column("offer_id", Text, nullable=False),
    Column("rental_code", Text, unique=True),
    Column("phone", Text),
    Column("country", Text, nullable=False),
    Column("extendable", Integer, nullable=False),
    Column("service_id", Text),
    Column("days", Integer, nullable=False),
    Column("price", BigInteger, nullable=False),
    Column("upstream_cost", Text, nullable=False),
    Column("cost", BigInteger, nullable=False),
    Column("pricing", Text, nullable=False),
    Column("state", Text, nullable=False),
    Column("expires_at", BigInteger),
    Column("reminded_at", BigInteger),
    Column("ended_notified", Integer, nullable=False, server_default="0"),
    Column("needs_attention", Integer, nullable=False, server_default="0"),
    Column("error", Text),
    Column("next_poll_at", BigInteger, nullable=False, server_default="0"),
    Column("chat_id", BigInteger),
    Column("message_id", BigInteger),
    Column("created_at", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
    Column("ended_at", BigInteger),
    CheckConstraint("extendable IN (0, 1)"),
    CheckConstraint("days > 0"),
    CheckConstraint("price > 0"),
    CheckConstraint("state IN ('buying', 'active', 'extended', 'refunded', 'expired', 'failed')"),
    CheckConstraint("ended_notified IN (0, 1)"),
    CheckConstraint("needs_attention IN (0, 1)"),
)
Index("rentals_user", rentals.c.user_id, rentals.c.id)
Index("rentals_due", rentals.c.next_poll_at, **_where("state IN ('active', 'extended')"))
Index("rentals_buying", rentals.c.created_at, **_where("state = 'buying'"))

# Every SMS a rented number received, once (a sender's lease in `claimed_until`).
rental_messages = Table(
    "rental_messages",
    metadata,
    _id(),
    Column("rental_id", ID, ForeignKey("rentals.id"), nullable=False),
    Column("digest", Text, nullable=False),
    Column("sent_at", Text, nullable=False),
    Column("sender", Text),
    Column("text", Text, nullable=False),
    Column("received_at", BigInteger, nullable=False),
    Column("claimed_until", BigInteger),
    Column("forwarded_at", BigInteger),
    UniqueConstraint("rental_id", "digest"),
)
Index(
    "rental_messages_unforwarded",
    rental_messages.c.rental_id,
    **_where("forwarded_at IS NULL"),
)

# Extensions: one pending per rental.
rental_extensions = Table(
    "rental_extensions",
    metadata,
    _id(),
    Column("rental_id", ID, ForeignKey("rentals.id"), nullable=False),
    Column("seq", Integer, nullable=False),
    Column("days", Integer, nullable=False),
    Column("price", BigInteger, nullable=False),
    Column("upstream_cost", Text, nullable=False),
    Column("cost", BigInteger, nullable=False),
    Column("state", Text, nullable=False),
    Column("error", Text),
    Column("created_at", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
    CheckConstraint("seq > 0"),
    CheckConstraint("days > 0"),
    CheckConstraint("price > 0"),
    CheckConstraint("state IN ('pending', 'done', 'refused', 'unknown')"),
    UniqueConstraint("rental_id", "seq"),
)
Index(
    "rental_extensions_one_pending",
    rental_extensions.c.rental_id,
    unique=True,
    **_where("state = 'pending'"),
)

LEDGER_KINDS = (
    "'credit', 'purchase', 'refund', 'adjustment', 'topup', 'topup_refund', 'promo', 'referral', "
    "'rental', 'rental_extend', 'rental_refund'"
)
ledger = Table(
    "ledger",
    metadata,
    _id(),
    Column("user_id", BigInteger, ForeignKey("users.id"), nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("kind", Text, nullable=False),
    Column("reason", Text, nullable=False, server_default=""),
    Column("order_id", ID, ForeignKey("orders.id")),
    Column("sms_send_id", ID, ForeignKey("sms_sends.id")),
    Column("sms_message_id", ID, ForeignKey("sms_messages.id")),
    Column("topup_id", ID, ForeignKey("topups.id")),
    Column("promo_code", Text),
    Column("rental_id", ID, ForeignKey("rentals.id")),
    Column("rental_extension_id", ID, ForeignKey("rental_extensions.id")),
    Column("actor_id", BigInteger),
    Column("created_at", BigInteger, nullable=False),
    CheckConstraint("amount <> 0"),
    CheckConstraint(f"kind IN ({LEDGER_KINDS})"),
    CheckConstraint(
        "kind NOT IN ('purchase', 'refund') OR (CASE WHEN order_id IS NULL THEN 0 ELSE 1 END)"
        " + (CASE WHEN sms_send_id IS NULL THEN 0 ELSE 1 END) = 1"
    ),
    CheckConstraint("kind <> 'refund' OR sms_send_id IS NULL OR sms_message_id IS NOT NULL"),
    CheckConstraint("kind <> 'purchase' OR amount < 0"),
    CheckConstraint("kind <> 'refund' OR amount > 0"),
    CheckConstraint("kind NOT IN ('topup', 'topup_refund', 'referral') OR topup_id IS NOT NULL"),
    CheckConstraint("kind <> 'topup' OR amount > 0"),
    CheckConstraint("kind <> 'topup_refund' OR amount < 0"),
    CheckConstraint("kind <> 'referral' OR amount > 0"),
    CheckConstraint("kind <> 'promo' OR (promo_code IS NOT NULL AND amount > 0)"),
    CheckConstraint(
        "kind NOT IN ('rental', 'rental_extend', 'rental_refund') OR rental_id IS NOT NULL"
    ),
    CheckConstraint("kind <> 'rental' OR (amount < 0 AND rental_extension_id IS NULL)"),
    CheckConstraint("kind <> 'rental_extend' OR (amount < 0 AND rental_extension_id IS NOT NULL)"),
    CheckConstraint("kind <> 'rental_refund' OR amount > 0"),
)
for _name, _column, _kind in (
    ("ledger_one_purchase_per_order", ledger.c.order_id, "purchase"),
    ("ledger_one_refund_per_order", ledger.c.order_id, "refund"),
    ("ledger_one_purchase_per_sms_send", ledger.c.sms_send_id, "purchase"),
    ("ledger_one_refund_per_sms_message", ledger.c.sms_message_id, "refund"),
    # A paid top-up is credited once, refunded once, and earns its referral bonus once.
    ("ledger_one_credit_per_topup", ledger.c.topup_id, "topup"),
    ("ledger_one_refund_per_topup", ledger.c.topup_id, "topup_refund"),
    ("ledger_one_bonus_per_topup", ledger.c.topup_id, "referral"),
):
    Index(_name, _column, unique=True, **_where(f"kind = '{_kind}'"))
Index(
    "ledger_one_promo_per_user",
    ledger.c.promo_code,
    ledger.c.user_id,
    unique=True,
    **_where("kind = 'promo'"),
)
# A rental is paid once, each extension charged once and refunded at most once, and the
# rental as a whole refunded at most once (an extension's own refund names the extension).
Index(
    "ledger_one_payment_per_rental", ledger.c.rental_id, unique=True, **_where("kind = 'rental'")
)
Index(
    "ledger_one_charge_per_rental_extension",
    ledger.c.rental_extension_id,
    unique=True,
    **_where("kind = 'rental_extend'"),
)
Index(
    "ledger_one_refund_per_rental_extension",
    ledger.c.rental_extension_id,
    unique=True,
    **_where("kind = 'rental_refund'"),
)
Index(
    "ledger_one_refund_per_rental",
    ledger.c.rental_id,
    unique=True,
    **_where("kind = 'rental_refund' AND rental_extension_id IS NULL"),
)
Index("ledger_user", ledger.c.user_id, ledger.c.id)
Index("ledger_created", ledger.c.created_at)
Index("ledger_rental", ledger.c.rental_id, **_where("rental_id IS NOT NULL"))

kv = Table(
    "kv",
    metadata,
    Column("key", Text, primary_key=True),
    Column("value", Text, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
)

fsm = Table(
    "fsm",
    metadata,
    Column("key", Text, primary_key=True),
    Column("state", Text),
    Column("data", Text, nullable=False, server_default="{}"),
)

markups = Table(
    "markups",
    metadata,
    Column("provider", Text, nullable=False, server_default=""),
    Column("service_id", ID, nullable=False, server_default="0"),
    Column("percent", Text, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
    PrimaryKeyConstraint("provider", "service_id"),
)

stock_watches = Table(
    "stock_watches",
    metadata,
    Column("user_id", BigInteger, ForeignKey("users.id"), nullable=False),
    Column("service_id", ID, ForeignKey("services.id"), nullable=False),
    Column("country", Text, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    PrimaryKeyConstraint("user_id", "service_id", "country"),
)

upstream_events = Table(
    "upstream_events",
    metadata,
    Column("route", Text, nullable=False),
    Column("event_key", Text, nullable=False),
    Column("activation_id", Text, nullable=False),
    Column("received_at", BigInteger, nullable=False),
    PrimaryKeyConstraint("route", "event_key"),
)

audit_log = Table(
    "audit_log",
    metadata,
    _id(),
    Column("actor_id", BigInteger, nullable=False),
    Column("action", Text, nullable=False),
    Column("target", Text, nullable=False, server_default=""),
    Column("detail", Text, nullable=False, server_default=""),
    Column("created_at", BigInteger, nullable=False),
)
Index("audit_log_created", audit_log.c.created_at)
Index("audit_log_action_target", audit_log.c.action, audit_log.c.target)

broadcasts = Table(
    "broadcasts",
    metadata,
    _id(),
    Column("admin_id", BigInteger, nullable=False),
    Column("from_chat_id", BigInteger, nullable=False),
    Column("message_id", BigInteger, nullable=False),
    Column("progress_chat", BigInteger, nullable=False),
    Column("progress_msg", BigInteger),
    Column("status", Text, nullable=False, server_default="draft"),
    Column("total", BigInteger, nullable=False, server_default="0"),
    Column("created_at", BigInteger, nullable=False),
    Column("started_at", BigInteger),
    Column("finished_at", BigInteger),
    CheckConstraint("status IN ('draft', 'running', 'cancelled', 'done')"),
)

broadcast_deliveries = Table(
    "broadcast_deliveries",
    metadata,
    Column("broadcast_id", ID, ForeignKey("broadcasts.id"), nullable=False),
    Column("user_id", BigInteger, nullable=False),
    Column("status", Text, nullable=False, server_default="pending"),
    Column("error", Text),
    Column("updated_at", BigInteger, nullable=False, server_default="0"),
    PrimaryKeyConstraint("broadcast_id", "user_id"),
    CheckConstraint("status IN ('pending', 'sending', 'sent', 'failed', 'blocked')"),
)
Index(
    "broadcast_deliveries_pending",
    broadcast_deliveries.c.broadcast_id,
    broadcast_deliveries.c.status,
)

balance_snapshots = Table(
    "balance_snapshots",
    metadata,
    Column("account", Text, nullable=False),
    Column("currency", Text, nullable=False),
    Column("amount", Text, nullable=False),
    Column("taken_at", BigInteger, nullable=False),
    PrimaryKeyConstraint("account", "taken_at"),
)

star_charges = Table(
    "star_charges",
    metadata,
    Column("charge_id", Text, primary_key=True),  # telegram_payment_charge_id
    Column("user_id", BigInteger, ForeignKey("users.id"), nullable=False),
    Column("topup_id", ID, ForeignKey("topups.id")),
    Column("stars", BigInteger, nullable=False),
    Column("currency", Text, nullable=False),
    Column("payload", Text, nullable=False),
    Column("status", Text, nullable=False),
    Column("reason", Text),
    Column("error", Text),
    Column("created_at", BigInteger, nullable=False),
    Column("settled_at", BigInteger),
    CheckConstraint("status IN ('credited', 'refund_due', 'refunded', 'refund_failed')"),
    CheckConstraint("reason IN ('duplicate', 'unmatched')"),
    CheckConstraint("(status = 'credited') = (reason IS NULL)"),
    CheckConstraint("status <> 'credited' OR topup_id IS NOT NULL"),
)
# A top-up is credited by one charge at most.
Index(
    "star_charges_one_credit_per_topup",
    star_charges.c.topup_id,
    unique=True,
    **_where("status = 'credited'"),
)
Index(
    "star_charges_open",
    star_charges.c.status,
    star_charges.c.created_at,
    **_where("status IN ('refund_due', 'refund_failed')"),
)

star_refunds = Table(
    "star_refunds",
    metadata,
    Column("charge_id", Text, primary_key=True),  # may name a charge we never recorded
    Column("user_id", BigInteger, nullable=False),
    Column("stars", BigInteger, nullable=False),
    Column("debited", BigInteger, nullable=False, server_default="0"),
    Column("shortfall", BigInteger, nullable=False, server_default="0"),
    Column("created_at", BigInteger, nullable=False),
    CheckConstraint("debited >= 0"),
    CheckConstraint("shortfall >= 0"),
)

instances = Table(
    "instances",
    metadata,
    Column("id", Text, primary_key=True),
    Column("host", Text, nullable=False),
    Column("node", Text, nullable=False),
    Column("pid", BigInteger, nullable=False),
    Column("shared", Integer, nullable=False),
    Column("started_at", BigInteger, nullable=False),
    Column("seen_at", BigInteger, nullable=False),
    CheckConstraint("shared IN (0, 1)"),
)

# A singleton job runs only on the instance holding its row (revision 0003).
job_leases = Table(
    "job_leases",
    metadata,
    Column("name", Text, primary_key=True),
    Column("owner", Text, nullable=False),
    Column("until", BigInteger, nullable=False),  # epoch seconds
)
