"""The self-check's reads: every order's ledger rows against its state, in one query.

(Balances against their ledger sums are `LedgerRepo.mismatches`.)
"""

from __future__ import annotations

from shop.models import OrderLedger, OrderStatus
from storage.db import Database

MAX_ROWS = 1000  # enough to alert on; a shop with more broken orders has bigger problems

# An order closed without a code must have been refunded; one that got a code must not be.
# Each order has at most one purchase and one refund row (unique partial indexes), so the two
# joins give one row per order, each through its partial index.
_MISMATCHES = """
SELECT o.id, o.user_id, o.status, o.price,
       p.amount AS paid, p.user_id AS payer,
       r.amount AS refunded, r.user_id AS payee,
       EXISTS (SELECT 1 FROM order_codes c WHERE c.order_id = o.id) AS has_code
FROM orders o
LEFT JOIN ledger p ON p.order_id = o.id AND p.kind = 'purchase'
LEFT JOIN ledger r ON r.order_id = o.id AND r.kind = 'refund'
WHERE p.id IS NULL OR p.amount <> -o.price OR p.user_id <> o.user_id
   OR (r.id IS NULL AND o.status IN ('failed', 'expired', 'cancelled')
       AND NOT EXISTS (SELECT 1 FROM order_codes c WHERE c.order_id = o.id))
   OR (r.id IS NOT NULL AND (
           r.amount <> o.price OR r.user_id <> o.user_id
           OR o.status NOT IN ('failed', 'expired', 'cancelled')
           OR EXISTS (SELECT 1 FROM order_codes c WHERE c.order_id = o.id)))
ORDER BY o.id
LIMIT :limit
"""


class SelfCheckRepo:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def order_mismatches(self, limit: int = MAX_ROWS) -> list[OrderLedger]:
        """Orders without exactly their price charged once, with a refund they should not
        have (a code, still live, another amount or user), or closed without a code and
        never refunded. One statement, so one consistent snapshot."""
        rows = await self.db.fetchall(_MISMATCHES, {"limit": limit})
        return [
            OrderLedger(
                order_id=r["id"],
                user_id=r["user_id"],
                status=OrderStatus(r["status"]),
                price=r["price"],
                paid=r["paid"],
                payer=r["payer"],
                refunded=r["refunded"],
                payee=r["payee"],
                has_code=bool(r["has_code"]),
            )
            for r in rows
        ]
