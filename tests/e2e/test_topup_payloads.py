"""A forged Stars invoice payload is a clean refusal at pre-checkout, never an exception.

The payload `t:<top-up id>` is read with the bounded ASCII parser (`shop.numbers.parse_uint`):
digits that `str.isdigit()` accepts but `int()` rejects (`²`), other scripts' digits that
`int()` reads (`١` is 1), signs, spaces and numbers beyond SQLite's range all name no top-up.
"""

from __future__ import annotations

import logging

import pytest

from tests.conftest import BotHarness
from tests.e2e.test_topups import invoice_for, menu, pre_checkout
from tests.fakes.telegram import FakeTelegram, FakeUser

NOT_VALID = "This invoice is not valid. Please start a new top-up."


@pytest.mark.parametrize(
    "payload",
    [
        "t:²",  # isdigit() says yes, int() raises
        "t:1²",
        "t:١",  # Arabic-Indic one: int() reads it as 1, a real pending top-up of this user
        "t:" + "9" * 30,
        "t:" + "0" * 30 + "1",
        "t:+1",
        "t: 1",
        "t:",
    ],
)
async def test_forged_payload_is_refused_cleanly(
    running: BotHarness,
    telegram: FakeTelegram,
    alice: FakeUser,
    caplog: pytest.LogCaptureFixture,
    payload: str,
) -> None:
    await menu(alice)
    invoice = await invoice_for(alice, "$5.00")
    assert invoice.invoice is not None and invoice.invoice["payload"] == "t:1"
    with caplog.at_level(logging.INFO):
        verdict = await pre_checkout(telegram, alice, invoice, invoice_payload=payload)
    assert verdict == (False, NOT_VALID)
    assert "could not be checked" not in caplog.text  # no exception on the way
    assert "bad_payload" in caplog.text
    # The genuine payload of the same invoice still passes.
    assert await pre_checkout(telegram, alice, invoice) == (True, None)
