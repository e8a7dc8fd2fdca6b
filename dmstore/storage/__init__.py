"""Storage primitives a store is made of: where files live (`paths`), atomic file operations
(`files`), Parquet settings (`parquet`), table schemas (`schema`), the manifest, the commit log
(`log`), units (`units`), writer leases (`lease`), `vacuum` and format `migrate`ions.

Nothing here knows about models, fits or SQL: the store (`dmstore.store`) is built on it.
"""
