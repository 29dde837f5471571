"""Baseline: the schema that the plain-SQL migrations 001..010 built (see storage/schema.py).

A SQLite database made by those migrations is stamped with this revision instead of running it
(storage/migrate.py).

Revision ID: 0001
Revises:
Create Date: 2026-12-02 12:59:16.926370
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "audit_log",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("actor_id", sa.BigInteger(), nullable=False),
        sa.Column("action", sa.Text(), nullable=False),
        sa.Column("target", sa.Text(), server_default="", nullable=False),
        sa.Column("detail", sa.Text(), server_default="", nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("audit_log_action_target", "audit_log", ["action", "target"], unique=False)
    op.create_index("audit_log_created", "audit_log", ["created_at"], unique=False)
    op.create_table(
        "balance_snapshots",
        sa.Column("account", sa.Text(), nullable=False),
        sa.Column("currency", sa.Text(), nullable=False),
        sa.Column("amount", sa.Text(), nullable=False),
        sa.Column("taken_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("account", "taken_at"),
    )
    op.create_table(
        "broadcasts",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("admin_id", sa.BigInteger(), nullable=False),
        sa.Column("from_chat_id", sa.BigInteger(), nullable=False),
        sa.Column("message_id", sa.BigInteger(), nullable=False),
        sa.Column("progress_chat", sa.BigInteger(), nullable=False),
        sa.Column("progress_msg", sa.BigInteger(), nullable=True),
        sa.Column("status", sa.Text(), server_default="draft", nullable=False),
        sa.Column("total", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("started_at", sa.BigInteger(), nullable=True),
        sa.Column("finished_at", sa.BigInteger(), nullable=True),
        sa.CheckConstraint("status IN ('draft', 'running', 'cancelled', 'done')"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "countries",
        sa.Column("code", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("flag", sa.Text(), server_default="", nullable=False),
        sa.PrimaryKeyConstraint("code"),
    )
    op.create_table(
        "fsm",
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("state", sa.Text(), nullable=True),
        sa.Column("data", sa.Text(), server_default="{}", nullable=False),
        sa.PrimaryKeyConstraint("key"),
    )
    op.create_table(
        "instances",
        sa.Column("id", sa.Text(), nullable=False),
        sa.Column("host", sa.Text(), nullable=False),
        sa.Column("node", sa.Text(), nullable=False),
        sa.Column("pid", sa.BigInteger(), nullable=False),
        sa.Column("shared", sa.Integer(), nullable=False),
        sa.Column("started_at", sa.BigInteger(), nullable=False),
        sa.Column("seen_at", sa.BigInteger(), nullable=False),
        sa.CheckConstraint("shared IN (0, 1)"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "kv",
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("key"),
    )
    op.create_table(
        "markups",
        sa.Column("provider", sa.Text(), server_default="", nullable=False),
        sa.Column(
            "service_id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            server_default="0",
            nullable=False,
        ),
        sa.Column("percent", sa.Text(), nullable=False),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("provider", "service_id"),
    )
    op.create_table(
        "offer_checks",
        sa.Column("route", sa.Text(), nullable=False),
        sa.Column(
            "service_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("country", sa.Text(), nullable=False),
        sa.Column("checked_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("route", "service_id", "country"),
    )
    op.create_table(
        "offer_refresh",
        sa.Column("route", sa.Text(), nullable=False),
        sa.Column(
            "service_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("refreshed_at", sa.BigInteger(), nullable=False),
        sa.Column("last_viewed", sa.BigInteger(), server_default="0", nullable=False),
        sa.PrimaryKeyConstraint("route", "service_id"),
    )
    op.create_table(
        "promo_codes",
        sa.Column("code", sa.Text(), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("max_uses", sa.Integer(), nullable=False),
        sa.Column("used", sa.Integer(), server_default="0", nullable=False),
        sa.Column("expires_at", sa.BigInteger(), nullable=True),
        sa.Column("created_by", sa.BigInteger(), nullable=True),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.CheckConstraint("amount > 0"),
        sa.CheckConstraint("max_uses > 0"),
        sa.CheckConstraint("used <= max_uses"),
        sa.PrimaryKeyConstraint("code"),
    )
    op.create_index(
        "promo_codes_lower", "promo_codes", [sa.literal_column("lower(code)")], unique=True
    )
    op.create_table(
        "routes",
        sa.Column("route", sa.Text(), nullable=False),
        sa.Column("ok", sa.Integer(), server_default="1", nullable=False),
        sa.Column("checked_at", sa.BigInteger(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("route"),
    )
    op.create_table(
        "services",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("slug", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("slug"),
    )
    op.create_table(
        "sms_prices",
        sa.Column("country", sa.Text(), nullable=False),
        sa.Column("price", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.CheckConstraint("price > 0"),
        sa.PrimaryKeyConstraint("country"),
    )
    op.create_table(
        "star_refunds",
        sa.Column("charge_id", sa.Text(), nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("stars", sa.BigInteger(), nullable=False),
        sa.Column("debited", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("shortfall", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.CheckConstraint("debited >= 0"),
        sa.CheckConstraint("shortfall >= 0"),
        sa.PrimaryKeyConstraint("charge_id"),
    )
    op.create_table(
        "upstream_events",
        sa.Column("route", sa.Text(), nullable=False),
        sa.Column("event_key", sa.Text(), nullable=False),
        sa.Column("activation_id", sa.Text(), nullable=False),
        sa.Column("received_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("route", "event_key"),
    )
    op.create_table(
        "users",
        sa.Column("id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("username", sa.Text(), nullable=True),
        sa.Column("first_name", sa.Text(), server_default="", nullable=False),
        sa.Column("language", sa.Text(), nullable=True),
        sa.Column("balance", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("is_active", sa.Integer(), server_default="1", nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("referrer_id", sa.BigInteger(), nullable=True),
        sa.Column("is_banned", sa.Integer(), server_default="0", nullable=False),
        sa.Column("locale", sa.Text(), nullable=True),
        sa.Column("last_seen", sa.BigInteger(), server_default="0", nullable=False),
        sa.CheckConstraint("balance >= 0"),
        sa.ForeignKeyConstraint(
            ["referrer_id"],
            ["users.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("users_referrer", "users", ["referrer_id"], unique=False)
    op.create_index(
        "users_username", "users", [sa.literal_column("lower(username)")], unique=False
    )
    op.create_table(
        "broadcast_deliveries",
        sa.Column(
            "broadcast_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.Text(), server_default="pending", nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("updated_at", sa.BigInteger(), server_default="0", nullable=False),
        sa.CheckConstraint("status IN ('pending', 'sending', 'sent', 'failed', 'blocked')"),
        sa.ForeignKeyConstraint(
            ["broadcast_id"],
            ["broadcasts.id"],
        ),
        sa.PrimaryKeyConstraint("broadcast_id", "user_id"),
    )
    op.create_index(
        "broadcast_deliveries_pending",
        "broadcast_deliveries",
        ["broadcast_id", "status"],
        unique=False,
    )
    op.create_table(
        "offers",
        sa.Column("route", sa.Text(), nullable=False),
        sa.Column(
            "service_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("country", sa.Text(), nullable=False),
        sa.Column("cost", sa.Text(), nullable=False),
        sa.Column("stock", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.Column("looked_up", sa.Integer(), server_default="0", nullable=False),
        sa.ForeignKeyConstraint(
            ["country"],
            ["countries.code"],
        ),
        sa.ForeignKeyConstraint(
            ["service_id"],
            ["services.id"],
        ),
        sa.PrimaryKeyConstraint("service_id", "country", "route"),
    )
    op.create_table(
        "promo_redemptions",
        sa.Column("code", sa.Text(), nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["code"],
            ["promo_codes.code"],
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
        ),
        sa.PrimaryKeyConstraint("code", "user_id"),
    )
    op.create_table(
        "quotes",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("route", sa.Text(), nullable=False),
        sa.Column(
            "service_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("country", sa.Text(), nullable=False),
        sa.Column("upstream_cost", sa.Text(), nullable=False),
        sa.Column("price", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("expires_at", sa.BigInteger(), nullable=False),
        sa.Column("consumed_at", sa.BigInteger(), nullable=True),
        sa.CheckConstraint("price > 0"),
        sa.ForeignKeyConstraint(
            ["service_id"],
            ["services.id"],
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "quotes_expiry",
        "quotes",
        ["expires_at"],
        unique=False,
        sqlite_where=sa.text("consumed_at IS NULL"),
        postgresql_where=sa.text("consumed_at IS NULL"),
    )
    op.create_index(
        "quotes_open",
        "quotes",
        ["user_id", "id"],
        unique=False,
        sqlite_where=sa.text("consumed_at IS NULL"),
        postgresql_where=sa.text("consumed_at IS NULL"),
    )
    op.create_table(
        "route_countries",
        sa.Column("route", sa.Text(), nullable=False),
        sa.Column("upstream_id", sa.Text(), nullable=False),
        sa.Column("country", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["country"],
            ["countries.code"],
        ),
        sa.PrimaryKeyConstraint("route", "upstream_id"),
    )
    op.create_table(
        "route_services",
        sa.Column("route", sa.Text(), nullable=False),
        sa.Column("code", sa.Text(), nullable=False),
        sa.Column(
            "service_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.ForeignKeyConstraint(
            ["service_id"],
            ["services.id"],
        ),
        sa.PrimaryKeyConstraint("route", "code"),
    )
    op.create_index(
        "route_services_service", "route_services", ["service_id", "route"], unique=False
    )
    op.create_table(
        "sms_sends",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("sender", sa.Text(), nullable=False),
        sa.Column("encoding", sa.Text(), nullable=False),
        sa.Column("segments", sa.Integer(), nullable=False),
        sa.Column("total_price", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("needs_attention", sa.Integer(), server_default="0", nullable=False),
        sa.Column("chat_id", sa.BigInteger(), nullable=True),
        sa.Column("message_id", sa.BigInteger(), nullable=True),
        sa.Column("quote_expires_at", sa.BigInteger(), nullable=False),
        sa.Column("deadline", sa.BigInteger(), nullable=True),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("finished_at", sa.BigInteger(), nullable=True),
        sa.Column("charged_at", sa.BigInteger(), nullable=True),
        sa.CheckConstraint("status IN ('draft', 'sending', 'sent', 'done', 'failed')"),
        sa.CheckConstraint("segments > 0"),
        sa.CheckConstraint("total_price > 0"),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "sms_sends_drafts",
        "sms_sends",
        ["quote_expires_at"],
        unique=False,
        sqlite_where=sa.text("status = 'draft'"),
        postgresql_where=sa.text("status = 'draft'"),
    )
    op.create_index(
        "sms_sends_live",
        "sms_sends",
        ["status"],
        unique=False,
        sqlite_where=sa.text("status IN ('sending', 'sent')"),
        postgresql_where=sa.text("status IN ('sending', 'sent')"),
    )
    op.create_index("sms_sends_user", "sms_sends", ["user_id", "id"], unique=False)
    op.create_table(
        "stock_watches",
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column(
            "service_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("country", sa.Text(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["service_id"],
            ["services.id"],
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
        ),
        sa.PrimaryKeyConstraint("user_id", "service_id", "country"),
    )
    op.create_table(
        "topups",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("method", sa.Text(), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("pay_amount", sa.Text(), nullable=False),
        sa.Column("pay_currency", sa.Text(), nullable=False),
        sa.Column("status", sa.Text(), server_default="pending", nullable=False),
        sa.Column("external_id", sa.Text(), nullable=True),
        sa.Column("pay_url", sa.Text(), nullable=True),
        sa.Column("charge_id", sa.Text(), nullable=True),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("expires_at", sa.BigInteger(), nullable=False),
        sa.Column("paid_at", sa.BigInteger(), nullable=True),
        sa.Column("refunded_at", sa.BigInteger(), nullable=True),
        sa.CheckConstraint("method IN ('stars', 'crypto')"),
        sa.CheckConstraint("status IN ('pending', 'paid', 'expired', 'refunded')"),
        sa.CheckConstraint("amount > 0"),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("charge_id"),
    )
    op.create_index(
        "topups_external",
        "topups",
        ["method", "external_id"],
        unique=True,
        sqlite_where=sa.text("external_id IS NOT NULL"),
        postgresql_where=sa.text("external_id IS NOT NULL"),
    )
    op.create_index(
        "topups_pending",
        "topups",
        ["status", "method"],
        unique=False,
        sqlite_where=sa.text("status = 'pending'"),
        postgresql_where=sa.text("status = 'pending'"),
    )
    op.create_index("topups_user", "topups", ["user_id", "id"], unique=False)
    op.create_table(
        "orders",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("quote_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("route", sa.Text(), nullable=False),
        sa.Column(
            "service_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("country", sa.Text(), nullable=False),
        sa.Column("price", sa.BigInteger(), nullable=False),
        sa.Column("upstream_cost", sa.Text(), nullable=False),
        sa.Column("cost", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("activation_id", sa.Text(), nullable=True),
        sa.Column("phone", sa.Text(), nullable=True),
        sa.Column("deadline", sa.BigInteger(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("needs_attention", sa.Integer(), server_default="0", nullable=False),
        sa.Column("close_attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("chat_id", sa.BigInteger(), nullable=True),
        sa.Column("message_id", sa.BigInteger(), nullable=True),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.Column("finished_at", sa.BigInteger(), nullable=True),
        sa.CheckConstraint(
            "status IN ('created', 'number_issued', 'code_received', "
            "'completed', 'cancelled', 'expired', 'failed')"
        ),
        sa.CheckConstraint("price > 0"),
        sa.ForeignKeyConstraint(
            ["quote_id"],
            ["quotes.id"],
        ),
        sa.ForeignKeyConstraint(
            ["service_id"],
            ["services.id"],
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("quote_id"),
    )
    op.create_index("orders_created", "orders", ["created_at"], unique=False)
    op.create_index(
        "orders_live",
        "orders",
        ["status"],
        unique=False,
        sqlite_where=sa.text("status IN ('created', 'number_issued', 'code_received')"),
        postgresql_where=sa.text("status IN ('created', 'number_issued', 'code_received')"),
    )
    op.create_index("orders_route_activation", "orders", ["route", "activation_id"], unique=False)
    op.create_index("orders_service", "orders", ["service_id"], unique=False)
    op.create_index("orders_user", "orders", ["user_id", "id"], unique=False)
    op.create_table(
        "sms_messages",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("send_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("to_number", sa.Text(), nullable=False),
        sa.Column("country", sa.Text(), nullable=False),
        sa.Column("price", sa.BigInteger(), nullable=False),
        sa.Column("upstream_id", sa.Text(), nullable=True),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("cost", sa.Text(), nullable=True),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.CheckConstraint("status IN ('pending', 'queued', 'submitted', 'delivered', 'failed')"),
        sa.CheckConstraint("price > 0"),
        sa.ForeignKeyConstraint(
            ["send_id"],
            ["sms_sends.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("send_id", "to_number"),
        sa.UniqueConstraint("upstream_id"),
    )
    op.create_table(
        "star_charges",
        sa.Column("charge_id", sa.Text(), nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("topup_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("stars", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.Text(), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("settled_at", sa.BigInteger(), nullable=True),
        sa.CheckConstraint("(status = 'credited') = (reason IS NULL)"),
        sa.CheckConstraint("reason IN ('duplicate', 'unmatched')"),
        sa.CheckConstraint("status <> 'credited' OR topup_id IS NOT NULL"),
        sa.CheckConstraint("status IN ('credited', 'refund_due', 'refunded', 'refund_failed')"),
        sa.ForeignKeyConstraint(
            ["topup_id"],
            ["topups.id"],
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
        ),
        sa.PrimaryKeyConstraint("charge_id"),
    )
    op.create_index(
        "star_charges_one_credit_per_topup",
        "star_charges",
        ["topup_id"],
        unique=True,
        sqlite_where=sa.text("status = 'credited'"),
        postgresql_where=sa.text("status = 'credited'"),
    )
    op.create_index(
        "star_charges_open",
        "star_charges",
        ["status", "created_at"],
        unique=False,
        sqlite_where=sa.text("status IN ('refund_due', 'refund_failed')"),
        postgresql_where=sa.text("status IN ('refund_due', 'refund_failed')"),
    )
    op.create_table(
        "ledger",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("reason", sa.Text(), server_default="", nullable=False),
        sa.Column("order_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column(
            "sms_send_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True
        ),
        sa.Column(
            "sms_message_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True
        ),
        sa.Column("topup_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("promo_code", sa.Text(), nullable=True),
        sa.Column("actor_id", sa.BigInteger(), nullable=True),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.CheckConstraint("kind <> 'promo' OR (promo_code IS NOT NULL AND amount > 0)"),
        sa.CheckConstraint("kind <> 'purchase' OR amount < 0"),
        sa.CheckConstraint("kind <> 'referral' OR amount > 0"),
        sa.CheckConstraint("kind <> 'refund' OR amount > 0"),
        sa.CheckConstraint(
            "kind <> 'refund' OR sms_send_id IS NULL OR sms_message_id IS NOT NULL"
        ),
        sa.CheckConstraint("kind <> 'topup' OR amount > 0"),
        sa.CheckConstraint("kind <> 'topup_refund' OR amount < 0"),
        sa.CheckConstraint(
            "kind IN ('credit', 'purchase', 'refund', 'adjustment', "
            "'topup', 'topup_refund', 'promo', 'referral')"
        ),
        sa.CheckConstraint(
            "kind NOT IN ('purchase', 'refund') OR (CASE WHEN order_id IS NULL THEN 0 ELSE 1 END)"
            " + (CASE WHEN sms_send_id IS NULL THEN 0 ELSE 1 END) = 1"
        ),
        sa.CheckConstraint(
            "kind NOT IN ('topup', 'topup_refund', 'referral') OR topup_id IS NOT NULL"
        ),
        sa.CheckConstraint("amount <> 0"),
        sa.ForeignKeyConstraint(
            ["order_id"],
            ["orders.id"],
        ),
        sa.ForeignKeyConstraint(
            ["sms_message_id"],
            ["sms_messages.id"],
        ),
        sa.ForeignKeyConstraint(
            ["sms_send_id"],
            ["sms_sends.id"],
        ),
        sa.ForeignKeyConstraint(
            ["topup_id"],
            ["topups.id"],
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ledger_created", "ledger", ["created_at"], unique=False)
    op.create_index(
        "ledger_one_bonus_per_topup",
        "ledger",
        ["topup_id"],
        unique=True,
        sqlite_where=sa.text("kind = 'referral'"),
        postgresql_where=sa.text("kind = 'referral'"),
    )
    op.create_index(
        "ledger_one_credit_per_topup",
        "ledger",
        ["topup_id"],
        unique=True,
        sqlite_where=sa.text("kind = 'topup'"),
        postgresql_where=sa.text("kind = 'topup'"),
    )
    op.create_index(
        "ledger_one_promo_per_user",
        "ledger",
        ["promo_code", "user_id"],
        unique=True,
        sqlite_where=sa.text("kind = 'promo'"),
        postgresql_where=sa.text("kind = 'promo'"),
    )
    op.create_index(
        "ledger_one_purchase_per_order",
        "ledger",
        ["order_id"],
        unique=True,
        sqlite_where=sa.text("kind = 'purchase'"),
        postgresql_where=sa.text("kind = 'purchase'"),
    )
    op.create_index(
        "ledger_one_purchase_per_sms_send",
        "ledger",
        ["sms_send_id"],
        unique=True,
        sqlite_where=sa.text("kind = 'purchase'"),
        postgresql_where=sa.text("kind = 'purchase'"),
    )
    op.create_index(
        "ledger_one_refund_per_order",
        "ledger",
        ["order_id"],
        unique=True,
        sqlite_where=sa.text("kind = 'refund'"),
        postgresql_where=sa.text("kind = 'refund'"),
    )
    op.create_index(
        "ledger_one_refund_per_sms_message",
        "ledger",
        ["sms_message_id"],
        unique=True,
        sqlite_where=sa.text("kind = 'refund'"),
        postgresql_where=sa.text("kind = 'refund'"),
    )
    op.create_index(
        "ledger_one_refund_per_topup",
        "ledger",
        ["topup_id"],
        unique=True,
        sqlite_where=sa.text("kind = 'topup_refund'"),
        postgresql_where=sa.text("kind = 'topup_refund'"),
    )
    op.create_index("ledger_user", "ledger", ["user_id", "id"], unique=False)
    op.create_table(
        "order_codes",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column(
            "order_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("code", sa.Text(), nullable=False),
        sa.Column("text", sa.Text(), nullable=True),
        sa.Column("received_at", sa.BigInteger(), nullable=False),
        sa.Column("delivered_at", sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(
            ["order_id"],
            ["orders.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("order_id", "code"),
    )
    op.create_index(
        "order_codes_undelivered",
        "order_codes",
        ["order_id"],
        unique=False,
        sqlite_where=sa.text("delivered_at IS NULL"),
        postgresql_where=sa.text("delivered_at IS NULL"),
    )


def downgrade() -> None:
    op.drop_index(
        "order_codes_undelivered",
        table_name="order_codes",
        sqlite_where=sa.text("delivered_at IS NULL"),
        postgresql_where=sa.text("delivered_at IS NULL"),
    )
    op.drop_table("order_codes")
    op.drop_index("ledger_user", table_name="ledger")
    op.drop_index(
        "ledger_one_refund_per_topup",
        table_name="ledger",
        sqlite_where=sa.text("kind = 'topup_refund'"),
        postgresql_where=sa.text("kind = 'topup_refund'"),
    )
    op.drop_index(
        "ledger_one_refund_per_sms_message",
        table_name="ledger",
        sqlite_where=sa.text("kind = 'refund'"),
        postgresql_where=sa.text("kind = 'refund'"),
    )
    op.drop_index(
        "ledger_one_refund_per_order",
        table_name="ledger",
        sqlite_where=sa.text("kind = 'refund'"),
        postgresql_where=sa.text("kind = 'refund'"),
    )
    op.drop_index(
        "ledger_one_purchase_per_sms_send",
        table_name="ledger",
        sqlite_where=sa.text("kind = 'purchase'"),
        postgresql_where=sa.text("kind = 'purchase'"),
    )
    op.drop_index(
        "ledger_one_purchase_per_order",
        table_name="ledger",
        sqlite_where=sa.text("kind = 'purchase'"),
        postgresql_where=sa.text("kind = 'purchase'"),
    )
    op.drop_index(
        "ledger_one_promo_per_user",
        table_name="ledger",
        sqlite_where=sa.text("kind = 'promo'"),
        postgresql_where=sa.text("kind = 'promo'"),
    )
    op.drop_index(
        "ledger_one_credit_per_topup",
        table_name="ledger",
        sqlite_where=sa.text("kind = 'topup'"),
        postgresql_where=sa.text("kind = 'topup'"),
    )
    op.drop_index(
        "ledger_one_bonus_per_topup",
        table_name="ledger",
        sqlite_where=sa.text("kind = 'referral'"),
        postgresql_where=sa.text("kind = 'referral'"),
    )
    op.drop_index("ledger_created", table_name="ledger")
    op.drop_table("ledger")
    op.drop_index(
        "star_charges_open",
        table_name="star_charges",
        sqlite_where=sa.text("status IN ('refund_due', 'refund_failed')"),
        postgresql_where=sa.text("status IN ('refund_due', 'refund_failed')"),
    )
    op.drop_index(
        "star_charges_one_credit_per_topup",
        table_name="star_charges",
        sqlite_where=sa.text("status = 'credited'"),
        postgresql_where=sa.text("status = 'credited'"),
    )
    op.drop_table("star_charges")
    op.drop_table("sms_messages")
    op.drop_index("orders_user", table_name="orders")
    op.drop_index("orders_service", table_name="orders")
    op.drop_index("orders_route_activation", table_name="orders")
    op.drop_index(
        "orders_live",
        table_name="orders",
        sqlite_where=sa.text("status IN ('created', 'number_issued', 'code_received')"),
        postgresql_where=sa.text("status IN ('created', 'number_issued', 'code_received')"),
    )
    op.drop_index("orders_created", table_name="orders")
    op.drop_table("orders")
    op.drop_index("topups_user", table_name="topups")
    op.drop_index(
        "topups_pending",
        table_name="topups",
        sqlite_where=sa.text("status = 'pending'"),
        postgresql_where=sa.text("status = 'pending'"),
    )
    op.drop_index(
        "topups_external",
        table_name="topups",
        sqlite_where=sa.text("external_id IS NOT NULL"),
        postgresql_where=sa.text("external_id IS NOT NULL"),
    )
    op.drop_table("topups")
    op.drop_table("stock_watches")
    op.drop_index("sms_sends_user", table_name="sms_sends")
    op.drop_index(
        "sms_sends_live",
        table_name="sms_sends",
        sqlite_where=sa.text("status IN ('sending', 'sent')"),
        postgresql_where=sa.text("status IN ('sending', 'sent')"),
    )
    op.drop_index(
        "sms_sends_drafts",
        table_name="sms_sends",
        sqlite_where=sa.text("status = 'draft'"),
        postgresql_where=sa.text("status = 'draft'"),
    )
    op.drop_table("sms_sends")
    op.drop_index("route_services_service", table_name="route_services")
    op.drop_table("route_services")
    op.drop_table("route_countries")
    op.drop_index(
        "quotes_open",
        table_name="quotes",
        sqlite_where=sa.text("consumed_at IS NULL"),
        postgresql_where=sa.text("consumed_at IS NULL"),
    )
    op.drop_index(
        "quotes_expiry",
        table_name="quotes",
        sqlite_where=sa.text("consumed_at IS NULL"),
        postgresql_where=sa.text("consumed_at IS NULL"),
    )
    op.drop_table("quotes")
    op.drop_table("promo_redemptions")
    op.drop_table("offers")
    op.drop_index("broadcast_deliveries_pending", table_name="broadcast_deliveries")
    op.drop_table("broadcast_deliveries")
    op.drop_index("users_username", table_name="users")
    op.drop_index("users_referrer", table_name="users")
    op.drop_table("users")
    op.drop_table("upstream_events")
    op.drop_table("star_refunds")
    op.drop_table("sms_prices")
    op.drop_table("services")
    op.drop_table("routes")
    op.drop_index("promo_codes_lower", table_name="promo_codes")
    op.drop_table("promo_codes")
    op.drop_table("offer_refresh")
    op.drop_table("offer_checks")
    op.drop_table("markups")
    op.drop_table("kv")
    op.drop_table("instances")
    op.drop_table("fsm")
    op.drop_table("countries")
    op.drop_table("broadcasts")
    op.drop_table("balance_snapshots")
    op.drop_index("audit_log_created", table_name="audit_log")
    op.drop_index("audit_log_action_target", table_name="audit_log")
    op.drop_table("audit_log")
