"""Texts and keyboards of the owner's panel and the admin commands: pure functions of data."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup
from aiogram.utils.keyboard import InlineKeyboardBuilder

from handlers.callbacks import AdminCb, AdminRentalCb
from handlers.orders.screens import status_label
from handlers.ui import button, esc, pager
from shop.i18n import _, __, format_date, ngettext
from shop.models import (
    AuditEntry,
    LedgerKind,
    Order,
    OrderCode,
    PromoCode,
    Rental,
    RentalTotals,
    User,
)
from shop.money import Currency
from shop.services.markups import PricingView
from shop.services.people import UserCard
from shop.services.reconcile import BalanceChange, Reconciliation
from shop.services.selfcheck import SelfCheckStatus
from shop.services.stats import AccountBalance, Period, SmsPeriod, Stats
from shop.services.topups import REFUNDED, AdminStarsRefund, StarsRefundOutcome

RECON_DAYS = (1, 7, 30)

LEDGER_KINDS = {
    LedgerKind.CREDIT: __("credit"),
    LedgerKind.PURCHASE: __("purchase"),
    LedgerKind.REFUND: __("refund"),
    LedgerKind.ADJUSTMENT: __("adjustment"),
    LedgerKind.TOPUP: __("top-up"),
    LedgerKind.TOPUP_REFUND: __("top-up refund"),
    LedgerKind.PROMO: __("promo code"),
    LedgerKind.REFERRAL: __("referral bonus"),
    LedgerKind.RENTAL: __("rental"),
    LedgerKind.RENTAL_EXTEND: __("rental extension"),
    LedgerKind.RENTAL_REFUND: __("rental refund"),
}


def ledger_kind(kind: LedgerKind) -> str:
    label = LEDGER_KINDS.get(kind)
    return str(label) if label is not None else kind.value


def _back() -> InlineKeyboardButton:
    return button(_("⬅️ Back"), AdminCb(to="home"))


def _signed(currency: Currency, amount: int) -> str:
    return ("+" if amount > 0 else "") + currency.format(amount)


def _decimal(value: Decimal) -> str:
    """A plain number: no exponent, no trailing zeros."""
    text = format(value.normalize(), "f")
    return "0" if text in ("-0", "") else text


# -- the panel -----------------------------------------------------------------------------------


def home() -> str:
    return "\n".join(
        [
            _("🛠 <b>Admin panel</b>"),
            _("Pick a section. Everything here also has a command (they are in the / menu)."),
        ]
    )


def home_keyboard() -> InlineKeyboardMarkup:
    rows = InlineKeyboardBuilder()
    rows.add(
        button(_("📊 Stats"), AdminCb(to="stats")),
        button(_("👤 Users"), AdminCb(to="users")),
        button(_("🧾 Orders"), AdminCb(to="orders")),
        button(_("💲 Pricing"), AdminCb(to="pricing")),
        button(_("📣 Broadcast"), AdminCb(to="broadcast")),
        button(_("⚖️ Reconciliation"), AdminCb(to="recon", n=7)),
        button(_("💾 Backup"), AdminCb(to="backup")),
        button(_("📜 Audit log"), AdminCb(to="audit")),
    )
    rows.adjust(2)
    return rows.as_markup()


def back_keyboard(*extra: InlineKeyboardButton) -> InlineKeyboardMarkup:
    rows = [list(extra)] if extra else []
    return InlineKeyboardMarkup(inline_keyboard=[*rows, [_back()]])


def stats_keyboard() -> InlineKeyboardMarkup:
    return back_keyboard(button(_("🔄 Refresh"), AdminCb(to="stats")))


def recon_keyboard(days: int) -> InlineKeyboardMarkup:
    choices = [
        button(
            ("• " if d == days else "") + ngettext("{n} day", "{n} days", d).format(n=d),
            AdminCb(to="recon", n=d),
        )
        for d in RECON_DAYS
    ]
    return back_keyboard(*choices)


def backup_keyboard() -> InlineKeyboardMarkup:
    return back_keyboard(button(_("💾 Back up now"), AdminCb(to="dobackup")))


def audit_keyboard(page: int, pages: int) -> InlineKeyboardMarkup:
    rows = InlineKeyboardBuilder()
    rows.row(*pager(page, pages, lambda p: AdminCb(to="audit", n=p)))
    rows.row(_back())
    return rows.as_markup()


def users_help() -> str:
    return "\n".join(
        [
            _("👤 <b>Users</b>"),
            esc(_("/user <id or @username> — profile, flags, balance, last orders and ledger")),
            esc(_("/addbalance <user_id> <amount> [reason] — credit a wallet")),
            esc(_("/subbalance <user_id> <amount> <reason> — debit a wallet")),
            esc(_("/ban <id or @username> [reason] — ignore everything from a user")),
            esc(_("/unban <id or @username> — lift a ban")),
            _("Example: <code>/addbalance 12345 2.50 refund for order 17</code>"),
        ]
    )


def orders_help() -> str:
    return "\n".join(
        [
            _("🧾 <b>Orders</b>"),
            esc(_("/order <id> — an order's details, number and codes")),
            esc(_("/refund <order_id> — refund an order that got no code (cancels it upstream)")),
            esc(_("/user <id or @username> — a customer's last orders")),
        ]
    )


def broadcast_help() -> str:
    return "\n".join(
        [
            _("📣 <b>Broadcast</b>"),
            _(
                "Send /broadcast, then the message to send (text, photo, document, video…). "
                "You get a preview and a confirm button; the message is then copied to every "
                "active user, with one progress message that you can stop at any time."
            ),
        ]
    )


# -- stats ----------------------------------------------------------------------------------------


def _period(name: str, period: Period, currency: Currency) -> str:
    return _(
        "<b>{name}</b>: {orders} · {paid} paid · revenue {revenue} · cost {cost} · margin {margin}"
    ).format(
        name=name,
        orders=ngettext("{n} order", "{n} orders", period.orders).format(n=period.orders),
        paid=period.paid_orders,
        revenue=currency.format(period.revenue),
        cost=currency.format(period.cost),
        margin=currency.format(period.margin),
    )


def _sms_period(name: str, period: SmsPeriod, currency: Currency) -> str:
    return _(
        "<b>{name}</b>: {sends} sends · revenue {revenue} · cost {cost} · margin {margin}"
    ).format(
        name=name,
        sends=period.sends,
        revenue=currency.format(period.revenue),
        cost=currency.format(period.cost),
        margin=currency.format(period.margin),
    )


def rental_details(rental: Rental, currency: Currency, refundable: bool) -> str:
    """An admin's view of one rental (/rental)."""
    lines = [
        _("🏠 <b>Rental #{id}</b>").format(id=rental.id),
        _("User: <code>{user}</code>").format(user=rental.user_id),
        _("SMSPool: rental {offer} · code <code>{code}</code> · {country}").format(
            offer=esc(rental.offer_id),
            code=esc(rental.rental_code or "—"),
            country=esc(rental.country),
        ),
        _("Number: {phone}").format(phone=f"<code>{esc(rental.phone or '—')}</code>"),
        _("State: {state} · {days} days · extendable: {ext}").format(
            state=rental.state.value,
            days=rental.days,
            ext=_("yes") if rental.extendable else _("no"),
        ),
        _("Price {price} · paid net {paid} · cost {cost}").format(
            price=currency.format(rental.price),
            paid=currency.format(rental.paid),
            cost=currency.format(rental.cost),
        ),
        _("Messages: {n}").format(n=rental.messages),
    ]
    if rental.expires_at is not None:
        lines.append(_("Expires: {date} UTC").format(date=format_date(rental.expires_at)))
    if rental.needs_attention:
        lines.append(_("⚠️ Needs attention: {error}").format(error=esc(rental.error or "")))
    if not refundable:
        lines.append(_("Not refundable now (after 12 hours, after a message, or ended)."))
    return "\n".join(lines)


def rental_details_keyboard(rental_id: int) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(
        inline_keyboard=[
            [button(_("↩️ Refund this rental"), AdminRentalCb(rid=rental_id, act="refund"))]
        ]
    )


def rental_refunded(rental_id: int, refunded: int, currency: Currency) -> str:
    return _("Rental #{id} refunded: {amount} back to the customer.").format(
        id=rental_id, amount=currency.format(refunded)
    )


def rental_period(name: str, totals: RentalTotals, currency: Currency) -> str:
    return _(
        "<b>{name}</b>: {count} rentals ({live} live) · revenue {revenue} · cost {cost} · "
        "margin {margin}"
    ).format(
        name=name,
        count=totals.count,
        live=totals.live,
        revenue=currency.format(totals.revenue),
        cost=currency.format(totals.cost),
        margin=currency.format(totals.margin),
    )


def balance_line(account: AccountBalance, currency: Currency, threshold: int) -> str:
    if account.amount is None:
        return _("{title}: unavailable ({error})").format(
            title=esc(account.title), error=esc(account.error or "")
        )
    line = _("{title}: {amount} {code} (≈ {shop})").format(
        title=esc(account.title),
        amount=_decimal(account.amount),
        code=esc(account.currency),
        shop=currency.format(account.shop or 0),
    )
    if account.low:
        line = "⚠️ " + line + " " + _("— under {limit}").format(limit=currency.format(threshold))
    return line


def stats(result: Stats, currency: Currency, titles: dict[str, str], low_balance: int) -> str:
    lines = [
        _("📊 <b>Stats</b>"),
        _(
            "<b>Users</b>: {users} ({today} new today, {active} active in 7 days, {banned} banned)"
        ).format(
            users=result.users,
            today=result.users_today,
            active=result.active_week,
            banned=result.banned,
        ),
        _period(_("Today (UTC)"), result.today, currency),
    ]
    if result.week is not None:
        lines.append(_period(_("7 days"), result.week, currency))
    lines.append(_period(_("Total"), result.total, currency))
    if result.sms_today is not None:
        lines.append(_sms_period(_("SMS today"), result.sms_today, currency))
    if result.sms_total is not None:
        lines.append(_sms_period(_("SMS total"), result.sms_total, currency))
    if result.rentals is not None:
        for name, totals in zip(
            (_("Rentals today"), _("Rentals, 7 days"), _("Rentals total")),
            result.rentals,
            strict=True,
        ):
            lines.append(rental_period(name, totals, currency))
    if result.routes:
        lines.append("\n" + _("<b>Routes, 7 days</b> (orders with a code / with a number):"))
        for route in result.routes:
            share = round(100 * route.with_code / route.with_number) if route.with_number else 0
            lines.append(
                f"{esc(titles.get(route.route, route.route))}: "
                f"{route.with_code}/{route.with_number} ({share}%)"
            )
    if result.top_services:
        lines.append("\n" + _("<b>Top services, 7 days</b> (paid orders):"))
        for rank, service in enumerate(result.top_services, 1):
            lines.append(
                f"{rank}. {esc(service.name)} — {service.orders} · "
                f"{currency.format(service.revenue)}"
            )
    if result.topups is not None:
        today, week, total = result.topups
        lines.append(
            "\n"
            + _(
                "<b>Top-ups</b>: today {today_n} · {today}; 7 days {week_n} · {week}; "
                "total {total_n} · {total}"
            ).format(
                today_n=today.count,
                today=currency.format(today.amount),
                week_n=week.count,
                week=currency.format(week.amount),
                total_n=total.count,
                total=currency.format(total.amount),
            )
        )
    if result.balances:
        lines.append("\n" + _("<b>Upstream balances</b>"))
        lines.extend(balance_line(b, currency, low_balance) for b in result.balances)
    if result.self_check is not None:
        lines.append("\n" + self_check_line(result.self_check))
    return "\n".join(lines)


def self_check_line(check: SelfCheckStatus) -> str:
    """The last self-check of balances and orders against the ledger."""
    if check.last_run is None:
        return _("🩺 The self-check has not run yet.")
    if check.passed:
        return _("🩺 Self-check passed {time} UTC.").format(time=format_date(check.last_run))
    last_pass = format_date(check.last_pass) + " UTC" if check.last_pass else _("never")
    return _(
        "⚠️ Self-check failed {time} UTC: {balances} balance(s) and {orders} order(s) "
        "mismatch the ledger (the alert lists them). Last passed: {last_pass}."
    ).format(
        time=format_date(check.last_run),
        balances=check.balances,
        orders=check.orders,
        last_pass=last_pass,
    )


def providers(balances: list[AccountBalance], currency: Currency, low_balance: int) -> str:
    lines = [_("<b>Upstream balances</b>")]
    lines.extend(balance_line(b, currency, low_balance) for b in balances)
    if not balances:
        lines.append(_("No provider is configured."))
    return "\n".join(lines)


# -- users ----------------------------------------------------------------------------------------


def _order_line(order: Order, currency: Currency) -> str:
    return (
        f"#{order.id} · {esc(order.service_name)} · {esc(order.country)} · "
        f"{currency.format(order.price)} · {status_label(order.status)}"
        + (" · " + _("refunded") if order.refunded else "")
    )


def user_card(card: UserCard, currency: Currency) -> str:
    user = card.user
    name = esc(user.first_name or "—")
    handle = f" @{esc(user.username)}" if user.username else ""
    flags = []
    if user.is_banned:
        if card.ban is not None and card.ban[0]:
            flags.append(
                _("🚫 banned on {date}: {reason}").format(
                    date=format_date(card.ban[1]), reason=esc(card.ban[0])
                )
            )
        elif card.ban is not None:
            flags.append(_("🚫 banned on {date}").format(date=format_date(card.ban[1])))
        else:
            flags.append(_("🚫 banned"))
    if not user.is_active:
        flags.append(_("⛔ blocked the bot"))
    referrer = (
        f"{esc(card.referrer.first_name)} (<code>{card.referrer.id}</code>)"
        if card.referrer is not None
        else (f"<code>{user.referrer_id}</code>" if user.referrer_id else "—")
    )
    lines = [
        f"👤 <b>{name}</b>{handle} · id <code>{user.id}</code>",
        _("Language: {language} · chosen: {locale}").format(
            language=esc(user.language or "—"), locale=esc(user.locale or "—")
        ),
        _("Joined: {joined} · last seen: {seen}").format(
            joined=format_date(user.created_at),
            seen=format_date(user.last_seen) if user.last_seen else "—",
        ),
        _("Balance: <b>{balance}</b>").format(balance=currency.format(user.balance)),
        _("Referrer: {referrer}").format(referrer=referrer),
        _("Flags: {flags}").format(flags=" · ".join(flags) if flags else _("none")),
        "",
        _("<b>Last orders</b> ({shown} of {total}):").format(
            shown=len(card.orders), total=card.order_count
        ),
    ]
    lines.extend(_order_line(o, currency) for o in card.orders)
    if not card.orders:
        lines.append("—")
    lines.append("")
    lines.append(_("<b>Last ledger rows</b>:"))
    for entry in card.ledger:
        lines.append(
            f"{format_date(entry.created_at)} · {_signed(currency, entry.amount)} · "
            f"{ledger_kind(entry.kind)}" + (f" · {esc(entry.reason)}" if entry.reason else "")
        )
    if not card.ledger:
        lines.append("—")
    return "\n".join(lines)


# -- pricing --------------------------------------------------------------------------------------


def pricing(view: PricingView, currency: Currency) -> str:
    lines = [
        _("💲 <b>Pricing</b>"),
        _("Default markup: {percent}% (MARKUP_PERCENT)").format(
            percent=_decimal(view.default_markup)
        ),
    ]
    if view.rules:
        lines.append(
            _(
                "Overrides (the most specific wins: provider + service, provider, service, "
                "default):"
            )
        )
        for provider, service, percent in view.rules:
            lines.append(
                f"• {esc(provider or _('every provider'))}, {esc(service or _('every service'))}"
                f": {_decimal(percent)}%"
            )
    else:
        lines.append(_("No overrides."))
    lines.extend(
        [
            esc(_("Change: /setmarkup <percent> [provider] [service]")),
            "",
            _("Minimum top-up: {amount} (/setmintopup)").format(
                amount=currency.format(view.topup_min)
            ),
            _("Stars rate: 1 ⭐ = {rate} {code} (/setstarsrate)").format(
                rate=_decimal(view.stars_rate), code=currency.code
            ),
        ]
    )
    return "\n".join(lines)


# -- reconciliation -------------------------------------------------------------------------------


def _upstream(amount: Decimal, code: str) -> str:
    return f"{_decimal(amount)} {esc(code)}"


def _balance_check(change: BalanceChange, code: str) -> list[str]:
    signed = ("+" if change.actual > 0 else "") + _decimal(change.actual)
    lines = [
        _("Balance: {start} → {end} {code} ({change}), {since} → {until}").format(
            start=_decimal(change.start.amount),
            end=_decimal(change.end.amount),
            code=esc(code),
            change=signed,
            since=format_date(change.start.taken_at),
            until=format_date(change.end.taken_at),
        ),
        _("Our orders explain {expected} {code}.").format(
            expected=("+" if change.expected > 0 else "") + _decimal(change.expected),
            code=esc(code),
        ),
    ]
    gap = change.unexplained
    if gap < 0:
        lines.append(
            _(
                "⚠️ {amount} more went out than our orders explain: check the upstream's history."
            ).format(amount=_upstream(-gap, code))
        )
    elif gap > 0:
        lines.append(
            _(
                "ℹ️ {amount} more came in than our orders explain: a deposit you made "
                "upstream, or a refund."
            ).format(amount=_upstream(gap, code))
        )
    else:
        lines.append(_("✅ The balance matches our orders."))
    return lines


def reconciliation(
    results: list[Reconciliation],
    days: int,
    currency: Currency,
    rentals: RentalTotals | None = None,
) -> str:
    lines = [
        _("⚖️ <b>Reconciliation, last {days}</b>").format(
            days=ngettext("{n} day", "{n} days", days).format(n=days)
        )
    ]
    for item in results:
        lines.extend(
            [
                "",
                f"<b>{esc(item.title)}</b> ({esc(item.currency)})",
                _(
                    "Numbers: {numbers} · with a code {codes} · given back {returned} · "
                    "waiting {waiting}"
                ).format(
                    numbers=item.numbers,
                    codes=item.with_code,
                    returned=item.returned,
                    waiting=item.waiting,
                ),
                _("Paid upstream: {raw} (≈ {shop})").format(
                    raw=_upstream(item.paid_upstream_raw, item.currency),
                    shop=currency.format(item.paid_upstream),
                ),
                _("Charged customers: {charged} − refunds {refunded} = {net}").format(
                    charged=currency.format(item.charged),
                    refunded=currency.format(item.refunded),
                    net=currency.format(item.customer_net),
                ),
                _("Margin: <b>{margin}</b>").format(margin=currency.format(item.margin)),
            ]
        )
        if item.balance is not None:
            lines.extend(_balance_check(item.balance, item.currency))
        else:
            lines.append(
                _("No two balance snapshots in this period yet (one is taken every hour).")
            )
        if item.flagged:
            lines.append(
                ngettext(
                    "⚠️ {n} order needs attention (a cancel that failed, or a purchase with an "
                    "unknown outcome): check it upstream.",
                    "⚠️ {n} orders need attention (a cancel that failed, or a purchase with an "
                    "unknown outcome): check them upstream.",
                    item.flagged,
                ).format(n=item.flagged)
            )
    if rentals is not None:
        lines.extend(["", rental_period(_("SMSPool rentals"), rentals, currency)])
    if not results:
        lines.append(_("No provider is configured."))
    lines.extend(
        [
            "",
            _(
                "<i>Paid upstream counts numbers that got a code, numbers still waiting and "
                "failed cancels; a number cancelled or expired without a code is given back "
                "by the upstream. Orders count by purchase time. Deposits you make upstream "
                "raise the balance, so they show as money that came in.</i>"
            ),
        ]
    )
    return "\n".join(lines)


# -- backups and audit ---------------------------------------------------------------------------


def _size(size: int) -> str:
    if size >= 1024 * 1024:
        return f"{size / 1024 / 1024:.1f} MB"
    return f"{max(1, round(size / 1024))} KB"


def backups(files: list[Path], hour: int, keep: int, directory: Path) -> str:
    lines = [
        _("💾 <b>Backups</b>"),
        _("Every day at {hour}:00 UTC; the newest {keep} are kept in {dir}.").format(
            hour=f"{hour:02d}", keep=keep, dir=f"<code>{esc(str(directory))}</code>"
        ),
    ]
    if files:
        latest = files[-1]
        lines.append(
            _("Kept now: {count}; the latest is {name} ({size}).").format(
                count=len(files), name=esc(latest.name), size=_size(latest.stat().st_size)
            )
        )
    else:
        lines.append(_("No backup yet."))
    lines.append(_("/backup (or the button) sends you a copy now."))
    return "\n".join(lines)


def backups_by_operator() -> str:
    return "\n".join(
        [
            _("💾 <b>Backups</b>"),
            _(
                "This shop runs on PostgreSQL: the bot does not copy the database itself. "
                "Backups are taken by the operator with <code>pg_dump</code> (see the README)."
            ),
        ]
    )


def backup_caption(path: Path) -> str:
    return _("💾 Database backup {name} ({size}).").format(
        name=esc(path.name), size=_size(path.stat().st_size)
    )


def audit(entries: list[AuditEntry], page: int, pages: int) -> str:
    lines = [_("📜 <b>Audit log</b> (page {page}/{pages})").format(page=page + 1, pages=pages)]
    for entry in entries:
        parts = [
            format_date(entry.created_at),
            f"<code>{entry.actor_id}</code>",
            esc(entry.action),
        ]
        if entry.target:
            parts.append(esc(entry.target))
        if entry.detail:
            parts.append(esc(entry.detail))
        lines.append(" · ".join(parts))
    if not entries:
        lines.append(_("Nothing yet."))
    return "\n".join(lines)


# -- replies to the commands ---------------------------------------------------------------------


def backup_too_large(path: Path) -> str:
    return _("💾 The backup is too large to send here; it is saved as {path}.").format(
        path=f"<code>{esc(str(path))}</code>"
    )


def credited(user_id: int, amount: int, balance: int, currency: Currency) -> str:
    return _("Credited {amount} to {user}. New balance: {balance}.").format(
        amount=currency.format(amount), user=user_id, balance=currency.format(balance)
    )


def debited(user_id: int, amount: int, balance: int, currency: Currency) -> str:
    return _("Debited {amount} from {user}. New balance: {balance}.").format(
        amount=currency.format(amount), user=user_id, balance=currency.format(balance)
    )


def debit_notice(amount: int, reason: str, balance: int, currency: Currency) -> str:
    """What the customer is told about a debit (in their language)."""
    return _(
        "💸 {amount} was deducted from your balance: {reason}. Balance: <b>{balance}</b>"
    ).format(
        amount=currency.format(amount),
        reason=esc(reason),
        balance=currency.format(balance),
    )


def banned(user: User, live_orders: int) -> str:
    text = _("🚫 Banned {name} (<code>{id}</code>).").format(name=esc(user.first_name), id=user.id)
    if live_orders:
        text += " " + _("Their live orders keep running: {n}.").format(n=live_orders)
    return text


def unbanned(user: User) -> str:
    return _("✅ Unbanned {name} (<code>{id}</code>).").format(
        name=esc(user.first_name), id=user.id
    )


def no_such_order() -> str:
    return _("No such order.")


def order_details(order: Order, codes: list[OrderCode], currency: Currency) -> str:
    lines = [
        _("<b>Order #{id}</b> · user <code>{user}</code>").format(id=order.id, user=order.user_id),
        f"{esc(order.service_name)} · {esc(order.country)} · {esc(order.route)}",
        _("Status: {status}").format(status=status_label(order.status))
        + (" · " + _("⚠️ needs attention") if order.needs_attention else ""),
        _("Number: {phone} · activation {activation}").format(
            phone=f"<code>{esc(order.phone or '—')}</code>",
            activation=f"<code>{esc(order.activation_id or '—')}</code>",
        ),
        _("Price {price} · cost {cost} ({upstream} upstream)").format(
            price=currency.format(order.price),
            cost=currency.format(order.cost),
            upstream=esc(str(order.upstream_cost)),
        )
        + (" · " + _("refunded") if order.refunded else ""),
    ]
    if order.error:
        lines.append(_("Note: {note}").format(note=esc(order.error)))
    lines.extend(_("Code: {code}").format(code=f"<code>{esc(c.code)}</code>") for c in codes)
    return "\n".join(lines)


def order_refunded(order_id: int, amount: int, currency: Currency) -> str:
    return _("Refunded {amount} for order #{id}.").format(
        amount=currency.format(amount), id=order_id
    )


def markup_set(percent: Decimal, provider: str, service: str) -> str:
    return _("Markup {percent}% for {provider}, {service}.").format(
        percent=percent,
        provider=esc(provider or _("every provider")),
        service=esc(service or _("every service")),
    )


def sms_off() -> str:
    return _("SMS sending is not configured (SMSPM_HASH, SMSPM_TOKEN).")


def sms_price_set(country: str, price: int, currency: Currency) -> str:
    return _("SMS to {country}: {price} per segment.").format(
        country=esc(country), price=currency.format(price)
    )


def min_topup_set(amount: int, currency: Currency) -> str:
    return _("Minimum top-up: {amount}.").format(amount=currency.format(amount))


def stars_rate_set(rate: Decimal, currency: Currency) -> str:
    return _("Stars rate: 1 ⭐ = {rate} {code}.").format(rate=rate, code=currency.code)


def promo_created(promo: PromoCode, currency: Currency) -> str:
    expiry = (
        _("never expires")
        if promo.expires_at is None
        else _("expires {when} UTC").format(when=_utc(promo.expires_at))
    )
    return _("Promo code {code}: {amount} × {uses} uses, {expiry}.").format(
        code=esc(promo.code),
        amount=currency.format(promo.amount),
        uses=promo.max_uses,
        expiry=expiry,
    )


def _utc(timestamp: int) -> str:
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d %H:%M")


def stars_refund_text(result: AdminStarsRefund, currency: Currency) -> str:
    """What /refundstars tells the admin."""
    charge_id, outcome = esc(result.charge_id), result.outcome
    if outcome is StarsRefundOutcome.UNCREDITED:
        charge = result.charge
        assert charge is not None
        if charge.status == REFUNDED:
            return _(
                "Refunded {stars} ⭐ of payment {charge} to user {user}; it was never "
                "credited, so no wallet changed."
            ).format(stars=charge.stars, charge=charge_id, user=charge.user_id)
        return _(
            "Telegram did not refund payment {charge} ({error}). Nothing was "
            "credited for it; try /refundstars {charge} again later."
        ).format(charge=charge_id, error=esc(charge.error or ""))
    if outcome is StarsRefundOutcome.ALREADY_REFUNDED:
        return _(
            "Telegram says payment {charge} was refunded already; the wallet debit stands."
        ).format(charge=charge_id)
    if outcome is StarsRefundOutcome.REFUSED:
        return _(
            "Telegram refused the refund ({error}). The wallet debit was reversed; "
            "nothing changed."
        ).format(error=esc(result.detail))
    if outcome is StarsRefundOutcome.NO_ANSWER:
        return _(
            "Telegram did not answer ({error}). The wallet was debited; send "
            "/refundstars {charge} again to retry the Stars refund."
        ).format(error=esc(result.detail), charge=charge_id)
    if outcome is StarsRefundOutcome.DEBITED_BEFORE:
        return _("Stars refund of {charge} completed (the wallet was debited before).").format(
            charge=charge_id
        )
    refund = result.refund
    assert refund is not None
    lines = [
        _("Refunded {stars} ⭐ to user {user}; {amount} debited, balance {balance}.").format(
            stars=esc(refund.topup.pay_amount),
            user=refund.topup.user_id,
            amount=currency.format(refund.amount),
            balance=currency.format(refund.balance),
        )
    ]
    if refund.bonus_taken:
        lines.append(
            _("The referral bonus of {amount} was taken back from user {user}.").format(
                amount=currency.format(refund.bonus_taken), user=refund.inviter_id
            )
        )
    if refund.bonus_kept:
        lines.append(
            _(
                "User {user} has spent the referral bonus of {amount} already; it stays with them."
            ).format(amount=currency.format(refund.bonus_kept), user=refund.inviter_id)
        )
    return "\n".join(lines)
