"""SECURITY DEFINER owners never see their callers' statements (issue 7.5)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from fixtures import error_of, reset
from hardening_helpers import create_roles, role_oid
from history_helpers import dicts, rows
from pgserver import PgServer

# each test runs inside one bucket (see fixtures.bucket_room)
pytestmark = pytest.mark.usefixtures("bucket_room")

OWNER = "hard_def_owner"
CALLER = "hard_def_caller"
SCHEMA = "hard_def"
F_CALL = f"SELECT {SCHEMA}.f() /* caller-secret-1 */"
G_CALL = f"SELECT {SCHEMA}.g() /* caller-secret-2 */"
SECRET = "%caller-secret%"


@pytest.fixture(scope="module")
def definer(server: PgServer) -> Iterator[None]:
    """A plain owner with two SECURITY DEFINER functions: f() warns, g() fails."""
    create_roles(server, OWNER, CALLER)
    server.sql(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE")
    server.sql(f"CREATE SCHEMA {SCHEMA} AUTHORIZATION {OWNER}")
    server.sql(f"GRANT USAGE ON SCHEMA {SCHEMA} TO {CALLER}")
    with server.connect(user=OWNER) as owner:
        owner.execute(f"CREATE FUNCTION {SCHEMA}.f() RETURNS int LANGUAGE plpgsql"
                      " SECURITY DEFINER AS $$ BEGIN PERFORM count(*) FROM pg_class;"
                      " RAISE WARNING 'w'; RETURN 1; END $$")
        owner.execute(f"CREATE FUNCTION {SCHEMA}.g() RETURNS int LANGUAGE plpgsql"
                      " SECURITY DEFINER AS $$ BEGIN RAISE EXCEPTION 'boom'; END $$")
    yield
    server.sql(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE")
    for role in (OWNER, CALLER):
        server.sql(f"DROP ROLE IF EXISTS {role}")


def run_as_caller(server: PgServer) -> None:
    """The caller calls f() and g() (which fails), tracking nested statements and comments."""
    with server.connect(user=CALLER) as caller:
        caller.execute("SET pg_stat_monitor.pgsm_track = 'all'")
        caller.execute("SET pg_stat_monitor.pgsm_extract_comments = on")
        caller.execute(F_CALL)
        err = error_of(caller, G_CALL)
    assert err.sqlstate == "P0001"


def leaks(conn: psycopg.Connection[Any]) -> list[tuple[Any, ...]]:
    """Rows of the view with a caller's secret in any column (the whole row as text)."""
    return rows(conn, "SELECT p::text FROM pg_stat_monitor p WHERE p::text LIKE %s", SECRET)


def test_definer_owner_sees_no_caller_text(
        conn: psycopg.Connection[Any], server: PgServer, definer: None) -> None:
    """The owner of f() and g() finds no caller text in any column of any row it can read."""
    reset(conn)
    run_as_caller(server)
    with server.connect(user=OWNER) as owner:
        seen = leaks(owner)
    assert seen == []


def test_failed_definer_call_counts_under_the_caller(
        conn: psycopg.Connection[Any], server: PgServer, definer: None) -> None:
    """g()'s ERROR is one call of the caller (elevel 21); no owner row holds the caller's calls."""
    reset(conn)
    run_as_caller(server)
    caller, owner = role_oid(conn, CALLER), role_oid(conn, OWNER)
    errors = rows(conn, "SELECT userid, query, calls, message FROM pg_stat_monitor"
                        " WHERE elevel = 21 AND userid IN (%s, %s)", caller, owner)
    users = rows(conn, "SELECT DISTINCT userid FROM pg_stat_monitor WHERE query IN (%s, %s)",
                 F_CALL, G_CALL)
    assert errors == [(caller, G_CALL, 1, "boom")]
    assert users == [(caller,)]


def test_caller_and_superuser_see_the_callers_texts(
        conn: psycopg.Connection[Any], server: PgServer, definer: None) -> None:
    """The caller reads its own statements' texts; a superuser reads them too, and the nested
    statement run as the function's owner has no top_query (not the caller's text, to anyone)."""
    reset(conn)
    run_as_caller(server)
    with server.connect(user=CALLER) as caller:
        own = {q for (q,) in rows(caller, "SELECT query FROM pg_stat_monitor"
                                          " WHERE username = %s", CALLER)}
    everything = dicts(conn, "SELECT query, top_query, toplevel, message FROM pg_stat_monitor"
                             " WHERE query LIKE %s OR top_query LIKE %s", SECRET, SECRET)
    assert {F_CALL, G_CALL} <= own
    assert {(r["query"], r["toplevel"]) for r in everything} >= {(F_CALL, True), (G_CALL, True)}
    nested = dicts(conn, "SELECT top_query, username FROM pg_stat_monitor"
                         " WHERE query = 'SELECT count(*) FROM pg_class' AND NOT toplevel")
    assert nested == [{"top_query": None, "username": OWNER}]
    assert any(r["message"] == "boom" for r in everything if r["query"] == G_CALL)
