"""Database-enforced append-only tables: no UPDATE, DELETE or TRUNCATE, ever.

The application never issues them; these triggers make sure nobody else
can either, short of dropping the trigger (which ``credo audit verify``
then catches through the Merkle log).
"""

from __future__ import annotations

from sqlalchemy import Connection

PG_FUNCTION = """
CREATE OR REPLACE FUNCTION credo_append_only() RETURNS trigger AS $$
BEGIN
  RAISE EXCEPTION 'credo: %% is append-only: %% refused', TG_TABLE_NAME, TG_OP
    USING ERRCODE = 'insufficient_privilege';
END;
$$ LANGUAGE plpgsql
"""


def protect(conn: Connection, table: str) -> None:
    if conn.dialect.name == "sqlite":
        for op in ("UPDATE", "DELETE"):
            conn.exec_driver_sql(
                f"CREATE TRIGGER {table}_no_{op.lower()} BEFORE {op} ON {table} "
                f"BEGIN SELECT RAISE(ABORT, 'credo: {table} is append-only: {op} refused'); END"
            )
        return
    conn.exec_driver_sql(PG_FUNCTION)
    conn.exec_driver_sql(
        f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
        f"FOR EACH ROW EXECUTE FUNCTION credo_append_only()"
    )
    conn.exec_driver_sql(
        f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
        f"FOR EACH STATEMENT EXECUTE FUNCTION credo_append_only()"
    )
    # Privileges too: roles other than the owner get INSERT and SELECT only.
    conn.exec_driver_sql(f"REVOKE UPDATE, DELETE, TRUNCATE ON {table} FROM PUBLIC")


def unprotect(conn: Connection, table: str) -> None:
    if conn.dialect.name == "sqlite":
        for op in ("update", "delete"):
            conn.exec_driver_sql(f"DROP TRIGGER IF EXISTS {table}_no_{op}")
        return
    conn.exec_driver_sql(f"DROP TRIGGER IF EXISTS {table}_append_only ON {table}")
    conn.exec_driver_sql(f"DROP TRIGGER IF EXISTS {table}_no_truncate ON {table}")
