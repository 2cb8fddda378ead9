"""The PostgreSQL backend of chatd's storage (cluster mode).

Importing this package imports asyncpg, an optional dependency (the
``cluster`` extra): only the composition root imports it, and only when
``cluster.enabled`` is set, so the embedded daemon never loads the driver.
"""

from storage.postgres.schema import PG_LATEST_VERSION, PG_MIGRATIONS, PgMigration
from storage.postgres.storage import PostgresStorage

__all__ = ["PG_LATEST_VERSION", "PG_MIGRATIONS", "PgMigration", "PostgresStorage"]
