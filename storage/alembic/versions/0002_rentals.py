"""Rentals (issue 15; was storage/migrations/013_rentals.sql): rentals, their messages and
extensions, and the ledger's rental kinds.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-02 13:42:47.120791
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")  # identity ids, as storage/schema.py


revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "rentals",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("request_key", sa.Text(), nullable=False),
        sa.Column("offer_id", sa.Text(), nullable=False),
        sa.Column("rental_code", sa.Text(), nullable=True),
        sa.Column("phone", sa.Text(), nullable=True),
        sa.Column("country", sa.Text(), nullable=False),
        sa.Column("extendable", sa.Integer(), nullable=False),
        sa.Column("service_id", sa.Text(), nullable=True),
        sa.Column("days", sa.Integer(), nullable=False),
        sa.Column("price", sa.BigInteger(), nullable=False),
        sa.Column("upstream_cost", sa.Text(), nullable=False),
        sa.Column("cost", sa.BigInteger(), nullable=False),
        sa.Column("pricing", sa.Text(), nullable=False),
        sa.Column("state", sa.Text(), nullable=False),
        sa.Column("expires_at", sa.BigInteger(), nullable=True),
        sa.Column("reminded_at", sa.BigInteger(), nullable=True),
        sa.Column("ended_notified", sa.Integer(), server_default="0", nullable=False),
        sa.Column("needs_attention", sa.Integer(), server_default="0", nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("next_poll_at", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("chat_id", sa.BigInteger(), nullable=True),
        sa.Column("message_id", sa.BigInteger(), nullable=True),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.Column("ended_at", sa.BigInteger(), nullable=True),
        sa.CheckConstraint(
            "state IN ('buying', 'active', 'extended', 'refunded', 'expired', 'failed')"
        ),
        sa.CheckConstraint("days > 0"),
        sa.CheckConstraint("ended_notified IN (0, 1)"),
        sa.CheckConstraint("extendable IN (0, 1)"),
        sa.CheckConstraint("needs_attention IN (0, 1)"),
        sa.CheckConstraint("price > 0"),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("rental_code"),
        sa.UniqueConstraint("request_key"),
    )
    op.create_index(
        "rentals_buying",
        "rentals",
        ["created_at"],
        unique=False,
        sqlite_where=sa.text("state = 'buying'"),
        postgresql_where=sa.text("state = 'buying'"),
    )
    op.create_index(
        "rentals_due",
        "rentals",
        ["next_poll_at"],
        unique=False,
        sqlite_where=sa.text("state IN ('active', 'extended')"),
        postgresql_where=sa.text("state IN ('active', 'extended')"),
    )
    op.create_index("rentals_user", "rentals", ["user_id", "id"], unique=False)
    op.create_table(
        "rental_extensions",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column(
            "rental_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("days", sa.Integer(), nullable=False),
        sa.Column("price", sa.BigInteger(), nullable=False),
        sa.Column("upstream_cost", sa.Text(), nullable=False),
        sa.Column("cost", sa.BigInteger(), nullable=False),
        sa.Column("state", sa.Text(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.CheckConstraint("state IN ('pending', 'done', 'refused', 'unknown')"),
        sa.CheckConstraint("days > 0"),
        sa.CheckConstraint("price > 0"),
        sa.CheckConstraint("seq > 0"),
        sa.ForeignKeyConstraint(
            ["rental_id"],
            ["rentals.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("rental_id", "seq"),
    )
    op.create_index(
        "rental_extensions_one_pending",
        "rental_extensions",
        ["rental_id"],
        unique=True,
        sqlite_where=sa.text("state = 'pending'"),
        postgresql_where=sa.text("state = 'pending'"),
    )
    op.create_table(
        "rental_messages",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column(
            "rental_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("digest", sa.Text(), nullable=False),
        sa.Column("sent_at", sa.Text(), nullable=False),
        sa.Column("sender", sa.Text(), nullable=True),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("received_at", sa.BigInteger(), nullable=False),
        sa.Column("claimed_until", sa.BigInteger(), nullable=True),
        sa.Column("forwarded_at", sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(
            ["rental_id"],
            ["rentals.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("rental_id", "digest"),
    )
    op.create_index(
        "rental_messages_unforwarded",
        "rental_messages",
        ["rental_id"],
        unique=False,
        sqlite_where=sa.text("forwarded_at IS NULL"),
        postgresql_where=sa.text("forwarded_at IS NULL"),
    )
    # The ledger learns rentals: new columns and CHECKs. Rebuilt on both databases (SQLite
    # cannot alter a CHECK), its rows copied with their ids, its indexes made again.
    op.create_table(
        "ledger_v4",
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
        sa.Column("rental_id", ID, nullable=True),
        sa.Column("rental_extension_id", ID, nullable=True),
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
            "'topup', 'topup_refund', 'promo', 'referral', "
            "'rental', 'rental_extend', 'rental_refund')"
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
        sa.CheckConstraint(
            "kind NOT IN ('rental', 'rental_extend', 'rental_refund') OR rental_id IS NOT NULL"
        ),
        sa.CheckConstraint("kind <> 'rental' OR (amount < 0 AND rental_extension_id IS NULL)"),
        sa.CheckConstraint(
            "kind <> 'rental_extend' OR (amount < 0 AND rental_extension_id IS NOT NULL)"
        ),
        sa.CheckConstraint("kind <> 'rental_refund' OR amount > 0"),
        sa.ForeignKeyConstraint(["rental_id"], ["rentals.id"]),
        sa.ForeignKeyConstraint(["rental_extension_id"], ["rental_extensions.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.execute(
        "INSERT INTO ledger_v4 (id, user_id, amount, kind, reason, order_id, sms_send_id, "
        "sms_message_id, topup_id, promo_code, actor_id, created_at) "
        "SELECT id, user_id, amount, kind, reason, order_id, sms_send_id, sms_message_id, "
        "topup_id, promo_code, actor_id, created_at FROM ledger"
    )
    op.drop_table("ledger")
    op.rename_table("ledger_v4", "ledger")
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
    op.create_index(
        "ledger_one_payment_per_rental",
        "ledger",
        ["rental_id"],
        unique=True,
        sqlite_where=sa.text("kind = 'rental'"),
        postgresql_where=sa.text("kind = 'rental'"),
    )
    op.create_index(
        "ledger_one_charge_per_rental_extension",
        "ledger",
        ["rental_extension_id"],
        unique=True,
        sqlite_where=sa.text("kind = 'rental_extend'"),
        postgresql_where=sa.text("kind = 'rental_extend'"),
    )
    op.create_index(
        "ledger_one_refund_per_rental_extension",
        "ledger",
        ["rental_extension_id"],
        unique=True,
        sqlite_where=sa.text("kind = 'rental_refund'"),
        postgresql_where=sa.text("kind = 'rental_refund'"),
    )
    op.create_index(
        "ledger_one_refund_per_rental",
        "ledger",
        ["rental_id"],
        unique=True,
        sqlite_where=sa.text("kind = 'rental_refund' AND rental_extension_id IS NULL"),
        postgresql_where=sa.text("kind = 'rental_refund' AND rental_extension_id IS NULL"),
    )
    op.create_index(
        "ledger_rental",
        "ledger",
        ["rental_id"],
        unique=False,
        sqlite_where=sa.text("rental_id IS NOT NULL"),
        postgresql_where=sa.text("rental_id IS NOT NULL"),
    )
    if op.get_bind().dialect.name == "postgresql":  # the identity goes on after the copied ids
        op.execute(
            "SELECT setval(pg_get_serial_sequence('ledger', 'id'), COALESCE(MAX(id), 1), "
            "MAX(id) IS NOT NULL) FROM ledger"
        )


def downgrade() -> None:
    raise NotImplementedError("0002 (rentals) is not reversible: restore a backup instead")
