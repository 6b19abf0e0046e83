"""A SQLite practice table laid out as versions before issue 13 made it: ``raw`` right after
``body_html``, with data in the columns after it (``created_at``, the IMAP UID, ...)."""

from __future__ import annotations

from sqlalchemy import Engine

from actors.mail import raw_blob


def lay_out_as_before(engine: Engine) -> None:
    """Make the empty ``email_messages`` of ``engine`` (a SQLite database ``db init`` made)
    again with ``raw`` where older versions put it, indexes and all."""
    with engine.begin() as conn:
        made = conn.exec_driver_sql(
            "SELECT type, sql FROM sqlite_master WHERE tbl_name = 'email_messages'"
        ).all()
        (table,) = [sql for kind, sql in made if kind == "table"]
        indexes = [sql for kind, sql in made if kind == "index" and sql]
        raw = "\n\traw BLOB, "
        assert raw in table, table
        assert "\n\tbody_html TEXT, " in table, table
        table = table.replace(raw, "").replace("\n\tbody_html TEXT, ", "\n\tbody_html TEXT, " + raw)
        conn.exec_driver_sql("DROP TABLE email_messages")
        for sql in [table, *indexes]:
            conn.exec_driver_sql(sql)
        assert not raw_blob.raw_is_last(conn)
