"""The / menus: the commands everyone sees, and the longer list each admin sees.

English descriptions; the marked ones are sent in each catalog's language too (see
`bot.factory.telegram.set_commands`)."""

from __future__ import annotations

from aiogram.types import BotCommand

from shop.i18n import N_

# English descriptions, marked for extraction; `set_commands` sends one list per language.
USER_COMMANDS = [
    BotCommand(command="start", description=N_("Main menu")),
    BotCommand(command="buy", description=N_("Buy a number")),
    BotCommand(command="balance", description=N_("Your balance")),
    BotCommand(command="topup", description=N_("Top up your balance")),
    BotCommand(command="history", description=N_("Wallet history")),
    BotCommand(command="orders", description=N_("Your orders")),
    BotCommand(command="promo", description=N_("Redeem a promo code")),
    BotCommand(command="referrals", description=N_("Invite friends, earn a bonus")),
    BotCommand(command="language", description=N_("Language")),
    BotCommand(command="help", description=N_("How it works")),
]


# Added after /orders when rentals are sold (SMSPool configured).
RENTAL_COMMANDS = [
    BotCommand(command="rent", description=N_("Rent a number for days")),
    BotCommand(command="rentals", description=N_("Your rentals")),
]


# Shown in the admins' / menu after USER_COMMANDS; marked, so translated like them.
ADMIN_COMMANDS = {
    "admin": N_("the owner's panel"),
    "stats": N_("users, orders, revenue, margin, balances"),
    "user": N_("<id or @username> — a user's profile, orders and ledger"),
    "addbalance": N_("<user_id> <amount> [reason] — credit a wallet"),
    "subbalance": N_("<user_id> <amount> <reason> — debit a wallet"),
    "ban": N_("<id or @username> [reason] — ban a user"),
    "unban": N_("<id or @username> — lift a ban"),
    "order": N_("<id> — order details"),
    "rental": N_("<id> — rental details, with a refund button"),
    "refund": N_("<order_id> — refund an order without a code"),
    "providers": N_("upstream balances"),
    "reconcile": N_("[days] — upstream spend against revenue"),
    "backup": N_("a copy of the database"),
    "audit": N_("[page] — the admin actions log"),
    "smsprice": N_("<country> <price> — SMS price per segment"),
    "setmarkup": N_("<percent> [provider] [service] — markup"),
}


# Also in the admins' menu, in English in every language (not marked for translation).
TOPUP_ADMIN_COMMANDS = {
    "refundstars": "<charge_id> — refund a Telegram Stars top-up",
    "newpromo": "<code> <amount> <uses> [7d|YYYY-MM-DD] — create a promo code",
    "setmintopup": "<amount> — minimum top-up",
    "setstarsrate": "<rate> — shop currency per star",
}


BROADCAST_ADMIN_COMMANDS = {"broadcast": "message every active user"}
