"""Two roles on PostgreSQL: the owner of the tables, which runs the migrations
(SIP_MIGRATION_DATABASE_URL), and the application's role (DATABASE_URL), which owns
nothing. Only an owner (or a superuser) can drop a table, disable its triggers or
truncate it, so the application's role cannot undo the audit trail's guards; it is
granted SELECT, INSERT, UPDATE and DELETE on the tables, SELECT and INSERT only on the
audit trail, SELECT only on the schema's version, and the use of the sequences.

The grants are given again after every migration made through the owner's URL (a
migration may add a table); `sip db roles` gives them and checks the application's
role (see the README's "Database roles")."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine, text

#: Tables the application only reads and appends to, or only reads.
APPEND_ONLY = ("audit_event",)
READ_ONLY = ("alembic_version",)


def current_role(engine: Engine) -> str:
    with engine.connect() as conn:
        role: str = conn.execute(text("SELECT current_user")).scalar_one()
    return role


def grant_statements(engine: Engine, role: str) -> list[str]:
    """The statements that give `role` what the application needs, and no more."""
    quote = engine.dialect.identifier_preparer.quote
    who = quote(role)
    statements = [
        f"GRANT USAGE ON SCHEMA public TO {who}",
        f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {who}",
        f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {who}",
    ]
    for table in APPEND_ONLY:
        statements.append(f"REVOKE UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER ON {quote(table)} FROM {who}")
    for table in READ_ONLY:
        statements.append(f"REVOKE INSERT, UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER ON {quote(table)} FROM {who}")
    return statements


def grant_application_role(owner: Engine, role: str) -> None:
    """As the owner: grant the application's role its privileges (PostgreSQL only;
    nothing to do when it is the owner itself)."""
    if owner.dialect.name != "postgresql" or role == current_role(owner):
        return
    with owner.begin() as conn:
        for statement in grant_statements(owner, role):
            conn.execute(text(statement))


@dataclass(frozen=True)
class RoleCheck:
    role: str
    superuser: bool
    owned_tables: list[str]
    may_create: bool

    @property
    def separated(self) -> bool:
        """The role can neither drop nor alter the tables, nor make new ones."""
        return not (self.superuser or self.owned_tables or self.may_create)


def check_application_role(engine: Engine) -> RoleCheck:
    """What the role of this connection may do to the schema (PostgreSQL)."""
    with engine.connect() as conn:
        role, superuser, may_create = conn.execute(
            text(
                "SELECT current_user, rolsuper, has_schema_privilege('public', 'CREATE') "
                "FROM pg_roles WHERE rolname = current_user"
            )
        ).one()
        owned = conn.execute(
            text(
                "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') "
                "AND pg_has_role(current_user, c.relowner, 'USAGE') ORDER BY c.relname"
            )
        ).scalars()
        return RoleCheck(role=role, superuser=bool(superuser), owned_tables=list(owned), may_create=bool(may_create))
