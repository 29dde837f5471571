"""The owners' alert for a purchase whose outcome is unknown tells the truth for both causes:
getNumber got no answer, or an answer that proves nothing (a 5xx page, HTML, garbage). Either
way it names the route and the `ref` to look for upstream."""

from __future__ import annotations

import pytest

from tests.conftest import BotHarness, fund
from tests.e2e.helpers import buy_to_confirm, start
from tests.fakes.smspalm import FakeSMSPalm
from tests.fakes.telegram import FakeUser


@pytest.mark.parametrize("cause", ["no answer", "502 page", "garbage"])
async def test_unknown_purchase_alert_fits_a_lost_and_an_unclear_answer(
    running: BotHarness, palm: FakeSMSPalm, admin: FakeUser, alice: FakeUser, cause: str
) -> None:
    await start(admin)
    await start(alice)
    await fund(admin, alice, "1")
    confirm = await buy_to_confirm(alice)
    if cause == "no answer":
        palm.delay_next("getNumber", 4)  # longer than HTTP_TIMEOUT_SECONDS=2
    elif cause == "502 page":
        palm.garble_next("getNumber", "<html><body>502 Bad Gateway</body></html>", 502)
    else:
        palm.garble_next("getNumber", "ACCESS_NUMB", 200)
    await alice.click(confirm, "Pay")
    await alice.wait_for("back on your balance")
    alert = await admin.wait_for(lambda m: "Order #" in m.plain and "ref=" in m.plain)
    assert "did not get a clear answer" in alert.plain
    assert "got no answer" not in alert.plain
    assert "SMSPalm Server 2" in alert.plain
    assert running.app is not None
    orders, _ = await running.app.orders.page_for_user(alice.id, 0, 10)
    (order,) = orders
    assert f"ref={order.id}" in alert.plain
    assert order.needs_attention and order.refunded
    await palm.wait_idle()
    assert await running.app.wallet.balance(alice.id) == 100
