"""The store: engine and sessions, tables, migrations."""
