"""The pure core of Stepline: no AWS SDK, no wall clock.

- `model`: the durable records (runs, steps, cancel rules) and work messages;
- `ids`: deterministic step positions, run ids, event ids and index keys;
- `interpreter`: the replay core, which runs a workflow over its history;
- `runner`: advances the run a work message names, through the ports;
- `lifecycle` and `events`: starting, cancelling, replaying and waking runs, and what
  an incoming event does;
- `ports`: the Protocols the adapters in `infra/` implement; `testing`: in-memory fakes.
"""
