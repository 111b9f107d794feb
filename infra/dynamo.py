"""DynamoDB adapter: the run store, the match index and the event log, in one table.

Item layout (`pk` / `sk`; a record is one JSON attribute `r`, or zlib-compressed JSON
`z` for a step record over about 900 bytes):

| item | pk | sk | other attributes |
|---|---|---|---|
| run | `RUN#<run>` | `RUN` | `st` status, `v` version, `wk` wake time (epoch µs), `wf`, `g2pk`/`g2sk` (runs index); while RUNNING `ls` lease (who holds it), `lx` its expiry (epoch µs), `lr` the step running now |
| trigger event | `RUN#<run>` | `EVENT` | |
| cancel rule | `RUN#<run>` | `CANCEL#<i>` | |
| step | `RUN#<run>` | `STEP#<step key>` | |
| wait entry | `WAIT#<name>#<path>#<value>` (no match: `WAIT#<name>#*#<shard>`) | `<run>#<step key>` | a copy of the waiting step's `r`/`z` |
| cancel rule entry | `CANCEL#<workflow>#<i>#<value>` (no match: `...#*#<shard>`) | `<run>#<i>` | |
| wait paths | `WAITPATHS#<event name>#<copy 0-7>` | `_` | `paths` string set; `at:<path>` when this copy first held it (epoch µs) |
| logged event | `EVLOG#<name>#<day>#<shard>` | `<ts received>#<digest of id>` | `ttl` |
| event kept under a wait's key | `EVKEY#<wait key>` (no match: `EVKEY#<wait key>#<cell 0-63>`, one row of 4 cells per event) | `<ts received>#<digest of id>` | `ttl` |
| months with runs | `RUNS#MONTHS` | `_` | `months` string set |
| what an event started | `EVENT#<sha-256 of its id>` | `OUTCOME` | `ttl` |
| the waits it resolved, the runs it cancelled | `EVENT#<sha-256 of its id>` | `RESOLVED`, `CANCELLED` | `ttl`; only when there are some |
| a workflow's hold | `WORKFLOW#<id>` | `CONTROL` | |
| event names seen (for the dashboard) | `EVNAMES` | `_` | `names` string set |
| an event of a batched run | `RUN#<run>` | `BEV#<position>` | |
| flow-control state: a key's GCRA time, debounce, batch, lock; concurrency slots and queues; what a controlled workflow did with an event | `FLOW#...`, `FLOWQ#...`, `FLOWEV#...` | | see infra/dynamo_flow.py |

The runs index (`runs`, keys only) is keyed `RUNS#<month>#<shard>`.

So loading a run is one Query on its partition, each step write is one PutItem with a
condition, and an event finds its waits with one strongly consistent Query per key.

No key is shared by all runs of a workflow, all events of a name or all runs of a month
(DynamoDB serves about 1,000 write and 3,000 read units a second per key): what would be
is split into SHARDS (16) keys by a hash of the run or event id (the runs index, the
event log, match-less wait and cancel entries), and the wait paths every event of a
name reads are 8 identical items. An event is also kept under the wait key of each match
path of its name (`EVKEY#`), so a new wait on a path known for longer than its window
looks back at its own key alone instead of every shard of the name's log. The
match-less key, which every event of the name and every new match-less wait would
share, is a grid of 16 x 4 keys: an event writes the 4 of one row (one BatchWriteItem),
a new wait reads the 16 of one column, which cross every row (infra/dynamo_table.py,
GRID_ROWS and GRID_COLUMNS). A run's cancel rules look back the same way at its first
invocation: their match paths are wait paths of their event names. A wait's entry is written before its step, so once a
wait is stored any event finds it without an index (which on AWS lags). An entry is a
copy: one left behind by a crash or a lost race costs a failed compare-and-set, or, if it
no longer says WAITING, one read of the step itself, which decides (engine/events.py).

`DynamoStore` is assembled from one module per part of the table:

- infra/dynamo_table.py: the client, error translation (no `ClientError` leaves the
  store), and how records, keys and revisions are encoded as items;
- infra/dynamo_runs.py: the run partition (`RunStore`), and its compare-and-set rules;
- infra/dynamo_index.py: the waiters and runs indexes, wait paths and the event logs
  (`MatchIndex`, `EventLog`, run listings);
- infra/dynamo_operator.py: workflow holds, what the waits and cancel handlers did with
  an event, and the dashboard's browsing reads;
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
from infra.dynamo_operator import OperatorItems
from infra.dynamo_runs import RunItems


class DynamoStore(RunItems, OperatorItems, FlowItems):
    """Implements RunStore, MatchIndex, EventLog and FlowStore on one table."""


__all__ = ["DynamoStore", "TableMissing"]
