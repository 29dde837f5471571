"""Leases (issue 14; was storage/migrations/012_leases.sql): each live order, code send and SMS
send is watched by one instance at a time, each singleton job runs on one.

An instance holds an order until `lease_until` (epoch seconds) and renews it; a lease that ran
out, or whose owner left the instance registry, is free (storage/leases.py).

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

LIVE = "status IN ('created', 'number_issued', 'code_received')"


def upgrade() -> None:
    for table in ("orders", "sms_sends"):
        op.add_column(table, sa.Column("lease_owner", sa.Text(), nullable=True))
        op.add_column(table, sa.Column("lease_until", sa.BigInteger(), nullable=True))
    op.create_index(
        "orders_live_lease_until",
        "orders",
        ["lease_until"],
        sqlite_where=sa.text(LIVE),
        postgresql_where=sa.text(LIVE),
    )
    op.create_index(
        "orders_live_lease_owner",
        "orders",
        ["lease_owner"],
        sqlite_where=sa.text(LIVE),
        postgresql_where=sa.text(LIVE),
    )
    op.add_column("order_codes", sa.Column("send_owner", sa.Text(), nullable=True))
    op.add_column("order_codes", sa.Column("send_until", sa.BigInteger(), nullable=True))
    op.create_table(
        "job_leases",
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("owner", sa.Text(), nullable=False),
        sa.Column("until", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )


def downgrade() -> None:
    op.drop_table("job_leases")
    op.drop_index("orders_live_lease_owner", table_name="orders")
    op.drop_index("orders_live_lease_until", table_name="orders")
    with op.batch_alter_table("order_codes") as batch:
        batch.drop_column("send_until")
        batch.drop_column("send_owner")
    for table in ("sms_sends", "orders"):
        with op.batch_alter_table(table) as batch:
            batch.drop_column("lease_until")
            batch.drop_column("lease_owner")
