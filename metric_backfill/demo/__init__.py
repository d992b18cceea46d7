"""The demo: an embedded PostgreSQL (pgserver, the `[demo]` extra), a seeded generator of the site's
data with every edge case, the schema files (`sql/`), and `run_demo`.

May import: the engine, verify, the catalog, the backends. Not part of a production backfill.
"""
