"""The pure core of Stepline: no AWS SDK, no wall clock.

- `model`: the durable records (runs, steps, cancel rules) and work messages;
- `ids`: step keys (`StepKey`), deterministic run ids, event ids and index keys;
- `errors`: the one error tree (control flow, the adapter contract, conflicts, the error
  types the engine records);
- the replay core: `interpreter` (the entry: a run's history and workflow in, an
  `Outcome` out, see `outcomes`), `session` (one invocation: positions, determinism,
  compare-and-set records, suspension, time budget, step gate), `operations/` (one
  module per durable operation, and the registry `steps` binds to `ctx.step`), `driver`
  (how operations' I/O and user code are performed, sync or async), `workflow_log`;
- `runner`: advances the run a work message names, through the ports, under a lease
  (`lease`);
- `lifecycle` and `events`: starting, cancelling, replaying and waking runs, and what
  an incoming event does (`matching`);
- `ports`: the Protocols the adapters in `infra/` implement, with the store's revisions;
  `testing`: in-memory fakes; `views`: what users are shown of runs and steps.
"""
