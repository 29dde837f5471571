"""Outbound SMS: a 100-recipient send, from the customer's Confirm tap to every status final.

The real bot (long polling, scheduler, SQLite, report endpoint) runs against FakeTelegram and
a FakeSMSPM that answers at once and reports each message's outcome (queued -> submitted ->
delivered, or failed for a few) to the bot's callback URL as soon as it has it. Measured:

* confirm -> all statuses final in the database (the money side: every refund applied);
* confirm -> the customer's status message showing "Finished" (includes the debounced edit);
* upstream requests used (sends and /smsdetails polls) and Telegram edits of the status.

Run: ``python -m bench.sms_send``
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import tempfile
import time
from pathlib import Path

from bench._common import TOKEN, add_summary_arg, line, make_settings, write_summary
from bot.app import build_app
from tests.fakes.smspm import FakeSMSPM
from tests.fakes.telegram import FakeTelegram

RECIPIENTS = [f"+372 5{i:07d}" for i in range(1000100, 1000200)]
FAILED = 7


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def run() -> dict[str, float]:
    telegram = FakeTelegram(token=TOKEN)
    smspm = FakeSMSPM()
    await telegram.start()
    await smspm.start()
    smspm.auto_after = 0.05
    smspm.auto_outcome = {"*": "delivered"}
    for number in RECIPIENTS[:FAILED]:
        smspm.auto_outcome["".join(c for c in number if c.isdigit())] = "failed"
    port = _free_port()
    with tempfile.TemporaryDirectory() as tmp:
        settings = make_settings(
            Path(tmp) / "bot.db",
            telegram_api_url=telegram.base_url,
            admin_ids="1",
            smspm_hash=smspm.hash,
            smspm_token=smspm.token,
            smspm_base_url=smspm.base_url,
            smspm_price_default="0.10",
            smspm_rate_limit=6000,
            smspm_poll_seconds=30,
            http_port=port,
            public_base_url=f"http://127.0.0.1:{port}",
        )
        app = await build_app(settings)
        task = asyncio.create_task(app.run_polling(handle_signals=False, polling_timeout=1))
        try:
            user = telegram.user(5001, first_name="Bench")
            admin = telegram.user(1, first_name="Owner")
            await user.send("/start")
            await user.wait_for("👋 Hi")
            await admin.send(f"/addbalance {user.id} 50")
            await admin.wait_for("Credited")
            await user.send("/sms")
            await user.wait_for("Send SMS")
            await user.send("\n".join(RECIPIENTS))
            await user.wait_for("Now send the text")
            await user.send("Flash sale: 20% off everything today only!")
            confirm = await user.wait_for("Confirm your SMS")
            edits_before = len(telegram.calls_to("editMessageText"))

            started = time.perf_counter()
            await user.click(confirm, "Send for")
            status = await user.wait_for("SMS #")
            assert app.sms is not None
            send_id = (await app.sms.recent(user.id, 1))[0].id
            db_final = float("nan")
            while time.perf_counter() - started < 30:
                view = await app.sms.view(user.id, send_id)
                if view.send.status == "done":
                    db_final = time.perf_counter() - started
                    break
                await asyncio.sleep(0.005)
            await user.wait_for(
                lambda m: m.message_id == status.message_id and "Finished" in m.plain, timeout=30
            )
            screen_final = time.perf_counter() - started
            view = await app.sms.view(user.id, send_id)
            edits = len(telegram.calls_to("editMessageText")) - edits_before
            return {
                "recipients": len(RECIPIENTS),
                "db_final_s": db_final,
                "screen_final_s": screen_final,
                "sends": smspm.count("/"),
                "details_polls": smspm.count("/smsdetails"),
                "reports": len(smspm.reports_sent),
                "edits": edits,
                "refunded_cents": view.refunded,
            }
        finally:
            await app.dp.stop_polling()
            await task
            await app.close()
            await smspm.stop()
            await telegram.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    add_summary_arg(parser)
    args = parser.parse_args()
    figures = asyncio.run(run())
    print("SMS send: 100 recipients, fake SMSPM answering at once, reports to the bot")
    print(line("recipients (7 fail upstream)", f"{figures['recipients']}"))
    print(line("confirm -> all final in the database", f"{figures['db_final_s'] * 1000:.0f} ms"))
    print(line("confirm -> 'Finished' on screen", f"{figures['screen_final_s'] * 1000:.0f} ms"))
    print(line("upstream send requests", f"{figures['sends']}", "1", figures["sends"] == 1))
    print(line("upstream /smsdetails polls", f"{figures['details_polls']}"))
    print(line("delivery reports received", f"{figures['reports']}"))
    print(line("Telegram edits of the status", f"{figures['edits']}"))
    print(
        line(
            "refunded (7 × $0.10)",
            f"{figures['refunded_cents']} cents",
            "70",
            figures["refunded_cents"] == 70,
        )
    )
    write_summary(args.summary_json, figures)


if __name__ == "__main__":
    main()
