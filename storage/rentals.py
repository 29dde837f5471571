"""Rentals, the messages their numbers received, and their extensions.

Every state change is one conditional UPDATE; messages are stored once (UNIQUE on the rental
and a digest of (timestamp, sender, text)) and marked forwarded only after the chat message
went out. Portable SQL: named parameters, ON CONFLICT, RETURNING, no SQLite functions.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any

from shop.models import (
    NewExtension,
    NewRental,
    Rental,
    RentalExtension,
    RentalMessage,
    RentalState,
    RentalTotals,
)
from storage.db import Database, Tx, in_list

LIVE = ("active", "extended")

_SELECT = """
SELECT r.*,
       COALESCE((SELECT -SUM(l.amount) FROM ledger l WHERE l.rental_id = r.id), 0) AS paid,
       (SELECT COUNT(*) FROM rental_messages m WHERE m.rental_id = r.id) AS message_count
FROM rentals r
"""

# Columns `update` and `transition` may set.
_FIELDS = frozenset(
    {
        "rental_code",
        "phone",
        "days",
        "expires_at",
        "reminded_at",
        "ended_notified",
        "needs_attention",
        "error",
        "next_poll_at",
        "chat_id",
        "message_id",
        "ended_at",
    }
)


def _pricing(raw: str) -> dict[int, Decimal]:
    table = json.loads(raw) if raw else {}
    return {int(days): Decimal(str(price)) for days, price in table.items()}


def dump_pricing(pricing: Mapping[int, Decimal]) -> str:
    return json.dumps({str(days): str(price) for days, price in sorted(pricing.items())})


def _rental(row: Any) -> Rental:
    return Rental(
        id=row["id"],
        user_id=row["user_id"],
        offer_id=row["offer_id"],
        rental_code=row["rental_code"],
        phone=row["phone"],
        country=row["country"],
        extendable=bool(row["extendable"]),
        service_id=row["service_id"],
        days=row["days"],
        price=row["price"],
        upstream_cost=Decimal(row["upstream_cost"]),
        cost=row["cost"],
        pricing=_pricing(row["pricing"]),
        state=RentalState(row["state"]),
        expires_at=row["expires_at"],
        reminded_at=row["reminded_at"],
        ended_notified=bool(row["ended_notified"]),
        needs_attention=bool(row["needs_attention"]),
        error=row["error"],
        chat_id=row["chat_id"],
        message_id=row["message_id"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        ended_at=row["ended_at"],
        paid=int(row["paid"] or 0),
        messages=int(row["message_count"] or 0),
    )


def _message(row: Any) -> RentalMessage:
    return RentalMessage(
        id=row["id"],
        rental_id=row["rental_id"],
        sent_at=row["sent_at"],
        sender=row["sender"],
        text=row["text"],
        received_at=row["received_at"],
        forwarded_at=row["forwarded_at"],
    )


def _extension(row: Any) -> RentalExtension:
    return RentalExtension(
        id=row["id"],
        rental_id=row["rental_id"],
        seq=row["seq"],
        days=row["days"],
        price=row["price"],
        state=row["state"],
        created_at=row["created_at"],
    )


def _sets(fields: dict[str, object]) -> tuple[str, dict[str, object]]:
    unknown = set(fields) - _FIELDS
    if unknown:
        raise ValueError(f"not a rental column: {sorted(unknown)}")
    params = {f"f_{name}": value for name, value in fields.items()}
    return "".join(f", {name} = :f_{name}" for name in fields), params


class RentalRepo:
    def __init__(self, db: Database) -> None:
        self.db = db

    # -- rentals ---------------------------------------------------------------------------------

    @staticmethod
    async def create(tx: Tx, rental: NewRental, now: int) -> int | None:
        """A rental in `buying`; None if this confirm screen (`request_key`) bought before."""
        row = await tx.fetchone(
            """
            INSERT INTO rentals (user_id, request_key, offer_id, country, extendable, service_id,
                                 days, price, upstream_cost, cost, pricing, state, chat_id,
                                 created_at, updated_at)
            VALUES (:user_id, :request_key, :offer_id, :country, :extendable, :service_id,
                    :days, :price, :upstream_cost, :cost, :pricing, 'buying', :chat_id,
                    :now, :now)
            ON CONFLICT (request_key) DO NOTHING
            RETURNING id
            """,
            {
                "user_id": rental.user_id,
                "request_key": rental.request_key,
                "offer_id": rental.offer_id,
                "country": rental.country,
                "extendable": int(rental.extendable),
                "service_id": rental.service_id,
                "days": rental.days,
                "price": rental.price,
                "upstream_cost": str(rental.upstream_cost),
                "cost": rental.cost,
                "pricing": dump_pricing(rental.pricing),
                "chat_id": rental.chat_id,
                "now": now,
            },
        )
        return None if row is None else int(row["id"])

    async def get(self, rental_id: int) -> Rental | None:
        row = await self.db.fetchone(_SELECT + " WHERE r.id = :id", {"id": rental_id})
        return None if row is None else _rental(row)

    @staticmethod
    async def get_in(tx: Tx, rental_id: int) -> Rental | None:
        row = await tx.fetchone(_SELECT + " WHERE r.id = :id", {"id": rental_id})
        return None if row is None else _rental(row)

    async def for_user(self, user_id: int, limit: int, offset: int = 0) -> list[Rental]:
        rows = await self.db.fetchall(
            _SELECT + " WHERE r.user_id = :user_id AND r.state <> 'failed'"
            " ORDER BY r.id DESC LIMIT :limit OFFSET :offset",
            {"user_id": user_id, "limit": limit, "offset": offset},
        )
        return [_rental(row) for row in rows]

    async def count_for_user(self, user_id: int) -> int:
        return int(
            await self.db.fetchval(
                "SELECT COUNT(*) FROM rentals WHERE user_id = :user_id AND state <> 'failed'",
                {"user_id": user_id},
            )
        )

    @staticmethod
    async def transition(
        tx: Tx,
        rental_id: int,
        from_states: Iterable[RentalState],
        to: RentalState,
        **fields: object,
    ) -> bool:
        """Move the rental to `to` if it is in one of `from_states`; False otherwise."""
        names, params = in_list("s", [state.value for state in from_states])
        sets, values = _sets(fields)
        changed = await tx.execute(
            f"UPDATE rentals SET state = :to, updated_at = :now{sets}"
            f" WHERE id = :id AND state IN ({names})",
            {"to": to.value, "now": int(time.time()), "id": rental_id, **params, **values},
        )
        return changed == 1

    async def update(self, rental_id: int, **fields: object) -> None:
        async with self.db.transaction() as tx:
            await self.update_in(tx, rental_id, **fields)

    @staticmethod
    async def update_in(tx: Tx, rental_id: int, **fields: object) -> None:
        sets, values = _sets(fields)
        await tx.execute(
            f"UPDATE rentals SET updated_at = :now{sets} WHERE id = :id",
            {"now": int(time.time()), "id": rental_id, **values},
        )

    async def claim_once(self, rental_id: int, column: str, now: int) -> bool:
        """Set `reminded_at` (to `now`) or `ended_notified` (to 1) if not set yet: True for
        the one caller that set it (the reminder and the last message go out once)."""
        if column == "reminded_at":
            sql = (
                "UPDATE rentals SET reminded_at = :now, updated_at = :now"
                " WHERE id = :id AND reminded_at IS NULL"
            )
        elif column == "ended_notified":
            sql = (
                "UPDATE rentals SET ended_notified = 1, updated_at = :now"
                " WHERE id = :id AND ended_notified = 0"
            )
        else:
            raise ValueError(column)
        async with self.db.transaction() as tx:
            return await tx.execute(sql, {"now": now, "id": rental_id}) == 1

    async def claim_due(self, now: int, limit: int, next_at: int) -> list[Rental]:
        """Live rentals due for a poll (`next_poll_at` <= now), oldest due first, at most
        `limit`, each pushed to `next_at`. Each rental is claimed by its own conditional
        UPDATE on the `next_poll_at` this caller read (a compare-and-set), so however many
        pollers or instances ask, one of them gets a rental per period; the others' UPDATE
        matches no row and they skip it."""
        if limit <= 0:
            return []
        due = await self.db.fetchall(
            "SELECT id, next_poll_at FROM rentals"
            " WHERE state IN ('active', 'extended') AND next_poll_at <= :now"
            " ORDER BY next_poll_at, id LIMIT :limit",
            {"now": now, "limit": limit},
        )
        ids = [
            int(row["id"])
            for row in due
            if await self.claim_poll(int(row["id"]), int(row["next_poll_at"]), next_at)
        ]
        if not ids:
            return []
        names, params = in_list("r", ids)
        found = await self.db.fetchall(_SELECT + f" WHERE r.id IN ({names})", params)
        return sorted((_rental(row) for row in found), key=lambda rental: rental.id)

    async def claim_poll(self, rental_id: int, seen: int, next_at: int) -> bool:
        """Move a live rental's `next_poll_at` from `seen` (as read) to `next_at`: True for
        the one caller whose read was still current."""
        async with self.db.transaction() as tx:
            row = await tx.fetchone(
                "UPDATE rentals SET next_poll_at = :next_at"
                " WHERE id = :id AND next_poll_at = :seen AND state IN ('active', 'extended')"
                " RETURNING id",
                {"id": rental_id, "seen": seen, "next_at": next_at},
            )
        return row is not None

    async def live_count(self) -> int:
        return int(
            await self.db.fetchval(
                "SELECT COUNT(*) FROM rentals WHERE state IN ('active', 'extended')"
            )
        )

    async def buying_before(self, before: int) -> list[int]:
        """Rentals still `buying` that were charged before `before` (Unix seconds)."""
        rows = await self.db.fetchall(
            "SELECT id FROM rentals WHERE state = 'buying' AND created_at < :before ORDER BY id",
            {"before": before},
        )
        return [int(row["id"]) for row in rows]

    @staticmethod
    async def net_paid(tx: Tx, rental_id: int) -> int:
        """What the customer paid for the rental so far, net of refunds (from the ledger)."""
        value = await tx.fetchone(
            "SELECT COALESCE(-SUM(amount), 0) AS paid FROM ledger WHERE rental_id = :id",
            {"id": rental_id},
        )
        return int(value["paid"]) if value is not None else 0

    @staticmethod
    async def whole_refund_exists(tx: Tx, rental_id: int) -> bool:
        row = await tx.fetchone(
            "SELECT 1 AS one FROM ledger WHERE rental_id = :id AND kind = 'rental_refund'"
            " AND rental_extension_id IS NULL",
            {"id": rental_id},
        )
        return row is not None

    # -- messages --------------------------------------------------------------------------------

    async def add_messages(
        self,
        rental_id: int,
        messages: Iterable[tuple[str, str, str | None, str]],
        now: int,
    ) -> int:
        """Store (digest, timestamp, sender, text) rows not stored before; how many were new."""
        added = 0
        rows = list(messages)
        if not rows:
            return 0
        async with self.db.transaction() as tx:
            for digest, sent_at, sender, text in rows:
                row = await tx.fetchone(
                    """
                    INSERT INTO rental_messages (rental_id, digest, sent_at, sender, text,
                                                 received_at)
                    VALUES (:rental_id, :digest, :sent_at, :sender, :text, :now)
                    ON CONFLICT (rental_id, digest) DO NOTHING
                    RETURNING id
                    """,
                    {
                        "rental_id": rental_id,
                        "digest": digest,
                        "sent_at": sent_at,
                        "sender": sender,
                        "text": text,
                        "now": now,
                    },
                )
                added += row is not None
        return added

    async def unforwarded(self, rental_id: int) -> list[RentalMessage]:
        rows = await self.db.fetchall(
            "SELECT * FROM rental_messages WHERE rental_id = :id AND forwarded_at IS NULL"
            " ORDER BY id",
            {"id": rental_id},
        )
        return [_message(row) for row in rows]

    async def with_unforwarded(self) -> list[int]:
        """Rentals with a message stored but not forwarded (a crash, a flood limit)."""
        rows = await self.db.fetchall(
            "SELECT DISTINCT rental_id FROM rental_messages WHERE forwarded_at IS NULL"
            " ORDER BY rental_id"
        )
        return [int(row["rental_id"]) for row in rows]

    async def claim_message(self, message_id: int, now: int, lease: int) -> bool:
        """Take the right to send one message for `lease` seconds; False if it was sent or
        another sender holds it."""
        async with self.db.transaction() as tx:
            changed = await tx.execute(
                "UPDATE rental_messages SET claimed_until = :until"
                " WHERE id = :id AND forwarded_at IS NULL"
                " AND (claimed_until IS NULL OR claimed_until < :now)",
                {"until": now + lease, "id": message_id, "now": now},
            )
        return changed == 1

    async def release_message(self, message_id: int) -> None:
        """Give a claimed message back (its send failed: the next poll tries again)."""
        async with self.db.transaction() as tx:
            await tx.execute(
                "UPDATE rental_messages SET claimed_until = NULL"
                " WHERE id = :id AND forwarded_at IS NULL",
                {"id": message_id},
            )

    async def mark_forwarded(self, message_id: int, now: int) -> None:
        async with self.db.transaction() as tx:
            await tx.execute(
                "UPDATE rental_messages SET forwarded_at = :now"
                " WHERE id = :id AND forwarded_at IS NULL",
                {"now": now, "id": message_id},
            )

    async def messages(self, rental_id: int, limit: int, offset: int = 0) -> list[RentalMessage]:
        """A page of the rental's messages, newest first."""
        rows = await self.db.fetchall(
            "SELECT * FROM rental_messages WHERE rental_id = :id"
            " ORDER BY id DESC LIMIT :limit OFFSET :offset",
            {"id": rental_id, "limit": limit, "offset": offset},
        )
        return [_message(row) for row in rows]

    # -- extensions ------------------------------------------------------------------------------

    @staticmethod
    async def create_extension(tx: Tx, extension: NewExtension, now: int) -> int | None:
        """A `pending` extension; None if number `seq` exists or another one is pending."""
        row = await tx.fetchone(
            """
            INSERT INTO rental_extensions (rental_id, seq, days, price, upstream_cost, cost,
                                           state, created_at, updated_at)
            VALUES (:rental_id, :seq, :days, :price, :upstream_cost, :cost, 'pending',
                    :now, :now)
            ON CONFLICT DO NOTHING
            RETURNING id
            """,
            {
                "rental_id": extension.rental_id,
                "seq": extension.seq,
                "days": extension.days,
                "price": extension.price,
                "upstream_cost": str(extension.upstream_cost),
                "cost": extension.cost,
                "now": now,
            },
        )
        return None if row is None else int(row["id"])

    @staticmethod
    async def settle_extension(tx: Tx, extension_id: int, to: str, error: str = "") -> bool:
        """Move a `pending` extension to `to` (done, refused, unknown); False if not pending."""
        changed = await tx.execute(
            "UPDATE rental_extensions SET state = :to, error = :error, updated_at = :now"
            " WHERE id = :id AND state = 'pending'",
            {"to": to, "error": error or None, "now": int(time.time()), "id": extension_id},
        )
        return changed == 1

    async def extensions(self, rental_id: int) -> list[RentalExtension]:
        rows = await self.db.fetchall(
            "SELECT * FROM rental_extensions WHERE rental_id = :id ORDER BY seq",
            {"id": rental_id},
        )
        return [_extension(row) for row in rows]

    @staticmethod
    async def extension_in(tx: Tx, extension_id: int) -> RentalExtension | None:
        row = await tx.fetchone(
            "SELECT * FROM rental_extensions WHERE id = :id", {"id": extension_id}
        )
        return None if row is None else _extension(row)

    @staticmethod
    async def extension_refunded(tx: Tx, extension_id: int) -> bool:
        row = await tx.fetchone(
            "SELECT 1 AS one FROM ledger WHERE rental_extension_id = :id"
            " AND kind = 'rental_refund'",
            {"id": extension_id},
        )
        return row is not None

    async def next_seq(self, rental_id: int) -> int:
        value = await self.db.fetchval(
            "SELECT COALESCE(MAX(seq), 0) + 1 FROM rental_extensions WHERE rental_id = :id",
            {"id": rental_id},
        )
        return int(value)

    async def pending_extensions_before(self, before: int) -> list[tuple[int, int]]:
        """(extension, rental) of extensions still `pending` since before `before`."""
        rows = await self.db.fetchall(
            "SELECT id, rental_id FROM rental_extensions"
            " WHERE state = 'pending' AND created_at < :before ORDER BY id",
            {"before": before},
        )
        return [(int(row["id"]), int(row["rental_id"])) for row in rows]

    # -- figures ---------------------------------------------------------------------------------

    async def totals(self, since: int = 0) -> RentalTotals:
        """Rentals bought since `since`: count, live, net revenue (ledger) and upstream cost
        (purchases and extensions that went through; a rental refunded upstream cost 0)."""
        row = await self.db.fetchone(
            """
            SELECT COUNT(*) AS n,
                   COALESCE(SUM(CASE WHEN r.state IN ('active', 'extended') THEN 1 ELSE 0 END),
                            0) AS live,
                   COALESCE(SUM(CASE WHEN r.state IN ('active', 'extended', 'expired')
                                     THEN r.cost + COALESCE((
                                         SELECT SUM(e.cost) FROM rental_extensions e
                                         WHERE e.rental_id = r.id AND e.state = 'done'), 0)
                                     ELSE 0 END), 0) AS cost
            FROM rentals r
            WHERE r.created_at >= :since AND r.state <> 'buying'
            """,
            {"since": since},
        )
        revenue = await self.db.fetchval(
            """
            SELECT COALESCE(-SUM(l.amount), 0) FROM ledger l
            JOIN rentals r ON r.id = l.rental_id
            WHERE r.created_at >= :since AND r.state <> 'buying'
            """,
            {"since": since},
        )
        assert row is not None
        return RentalTotals(
            count=int(row["n"]), live=int(row["live"]), revenue=int(revenue), cost=int(row["cost"])
        )
