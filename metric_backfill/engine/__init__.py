"""The engine: plan → stage → (net against live) → publish, with the durable state that makes it
resumable and the ledger, lease and fence that make it exactly once.

`_run` is the entry (run, dry_run, publish_run, publish_staged); `_plan` cuts sources into chunks;
`_stage` reads and fans them out into staging; `_net` nets against the live events; `_publish`
builds and commits slices and settles interrupted ones; `_fence` and `_lease` keep runs from
doubling each other; `_state` holds runs, chunks and stats; `_target` introspects targets and
their views; `_status` reports progress.

May import: `metric_backfill.catalog`, `metric_backfill.backends`, `_config`, `_errors`. Never the CLI,
verify or demo, and never a database driver directly.
"""
