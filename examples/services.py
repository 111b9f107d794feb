"""In-memory stand-ins for the outside world the examples talk to: email, users, payments,
an approver's inbox.

Real workflows would call SES, a database and Stripe here. These keep what was done so
the demo can print it and the tests can assert on it; `reset()` forgets everything.
"""

from __future__ import annotations

import itertools
import threading
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Mailer:
    sent: list[tuple[str, str]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def send(self, user_id: str, template: str) -> dict[str, str]:
        with self._lock:
            self.sent.append((user_id, template))
        return {"to": user_id, "template": template, "status": "sent"}

    def count(self, template: str) -> int:
        return sum(1 for _, sent in self.sent if sent == template)


@dataclass
class Users:
    activated: set[str] = field(default_factory=set)
    flagged: list[str] = field(default_factory=list)

    def find(self, user_id: str) -> dict[str, Any]:
        return {"id": user_id, "activated": user_id in self.activated}

    def activate(self, user_id: str) -> None:
        self.activated.add(user_id)

    def flag_for_review(self, user_id: str) -> dict[str, Any]:
        self.flagged.append(user_id)
        return {"id": user_id, "flagged": True}


@dataclass
class Payments:
    """Charges succeed or fail per account, in the order the test or demo scripts.

    Like Stripe, a charge with an idempotency key already seen returns the first result
    instead of charging again: a step re-run after a crash cannot charge twice.
    """

    script: dict[str, list[bool]] = field(default_factory=dict)
    charges: list[dict[str, Any]] = field(default_factory=list)
    recorded: list[str] = field(default_factory=list)
    calls: int = 0
    _by_key: dict[str, dict[str, Any]] = field(default_factory=dict, repr=False)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1), repr=False)

    def charge(self, account_id: str, amount: int, idempotency_key: str = "") -> dict[str, Any]:
        self.calls += 1
        if idempotency_key and idempotency_key in self._by_key:
            return self._by_key[idempotency_key]
        outcomes = self.script.get(account_id, [])
        success = outcomes.pop(0) if outcomes else True
        charge = {
            "id": f"ch_{next(self._ids)}",
            "account": account_id,
            "amount": amount,
            "success": success,
        }
        self.charges.append(charge)
        if idempotency_key:
            self._by_key[idempotency_key] = charge
        return charge

    def record_payment(self, charge: dict[str, Any]) -> dict[str, Any]:
        if charge["id"] not in self.recorded:  # an upsert, as in the seed
            self.recorded.append(charge["id"])
        return {"payment": charge["id"], "status": "recorded"}


@dataclass
class Approvals:
    """A manager's inbox: each request keeps the callback id its answer must name."""

    requests: list[dict[str, Any]] = field(default_factory=list)

    def request(self, callback_id: str, expense: dict[str, Any]) -> dict[str, str]:
        self.requests.append({"callback_id": callback_id, "expense": expense})
        return {"status": "requested"}

    def pending_for(self, employee_id: str) -> str:
        """The callback id of the latest request for `employee_id`'s expense."""
        for request in reversed(self.requests):
            if request["expense"]["employeeId"] == employee_id:
                return str(request["callback_id"])
        raise LookupError(f"no approval requested for {employee_id}")


mailer = Mailer()
users = Users()
payments = Payments()
approvals = Approvals()


def reset() -> None:
    mailer.__init__()  # type: ignore[misc]
    users.__init__()  # type: ignore[misc]
    payments.__init__()  # type: ignore[misc]
    approvals.__init__()  # type: ignore[misc]
