"""The demo: every example workflow on embedded moto with virtual time.

    python -m examples.demo

Weeks of sleeps, waits and retries run in seconds; each run's audit trail is printed.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

from examples import app, services
from infra.local import LocalRuntime
from infra.local.render import console, timeline
from sdk import Event

START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def main() -> None:
    out = console()
    began = time.perf_counter()
    services.reset()
    services.payments.script["acct-42"] = [False, False, True]
    with LocalRuntime(app, start=START) as rt:
        out.rule("Stepline demo: the seed workflows on embedded moto, virtual time")
        runs: list[tuple[str, str]] = []

        [never] = rt.send(Event(name="user/signup", data={"userId": "ada"}))
        runs.append(
            (
                "Onboarding, a user who never activates: nudged after a day, flagged after a week",
                never,
            )
        )
        [active] = rt.send(Event(name="user/signup", data={"userId": "grace"}))
        runs.append(("Onboarding, a user who activates within the day: no nudge", active))
        services.users.activate("grace")

        [billing] = rt.send(
            Event(
                name="billing/invoice.created",
                data={
                    "accountId": "acct-42",
                    "amount": 4900,
                    "invoiceDate": (START + timedelta(days=2)).isoformat(),
                },
            )
        )
        runs.append(
            ("Billing: two declined charges a day apart, then paid; receipt in parallel", billing)
        )

        [profiled] = rt.send(Event(name="app/user.signup", data={"userId": "linus"}))
        runs.append(("Campaign: the profile arrives within the day (wait_for_event)", profiled))
        [deleted] = rt.send(Event(name="app/user.signup", data={"userId": "ken"}))
        runs.append(
            (
                "Campaign: no profile (timeout), then the user is deleted mid-drip (cancel_on)",
                deleted,
            )
        )

        [order] = rt.send(
            Event(
                name="shop/order.placed",
                data={
                    "customerId": "acct-7",
                    "amount": 1200,
                    "skus": ["tea", "cup"],
                    "placedAt": START.isoformat(),
                },
            )
        )
        runs.append(
            ("Async order: stock checked in parallel, billing invoked as a child run", order)
        )

        [approved] = rt.send(
            Event(name="expense/submitted", data={"employeeId": "barbara", "amount": 48_000})
        )
        runs.append(
            (
                "Expense approval: waits for the manager's answer (a callback), then reimburses",
                approved,
            )
        )
        services.payments.script.update({"seller-3": [False]})
        [payouts] = rt.send(
            Event(
                name="payouts/week.closed",
                data={"sellers": [{"id": f"seller-{n}", "amount": 1_000 * n} for n in range(1, 7)]},
            )
        )
        runs.append(
            ("Weekly payouts: a map over six sellers tolerating 25% failures; one refused", payouts)
        )

        rt.advance(timedelta(hours=3))
        # The manager answers: anyone holding the callback's id can (here, the local runtime).
        rt.complete_callback(
            services.approvals.pending_for("barbara"), result={"approved": True, "by": "margaret"}
        )
        rt.send(Event(name="app/user.profile.completed", data={"userId": "linus"}))
        rt.advance(timedelta(days=2))
        rt.send(Event(name="app/user.deleted", data={"userId": "ken"}))
        rt.advance(timedelta(days=12))

        for title, run_id in runs:
            out.print()
            out.print(f"[bold]{title}[/bold]")
            out.print(timeline(rt.run(run_id), rt.history(run_id)))

        elapsed = rt.now() - START
        out.print()
        out.rule("Summary")
        every = rt.runs()
        statuses = sorted({run.status for run in every})
        counts = ", ".join(f"{sum(r.status == s for r in every)} {s.lower()}" for s in statuses)
        out.print(
            f"{len(every)} runs ({counts}; the order's billing child is not shown), "
            f"{rt.deliveries['work']} engine invocations, "
            f"{sum(rt.deliveries.values()) - rt.deliveries['work']} event deliveries to handlers."
        )
        out.print(
            f"Virtual time: {elapsed.days} days; wall time: {time.perf_counter() - began:.1f} s. "
            f"Emails sent: {len(services.mailer.sent)}."
        )


if __name__ == "__main__":
    main()
