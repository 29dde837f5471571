"""Outbound SMS: price per segment per recipient, charge once, send in one request, follow the
delivery reports, and refund each failed recipient exactly once.

A send is `sending` from its charge until the upstream's answer is recorded. Whatever ends that
step other than an answer (an SMSPM error, no answer, an answer we cannot read, a crash of our
own) settles the send at once; a send left in `sending` anyway (its task died, its process
died) is settled by `sweep()` once `sending_grace` has passed, or by `recover()` at start.
Settling refunds every recipient SMSPM did not prove it accepted. Delivery reports come from a
URL anyone may post to: a final status counts only once `/smsdetails` confirms it.

With several instances, a send in flight or being followed is held by one instance's lease
(`shop.services.leases`), like a live order: only the holder polls it, and a send whose
instance died is claimed by another (settled at once if it was cut off while `sending`)."""

from __future__ import annotations

import enum
import logging
import time
from dataclasses import dataclass
from typing import Protocol

from shop import metrics
from shop.countries import resolve
from shop.errors import (
    AppError,
    InsufficientFunds,
    InvalidInput,
    InvalidState,
    NotFound,
    QuoteExpired,
)
from shop.i18n import LazyText, _, lazy
from shop.models import FINAL, LedgerKind, SmsMessage, SmsSend
from shop.money import Currency
from shop.phones import Recipient
from shop.ports import Database, KeyValueRepository, LedgerRepository, SmsRepository, Tx
from shop.providers.base import ProviderError
from shop.providers.smspm import (
    SentSms,
    SmsConfigError,
    SmsOutcomeUnknown,
    SMSPMClient,
    SmsStatus,
)
from shop.services.leases import CLAIM_BATCH, Leases
from shop.smstext import SegmentInfo, segments

log = logging.getLogger(__name__)

MAX_OPEN_DRAFTS = 5  # a user's unconfirmed drafts kept; a new one drops the oldest beyond
# A send still `sending` this long after its charge is settled by the sweep. Far longer than a
# send request can take (the budget's wait for a purchase slot plus the HTTP timeout), so the
# sweep never settles a send whose answer is still on its way.
SENDING_GRACE = 300.0

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


class ReportAction(enum.Enum):
    """What a delivery report led to."""

    UNKNOWN = "unknown"  # not one of our messages
    DONE = "done"  # applied (a status that moves no money), or nothing to do
    CHECK = "check"  # a final status: counts only once `check()` confirms it upstream


class SmsJobs(Protocol):
    def watch_sms(self, send_id: int, first_in: float) -> None: ...

    def render_sms(self, send_id: int) -> None: ...

    def unwatch_sms(self, send_id: int) -> None: ...

    def watched_sms(self) -> set[int]: ...


class SmsNotifier(Protocol):
    async def sms_changed(self, send: SmsSend, messages: list[SmsMessage]) -> bool:
        """Draw the send's status message; False when it was not and should be tried again."""
        ...

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


@dataclass(frozen=True)
class SmsSent:
    """The send went out (its messages' statuses follow)."""

    view: SmsView


@dataclass(frozen=True)
class SmsNotSent:
    """Nothing (or not everything) went out. `refunded` is what came back on the balance
    after a charge; None when nothing was charged."""

    error: AppError
    refunded: int | None = None


@dataclass(frozen=True)
class SmsAlreadySending:
    """A second tap on the same Send button: the first one is sending."""


SmsOutcome = SmsSent | SmsNotSent | SmsAlreadySending


class SmsService:
    def __init__(
        self,
        db: Database,
        repo: SmsRepository,
        ledger: LedgerRepository,
        kv: KeyValueRepository,
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
        sending_grace: float = SENDING_GRACE,
        leases: Leases | None = None,
    ) -> None:
        self.db = db
        self.leases = leases  # None: the only process follows every send
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
        self.sending_grace = sending_grace
        self._checking: set[str] = set()  # upstream ids being checked (a cache, per process)

    # -- pricing -------------------------------------------------------------------------------

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

    async def send(
        self,
        user_id: int,
        send_id: int,
        chat_id: int | None = None,
        message_id: int | None = None,
    ) -> SmsOutcome:
        """Send: `confirm`, with its outcome as a value."""
        try:
            return SmsSent(await self.confirm(user_id, send_id, chat_id, message_id))
        except InvalidState:
            return SmsAlreadySending()
        except SmsSendFailed as failed:
            return SmsNotSent(failed, failed.refunded)
        except AppError as error:
            return SmsNotSent(error)

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
            if self.leases is not None:
                await self.leases.hold_sms(tx, send_id)
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
        except SmsOutcomeUnknown as exc:  # no answer, or one that proves nothing
            log.warning("SMS send %s: outcome unknown (%s)", send_id, exc)
            settled, refunded = await self._settle(
                send_id, type(exc).__name__, needs_attention=True, accepted=list(exc.accepted)
            )
            if settled:
                await self._alert(
                    f"sms-unknown:{send_id}",
                    lazy(
                        "SMS send #{send_id}: SMSPM did not give a clear answer; the customer "
                        "was refunded {amount} for what SMSPM did not confirm. Check the SMSPM "
                        "dashboard for what went out.",
                        send_id=send_id,
                        amount=self.currency.format(refunded),
                    ),
                )
            raise SmsSendFailed(exc, refunded) from None
        except ProviderError as exc:
            log.warning("SMS send %s failed: %s", send_id, exc)
            _settled, refunded = await self._settle(
                send_id, type(exc).__name__, needs_attention=False
            )
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
        except Exception as exc:  # not an SMSPM error: our parser, our code, the request
            log.exception("SMS send %s: unexpected error after the charge", send_id)
            raise await self._unexpected(send_id, exc, None) from None

        try:
            recorded = await self._accept(send, view.messages, accepted)
        except Exception as exc:
            log.exception("SMS send %s: recording SMSPM's answer failed", send_id)
            raise await self._unexpected(send_id, exc, accepted) from None
        if not recorded:  # settled meanwhile (by the sweep): its refunds stand
            await self._alert(
                f"sms-late:{send_id}",
                lazy(
                    "SMS send #{send_id}: SMSPM accepted {count} message(s) after the send was "
                    "settled as unknown; the customer was refunded for them.",
                    send_id=send_id,
                    count=len(accepted),
                ),
            )
            return await self.view(user_id, send_id)
        self.jobs.watch_sms(send_id, self.poll_seconds)
        log.info("SMS send %s: %d of %d accepted", send_id, len(accepted), len(numbers))
        return await self.view(user_id, send_id)

    async def _accept(
        self, send: SmsSend, messages: list[SmsMessage], accepted: list[SentSms]
    ) -> bool:
        """Record SMSPM's answer: accepted messages get their ids, the rest are refunded.
        False (nothing written) when the send is no longer `sending`."""
        by_number = {sms.to_number: sms.id for sms in accepted}
        async with self.db.transaction() as tx:
            current = await self.repo.get_in(tx, send.id)
            if current is None or current.status != "sending":
                return False
            for message in messages:
                upstream_id = by_number.get(message.to_number)
                if upstream_id:
                    await self.repo.accept(tx, message.id, upstream_id)
                else:
                    await self.repo.set_status(tx, message.id, "failed")
                    await self._refund(tx, send, message, "not accepted by SMSPM")
            await self.repo.set_send_status(tx, send.id, "sent")
            await self._finish_if_final(tx, send.id)
        return True

    async def _unexpected(
        self, send_id: int, exc: Exception, accepted: list[SentSms] | None
    ) -> SmsSendFailed:
        """Settle a send whose step after the charge failed in an unexpected way, as outcome
        unknown: refund what SMSPM did not prove it accepted, flag it, alert the owners."""
        settled, refunded = await self._settle(
            send_id, type(exc).__name__, needs_attention=True, accepted=accepted
        )
        if settled:
            await self._alert(
                f"sms-unknown:{send_id}",
                lazy(
                    "SMS send #{send_id}: unexpected error ({error}) after the charge; the "
                    "customer was refunded {amount} for what SMSPM did not confirm. Check the "
                    "SMSPM dashboard.",
                    send_id=send_id,
                    error=type(exc).__name__,
                    amount=self.currency.format(refunded),
                ),
            )
        return SmsSendFailed(SmsOutcomeUnknown("unexpected error after the charge"), refunded)

    async def _settle(
        self,
        send_id: int,
        error: str,
        needs_attention: bool,
        accepted: list[SentSms] | None = None,
    ) -> tuple[bool, int]:
        """End `sending`: recipients in `accepted` are followed, every other one is marked
        failed and refunded (once each, by the schema). A send that is no longer `sending`
        was settled before and is left alone. Returns (settled by this call, what this send
        has had refunded)."""
        by_number = {sms.to_number: sms.id for sms in accepted or []}
        kept = 0
        async with self.db.transaction() as tx:
            send = await self.repo.get_in(tx, send_id)
            assert send is not None
            settling = send.status == "sending"
            if settling:
                for message in await self.repo.messages_in(tx, send_id):
                    upstream_id = by_number.get(message.to_number)
                    if upstream_id:
                        await self.repo.accept(tx, message.id, upstream_id)
                        kept += 1
                    else:
                        await self.repo.set_status(tx, message.id, "failed")
                        await self._refund(tx, send, message, "SMS not sent")
                await self.repo.set_send_status(
                    tx,
                    send_id,
                    "sent" if kept else "failed",
                    error=error,
                    needs_attention=needs_attention,
                )
            messages = await self.repo.messages_in(tx, send_id)
        if kept:
            self.jobs.watch_sms(send_id, self.poll_seconds)
        return settling, sum(m.price for m in messages if m.refunded)

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

    async def report(self, upstream_id: str, status: SmsStatus) -> ReportAction:
        """A delivery report posted to our callback URL, which anyone holding the URL can do.

        A status that moves no money (queued, submitted) is applied as it is. A final one
        (failed refunds, delivered closes the message for good) only asks for `check()`, which
        believes `/smsdetails`, like PapSMS webhooks are confirmed with a status call.
        """
        message = await self.repo.by_upstream_id(upstream_id)
        if message is None:
            return ReportAction.UNKNOWN
        if message.status in FINAL or status is SmsStatus.UNKNOWN:
            return ReportAction.DONE
        if status.is_final:
            return ReportAction.CHECK
        await self._apply(upstream_id, status)
        return ReportAction.DONE

    async def check(self, upstream_id: str) -> None:
        """Ask `/smsdetails` for one message's status and apply what SMSPM says. If it does not
        answer, nothing changes: the poll asks again later."""
        if upstream_id in self._checking:
            return  # a check of this message is under way
        self._checking.add(upstream_id)
        try:
            message = await self.repo.by_upstream_id(upstream_id)
            if message is None or message.status in FINAL:
                return
            try:
                details = await self.client.details(upstream_id)
            except ProviderError as exc:
                log.info("SMS %s: report not confirmed, details failed (%s)", upstream_id, exc)
                return
            cost = None if details.price is None else str(details.price)
            await self._apply(upstream_id, details.status, cost)
        finally:
            self._checking.discard(upstream_id)

    async def _apply(self, upstream_id: str, status: SmsStatus, cost: str | None = None) -> bool:
        """A status SMSPM itself told us (`/smsdetails`). False when the id is not ours."""
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
            await self._apply(message.upstream_id, details.status, cost)
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

    async def render(self, send_id: int) -> bool:
        """Draw the send's status message as it is now; False when that should be tried
        again (Telegram unreachable, or a flood wait too long to sit out)."""
        send = await self.repo.get(send_id)
        if send is None:
            return True
        return await self.notifier.sms_changed(send, await self.repo.messages(send_id))

    async def recover(self) -> None:
        """After a start: follow sends in flight; refund a send cut off mid-request. With
        leases, only the sends no live instance holds (`claim_free`)."""
        if self.leases is not None:
            await self.claim_free()
            return
        for send in await self.repo.live_sends():
            if send.status == "sending":
                await self._settle_stuck(send.id, at_start=True)
            else:
                self.jobs.watch_sms(send.id, 0.0)

    async def claim_free(self) -> int:
        """Take the live sends nobody holds (their instance died or stopped): follow those
        sent; settle those cut off while `sending` (nobody is sending them any more)."""
        assert self.leases is not None
        taken = 0
        while True:
            batch = await self.leases.claim_sms(CLAIM_BATCH)
            for send_id, status in batch:
                if status == "sending":
                    await self._settle_stuck(send_id, at_start=True)
                else:
                    self.jobs.watch_sms(send_id, 0.0)
            taken += len(batch)
            if len(batch) < CLAIM_BATCH:
                return taken

    async def keep_leases(self) -> None:
        """Per instance, every third of the lease: renew the sends this instance holds, stop
        following those another instance took, claim those nobody holds."""
        if self.leases is None:
            return
        before = self.jobs.watched_sms()
        held = await self.leases.renew_sms()
        lost = sorted(i for i in before if i not in held)
        for send_id in lost:
            self.jobs.unwatch_sms(send_id)
        if lost:
            metrics.leases_lost("sms", len(lost))
            log.info("SMS sends %s are no longer held by this instance; dropped", lost)
        await self.claim_free()

    async def sweep(self) -> None:
        """The scheduled safety net: settle every send still `sending` past the grace period
        (its task or its process died before the outcome was recorded) as outcome unknown."""
        for send_id in await self.repo.stuck_sending(int(time.time() - self.sending_grace)):
            await self._settle_stuck(send_id, at_start=False)

    async def _settle_stuck(self, send_id: int, at_start: bool) -> None:
        settled, refunded = await self._settle(send_id, "SmsOutcomeUnknown", needs_attention=True)
        if not settled:
            return
        log.warning("SMS send %s settled as outcome unknown; refunded %s", send_id, refunded)
        amount = self.currency.format(refunded)
        if at_start:
            text = lazy(
                "SMS send #{send_id}: the bot stopped while sending; the customer was "
                "refunded {amount}. Check the SMSPM dashboard.",
                send_id=send_id,
                amount=amount,
            )
        else:
            text = lazy(
                "SMS send #{send_id} was left unfinished while sending; the customer was "
                "refunded {amount}. Check the SMSPM dashboard for what went out.",
                send_id=send_id,
                amount=amount,
            )
        await self._alert(f"sms-unknown:{send_id}", text)
        self.jobs.render_sms(send_id)

    async def _alert(self, key: str, text: str | LazyText) -> None:
        if await self.kv.claim_every(f"alert:{key}", 600):
            await self.notifier.alert_admins(text)
