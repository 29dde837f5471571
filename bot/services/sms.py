"""Outbound SMS: price per segment per recipient, charge once, send in one request, follow the
delivery reports, and refund each failed recipient exactly once."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Protocol

from bot.countries import resolve
from bot.errors import (
    AppError,
    InsufficientFunds,
    InvalidInput,
    InvalidState,
    NotFound,
    QuoteExpired,
)
from bot.i18n import LazyText, _, lazy
from bot.money import Currency
from bot.phones import Recipient
from bot.providers.base import ProviderError
from bot.providers.smspm import SmsConfigError, SmsOutcomeUnknown, SMSPMClient, SmsStatus
from bot.smstext import SegmentInfo, segments
from storage.db import Database, Tx
from storage.kv import KeyValueRepo
from storage.models import LedgerKind
from storage.sms import FINAL, SmsMessage, SmsRepo, SmsSend
from storage.users import LedgerRepo

log = logging.getLogger(__name__)

MAX_OPEN_DRAFTS = 5  # a user's unconfirmed drafts kept; a new one drops the oldest beyond

STATUS_NAMES = {
    SmsStatus.QUEUED: "queued",
    SmsStatus.SUBMITTED: "submitted",
    SmsStatus.DELIVERED: "delivered",
    SmsStatus.FAILED: "failed",
}


class SmsSendFailed(AppError):
    """Nothing (or not everything) was accepted upstream; the customer got it back."""

    def __init__(self, cause: ProviderError, refunded: int) -> None:
        super().__init__(cause.user_message)
        self.cause = cause
        self.refunded = refunded


class SmsJobs(Protocol):
    def watch_sms(self, send_id: int, first_in: float) -> None: ...

    def render_sms(self, send_id: int) -> None: ...

    def unwatch_sms(self, send_id: int) -> None: ...


class SmsNotifier(Protocol):
    async def sms_changed(self, send: SmsSend, messages: list[SmsMessage]) -> None: ...

    async def alert_admins(self, text: str | LazyText) -> None: ...


@dataclass(frozen=True)
class SmsView:
    send: SmsSend
    messages: list[SmsMessage]

    @property
    def refunded(self) -> int:
        return sum(m.price for m in self.messages if m.refunded)


@dataclass(frozen=True)
class SmsDraft(SmsView):
    info: SegmentInfo


class SmsService:
    def __init__(
        self,
        db: Database,
        repo: SmsRepo,
        ledger: LedgerRepo,
        kv: KeyValueRepo,
        client: SMSPMClient,
        currency: Currency,
        sender: str,
        default_price: int,
        quote_ttl: int,
        deadline_seconds: int,
        poll_seconds: float,
        report_url: str | None,
        jobs: SmsJobs,
        notifier: SmsNotifier,
    ) -> None:
        self.db = db
        self.repo = repo
        self.ledger = ledger
        self.kv = kv
        self.client = client
        self.currency = currency
        self.sender = sender
        self.default_price = default_price
        self.quote_ttl = quote_ttl
        self.deadline_seconds = deadline_seconds
        self.poll_seconds = poll_seconds
        self.report_url = report_url
        self.jobs = jobs
        self.notifier = notifier

    # -- pricing -------------------------------------------------------------------------------

    async def price_per_segment(self, country: str) -> int:
        return (await self.repo.prices()).get(country, self.default_price)

    async def set_price(self, country_text: str, price: int) -> str:
        """Admin override of the per-segment price for one destination country."""
        info = resolve(country_text.upper() if len(country_text) == 2 else country_text)
        if info.code.startswith("x-"):
            raise InvalidInput(
                _("Unknown country “{country}”: use an ISO code such as EE.").format(
                    country=country_text
                )
            )
        await self.repo.set_price(info.code, price)
        return f"{info.flag} {info.name}"

    # -- sending -------------------------------------------------------------------------------

    async def draft(self, user_id: int, recipients: list[Recipient], text: str) -> SmsDraft:
        """Price a send and hold that price for the confirm screen."""
        if not recipients:
            raise InvalidInput(_("Add at least one recipient."))
        try:
            info = segments(text)
        except ValueError:
            raise InvalidInput(_("The message text is empty.")) from None
        prices = await self.repo.prices()
        rows = [
            (r.digits, r.region, info.segments * prices.get(r.region, self.default_price))
            for r in recipients
        ]
        send_id = await self.repo.create_draft(
            user_id,
            text,
            self.sender,
            info.encoding,
            info.segments,
            rows,
            self.quote_ttl,
            keep=MAX_OPEN_DRAFTS,  # every text typed makes one: older screens stop sending
        )
        view = await self.view(user_id, send_id)
        return SmsDraft(view.send, view.messages, info)

    async def purge_drafts(self) -> int:
        """The scheduled purge: drafts whose price expired unconfirmed, with their rows."""
        return await self.repo.purge_expired_drafts(int(time.time()))

    async def view(self, user_id: int, send_id: int) -> SmsView:
        send = await self.repo.get(send_id)
        if send is None or send.user_id != user_id:
            raise NotFound(_("This SMS was not found."))
        return SmsView(send, await self.repo.messages(send_id))

    async def recent(self, user_id: int, limit: int = 5) -> list[SmsSend]:
        return await self.repo.for_user(user_id, limit)

    async def confirm(
        self,
        user_id: int,
        send_id: int,
        chat_id: int | None = None,
        message_id: int | None = None,
    ) -> SmsView:
        """Charge the held total, send in one request, refund what was not accepted."""
        view = await self.view(user_id, send_id)
        send = view.send
        if send.status != "draft":
            raise InvalidState(_("This SMS is already being sent."))
        now = int(time.time())
        if send.quote_expires_at <= now:
            raise QuoteExpired(_("This price has expired. Please start the SMS again."))
        async with self.db.transaction() as tx:
            if not await self.repo.start_sending(
                tx, send_id, user_id, now, now + self.deadline_seconds, chat_id, message_id
            ):
                raise InvalidState(_("This SMS is already being sent."))
            if not await self.ledger.apply(
                tx,
                user_id,
                -send.total_price,
                LedgerKind.PURCHASE,
                "SMS send",
                sms_send_id=send_id,
            ):
                raise InsufficientFunds()

        numbers = [m.to_number for m in view.messages]
        try:
            accepted = await self.client.send(numbers, send.text, send.sender, self.report_url)
        except SmsOutcomeUnknown as exc:
            refunded = await self._fail_all(send_id, exc, needs_attention=True)
            await self._alert(
                f"sms-unknown:{send_id}",
                lazy(
                    "SMS send #{send_id}: SMSPM did not answer; the customer was refunded. "
                    "Check the SMSPM dashboard for what went out.",
                    send_id=send_id,
                ),
            )
            raise SmsSendFailed(exc, refunded) from None
        except ProviderError as exc:
            refunded = await self._fail_all(send_id, exc, needs_attention=False)
            if isinstance(exc, SmsConfigError):
                await self._alert(
                    "sms-config",
                    lazy(
                        "SMSPM refused our configuration ({error}): check SMSPM_TOKEN "
                        "and SMSPM_SENDER. Customers cannot send SMS until it is fixed.",
                        error=type(exc).__name__,
                    ),
                )
            raise SmsSendFailed(exc, refunded) from None

        by_number = {sms.to_number: sms.id for sms in accepted}
        async with self.db.transaction() as tx:
            for message in view.messages:
                upstream_id = by_number.get(message.to_number)
                if upstream_id:
                    await self.repo.accept(tx, message.id, upstream_id)
                else:
                    await self.repo.set_status(tx, message.id, "failed")
                    await self._refund(tx, send, message, "not accepted by SMSPM")
            await self.repo.set_send_status(tx, send_id, "sent")
            await self._finish_if_final(tx, send_id)
        self.jobs.watch_sms(send_id, self.poll_seconds)
        log.info("SMS send %s: %d of %d accepted", send_id, len(by_number), len(numbers))
        return await self.view(user_id, send_id)

    async def _fail_all(self, send_id: int, exc: ProviderError, needs_attention: bool) -> int:
        log.warning("SMS send %s failed: %s", send_id, exc)
        refunded = 0
        async with self.db.transaction() as tx:
            send = await self.repo.get_in(tx, send_id)
            assert send is not None
            for message in await self.repo.messages_in(tx, send_id):
                await self.repo.set_status(tx, message.id, "failed")
                refunded += await self._refund(tx, send, message, "SMS not sent")
            await self.repo.set_send_status(
                tx, send_id, "failed", error=type(exc).__name__, needs_attention=needs_attention
            )
        return refunded

    async def _refund(self, tx: Tx, send: SmsSend, message: SmsMessage, reason: str) -> int:
        return await self.ledger.refund_once(
            tx,
            send.user_id,
            message.price,
            reason,
            sms_send_id=send.id,
            sms_message_id=message.id,
        )

    async def _finish_if_final(self, tx: Tx, send_id: int) -> bool:
        if await self.repo.pending_count(tx, send_id) == 0:
            await self.repo.set_send_status(tx, send_id, "done")
            return True
        return False

    # -- statuses ------------------------------------------------------------------------------

    async def report(self, upstream_id: str, status: SmsStatus, cost: str | None = None) -> bool:
        """A delivery report (callback or poll). False when the id is not one of ours."""
        name = STATUS_NAMES.get(status)
        message = await self.repo.by_upstream_id(upstream_id)
        if message is None:
            return False
        if name is None:
            return True
        async with self.db.transaction() as tx:
            send = await self.repo.get_in(tx, message.send_id)
            assert send is not None
            if not await self.repo.set_status(tx, message.id, name, cost):
                return True  # already final, or no change
            if name == "failed":
                await self._refund(tx, send, message, "SMS delivery failed")
            done = await self._finish_if_final(tx, send.id)
        if done:
            self.jobs.unwatch_sms(send.id)
        self.jobs.render_sms(send.id)
        return True

    async def poll(self, send_id: int) -> bool:
        """The fallback when reports do not come; True while there is more to learn."""
        send = await self.repo.get(send_id)
        if send is None or send.status != "sent":
            return False
        for message in await self.repo.messages(send_id):
            if message.status in FINAL or message.upstream_id is None:
                continue
            try:
                details = await self.client.details(message.upstream_id)
            except ProviderError as exc:
                log.info("SMS %s: details failed (%s)", message.upstream_id, exc)
                continue
            cost = None if details.price is None else str(details.price)
            await self.report(message.upstream_id, details.status, cost)
        send = await self.repo.get(send_id)
        if send is None or send.status != "sent":
            return False
        if send.deadline is not None and send.deadline <= time.time():
            # Still queued or submitted at the deadline: the carrier has it; no refund.
            async with self.db.transaction() as tx:
                await self.repo.set_send_status(tx, send_id, "done")
            self.jobs.render_sms(send_id)
            return False
        return True

    async def render(self, send_id: int) -> None:
        send = await self.repo.get(send_id)
        if send is not None:
            await self.notifier.sms_changed(send, await self.repo.messages(send_id))

    async def recover(self) -> None:
        """After a start: follow sends in flight; refund a send cut off mid-request."""
        for send in await self.repo.live_sends():
            if send.status == "sending":
                refunded = await self._fail_all(
                    send.id, SmsOutcomeUnknown("interrupted"), needs_attention=True
                )
                await self._alert(
                    f"sms-unknown:{send.id}",
                    lazy(
                        "SMS send #{send_id}: the bot stopped while sending; the customer was "
                        "refunded {amount}. Check the SMSPM dashboard.",
                        send_id=send.id,
                        amount=self.currency.format(refunded),
                    ),
                )
                self.jobs.render_sms(send.id)
            else:
                self.jobs.watch_sms(send.id, 0.0)

    async def _alert(self, key: str, text: str | LazyText) -> None:
        if await self.kv.claim_every(f"alert:{key}", 600):
            await self.notifier.alert_admins(text)
