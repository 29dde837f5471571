"""Popular first (issue 16; was storage/migrations/014_popular.sql): the last 30 days' orders
are counted per service and per country from these two indexes only.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("orders_bought_since", "orders", ["created_at", "service_id"])
    op.create_index("orders_service_bought", "orders", ["service_id", "created_at", "country"])


def downgrade() -> None:
    op.drop_index("orders_service_bought", table_name="orders")
    op.drop_index("orders_bought_since", table_name="orders")
