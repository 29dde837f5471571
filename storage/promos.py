"""Promo codes and their redemptions."""

from __future__ import annotations

import time

from shop.models import PromoCode
from storage.db import Record as Row
from storage.db import Tx


def _promo(row: Row) -> PromoCode:
    return PromoCode(
        code=row["code"],
        amount=row["amount"],
        max_uses=row["max_uses"],
        used=row["used"],
        expires_at=row["expires_at"],
        created_by=row["created_by"],
        created_at=row["created_at"],
    )


class PromoRepo:
    """Every method runs inside the caller's transaction."""

    @staticmethod
    async def get(tx: Tx, code: str) -> PromoCode | None:
        # Codes are case-insensitive (unique by lower(code)).
        row = await tx.fetchone(
            "SELECT * FROM promo_codes WHERE lower(code) = lower(:code)", {"code": code}
        )
        return None if row is None else _promo(row)

    @staticmethod
    async def create(
        tx: Tx, code: str, amount: int, max_uses: int, expires_at: int | None, created_by: int
    ) -> bool:
        """False when the code exists already (codes are case-insensitive)."""
        changed = await tx.execute(
            """
            INSERT INTO promo_codes (code, amount, max_uses, expires_at, created_by, created_at)
            VALUES (:code, :amount, :max_uses, :expires_at, :created_by, :now)
            ON CONFLICT DO NOTHING
            """,
            {
                "code": code,
                "amount": amount,
                "max_uses": max_uses,
                "expires_at": expires_at,
                "created_by": created_by,
                "now": int(time.time()),
            },
        )
        return changed == 1

    @staticmethod
    async def redeemed(tx: Tx, code: str, user_id: int) -> bool:
        """Whether the user redeemed the code, read under the user's row lock (PostgreSQL),
        so two redemptions at once take turns and the second sees the first."""
        await tx.lock_user(user_id)
        row = await tx.fetchone(
            "SELECT 1 FROM promo_redemptions WHERE code = :code AND user_id = :user_id",
            {"code": code, "user_id": user_id},
        )
        return row is not None

    @staticmethod
    async def take_use(tx: Tx, code: str) -> bool:
        """One use of the code, unless every use is taken (conditional, so never over)."""
        changed = await tx.execute(
            "UPDATE promo_codes SET used = used + 1 WHERE code = :code AND used < max_uses",
            {"code": code},
        )
        return changed == 1

    @staticmethod
    async def record(tx: Tx, code: str, user_id: int) -> bool:
        """The user's redemption, once: False if it was recorded before (a race lost)."""
        changed = await tx.execute(
            "INSERT INTO promo_redemptions (code, user_id, created_at) "
            "VALUES (:code, :user_id, :now) ON CONFLICT (code, user_id) DO NOTHING",
            {"code": code, "user_id": user_id, "now": int(time.time())},
        )
        return changed == 1
