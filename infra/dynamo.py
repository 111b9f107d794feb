"""DynamoDB adapter: the run store, the match index and the event log, in one table.

Item layout (`pk` / `sk`; every record is one JSON attribute `r`):

| item | pk | sk | other attributes |
|---|---|---|---|
| run | `RUN#<run>` | `RUN` | `st` status, `v` version, `wk` wake time (epoch µs), `wf`, `g2pk`/`g2sk` (runs index); while RUNNING `ls` lease (who holds it), `lx` its expiry (epoch µs), `lr` the step running now |
| trigger event | `RUN#<run>` | `EVENT` | |
| cancel rule | `RUN#<run>` | `CANCEL#<i>` | `g1pk`/`g1sk` (waiters index) |
| step | `RUN#<run>` | `STEP#<step key>` | `g1pk`/`g1sk` while indexed as a wait |
| wait paths | `WAITPATHS#<event name>` | `_` | `paths` string set |
| logged event | `EVLOG#<name>#<day>` | `<ts received>#<digest of id>` | `ttl` |
| what an event started | `EVENT#<sha-256 of its id>` | `OUTCOME` | `ttl` |
| an event of a batched run | `RUN#<run>` | `BEV#<position>` | |
| flow-control state: a key's GCRA time, debounce, batch, lock; concurrency slots and queues; what a controlled workflow did with an event | `FLOW#...`, `FLOWQ#...`, `FLOWEV#...` | | see infra/dynamo_flow.py |

So loading a run is one Query on its partition, each step write is one PutItem with a
condition, and an event finds its waits with one Query on the `waiters` index.

`DynamoStore` is assembled from one module per part of the table:

- infra/dynamo_table.py: the client, error translation (no `ClientError` leaves the
  store), and how records, keys and revisions are encoded as items;
- infra/dynamo_runs.py: the run partition (`RunStore`), and its compare-and-set rules;
- infra/dynamo_index.py: the waiters and runs indexes, wait paths and the event logs
  (`MatchIndex`, `EventLog`, run listings);
- infra/dynamo_flow.py: the flow controls' items (`FlowStore`).

Throttling is retried by botocore (standard mode); what is left becomes
`TransientError`, and what retrying cannot fix a `PermanentError` (`TableMissing`,
`ItemTooLargeError`, ...), chosen by error code (infra/aws_errors.py). Keys stay within
DynamoDB's limits by construction: index keys (`g1pk`) that would be too long are
digests (engine/ids.py), and event ids enter the event log's sort key as digests.
"""

from __future__ import annotations

from engine.errors import TableMissing
from infra.dynamo_flow import FlowItems
from infra.dynamo_index import IndexItems
from infra.dynamo_runs import RunItems


class DynamoStore(RunItems, IndexItems, FlowItems):
    """Implements RunStore, MatchIndex, EventLog and FlowStore on one table."""


__all__ = ["DynamoStore", "TableMissing"]
