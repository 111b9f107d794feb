"""A throttle's long backlog: start times reserved more than 15 minutes ahead wake their
runs through EventBridge Scheduler (SQS delays stop at 15 minutes), and a backlog of
more than a page of schedules must still start on time. ListSchedules returns a page
(50 on moto, newest first); the local Scheduler read only the first one, so once the
backlog held over 50 long timers the due ones (the oldest, on later pages) never fired
and the backlog starved: the hour-long bench figure, 10 starts a minute until minute
43, then 6, 1, 1 and 0."""

from __future__ import annotations

from infra.local import LocalRuntime
from sdk import Event, Throttle
from tests.conftest import START
from tests.flow.test_throttle import app_with, started_at


def test_a_backlog_of_more_than_a_page_of_scheduler_timers_keeps_starting_on_time():
    with LocalRuntime(app_with(Throttle(limit=1, period="1m")), start=START) as rt:
        # GIVEN one start a minute and 16 runs at once (their timers are SQS delays),
        def send(first: int, count: int) -> list[str]:
            return [
                rt.send(Event(name="doc/added", data={"n": n}, id=f"d{n}"))[0]
                for n in range(first, first + count)
            ]

        runs = send(0, 16)
        # then, a minute later, 5 runs reserved 15 to 19 minutes ahead (Scheduler timers
        # past 15),
        rt.advance("1m")
        runs += send(16, 5)
        # and a minute after that 55 more, whose timers are newer than those five
        rt.advance("1m")
        runs += send(21, 55)
        assert len(rt.pending_schedules()) > 50
        # WHEN the twentieth minute passes
        rt.advance("18m")
        # THEN one run started in every minute, each at the time it reserved, in order
        started = [run for run in runs if rt.run(run).status == "COMPLETED"]
        assert started == runs[:21]
        offsets = [(started_at(rt, run) - START).total_seconds() for run in started]
        assert offsets == [60.0 * n for n in range(21)]
        assert rt.run(runs[21]).waiting is not None
