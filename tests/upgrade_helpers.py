"""Helpers of the upgrade tests (test_upgrade_*.py): a private copy of the server installation in
which upstream releases and this project are installed in turn, and a catalog snapshot of the
extension's objects.

Upstream's sources are the released archives in ../shared/upstream (or $PGSM_UPSTREAM_DIR).
Nothing is ever installed into the server installation of pg_config: the private copy has its
own lib/ and share/ (PostgreSQL finds them relative to its binaries)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any, Iterator

import psycopg
import pytest

from pgserver import PgServer

REPO = Path(__file__).resolve().parents[1]
UPSTREAM_DIR = Path(os.environ.get("PGSM_UPSTREAM_DIR", REPO.parent / "shared" / "upstream"))
# the released upstream versions, by the extension version their SQL ends at
UPSTREAM_RELEASES = {"2.0": "2.0.4", "2.1": "2.1.1", "2.2": "2.2.0", "2.3": "2.3.2"}
# upstream's memory settings are in MB (its minimum pgsm_max is 10 MB); 1-second buckets (the
# export needs finished ones) and a 30-second window (what a test reads stays in the view)
UPSTREAM_SETTINGS = {
    "pg_stat_monitor.pgsm_max": "10",
    "pg_stat_monitor.pgsm_query_shared_buffer": "1",
    "pg_stat_monitor.pgsm_bucket_time": "1",
    "pg_stat_monitor.pgsm_max_buckets": "30",
}
# after the swap: this project's settings upstream would refuse (it reserves the prefix)
OUR_SETTINGS = {"pg_stat_monitor.pgsm_export_auto": "off"}


def pg_config(*args: str, bindir: str | None = None) -> str:
    """The answer of pg_config (on PATH, or of another installation's bindir)."""
    exe = os.path.join(bindir, "pg_config") if bindir else "pg_config"
    return subprocess.check_output([exe, *args], text=True).strip()


class PrivateRoot:
    """A copy of the installation of the pg_config on PATH, under root, laid out as Debian's
    (usr/lib/postgresql/15 and usr/share/postgresql/15); its extension files can be swapped."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.source_lib = Path(pg_config("--bindir")).parent
        self.source_share = Path(pg_config("--sharedir"))
        self.lib = root / self.source_lib.relative_to("/")
        self.share = root / self.source_share.relative_to("/")
        self.lib.parent.mkdir(parents=True)
        self.share.parent.mkdir(parents=True)
        subprocess.run(["cp", "-a", str(self.source_lib), str(self.lib.parent)], check=True)
        subprocess.run(["cp", "-a", str(self.source_share), str(self.share.parent)], check=True)
        # headers are not copied: a link to the same directory, where PGXS looks in the copy
        for what in ("--includedir-server", "--includedir"):
            headers = Path(pg_config(what))
            link = root / headers.relative_to("/")
            if not link.exists():
                link.parent.mkdir(parents=True, exist_ok=True)
                link.symlink_to(headers)
        self.bindir = str(self.lib / "bin")
        self.pkglibdir = Path(pg_config("--pkglibdir", bindir=self.bindir))
        self.extdir = Path(pg_config("--sharedir", bindir=self.bindir)) / "extension"
        self.builds: dict[str, Path] = {}

    def extension_files(self, pkglibdir: Path, extdir: Path) -> list[Path]:
        """The files and directories of pg_stat_monitor (any release) in an installation."""
        return sorted([*pkglibdir.glob("pg_stat_monitor*"),
                       *(pkglibdir / "bitcode").glob("pg_stat_monitor*"),
                       *extdir.glob("pg_stat_monitor*")])

    def remove_extension(self) -> None:
        """Remove whatever release of pg_stat_monitor is installed in the copy."""
        for path in self.extension_files(self.pkglibdir, self.extdir):
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()

    def install_upstream(self, version: str, workdir: Path) -> None:
        """Build upstream's release of this extension version (once) and install it alone."""
        release = UPSTREAM_RELEASES[version]
        if version not in self.builds:
            archive = UPSTREAM_DIR / f"pg_stat_monitor-{release}.tar.gz"
            assert archive.exists(), f"{archive} is missing: set PGSM_UPSTREAM_DIR"
            subprocess.run(["tar", "-xzf", str(archive), "-C", str(workdir)], check=True)
            src = workdir / f"pg_stat_monitor-{release}"
            self.make(src)
            self.builds[version] = src
        self.remove_extension()
        self.make(self.builds[version], "install")

    def make(self, src: Path, *target: str) -> None:
        """make with PGXS against the copy."""
        done = subprocess.run(
            ["make", "-s", "-C", str(src), "USE_PGXS=1",
             f"PG_CONFIG={os.path.join(self.bindir, 'pg_config')}", *target],
            capture_output=True, text=True)
        assert done.returncode == 0, done.stderr

    def install_ours(self) -> None:
        """Replace what is installed by this project's files, as `make install` put them into
        the installation of the pg_config on PATH (library, bitcode, control and SQL scripts,
        the Python package directory)."""
        self.remove_extension()
        source_pkglib = Path(pg_config("--pkglibdir"))
        source_ext = self.source_share / "extension"
        for path in self.extension_files(source_pkglib, source_ext):
            if path.parent == source_ext:
                target = self.extdir / path.name
            else:
                target = self.pkglibdir / path.relative_to(source_pkglib)
            if path.is_dir():
                shutil.copytree(path, target, symlinks=True)
            else:
                shutil.copy2(path, target)

    def server(self, base: Path, settings: dict[str, str] | None = None) -> PgServer:
        """A new (not started) server of the copy."""
        return PgServer(base, settings, bindir=self.bindir)


# ---------------------------------------------------------------- the catalog snapshot

MEMBERS = """
    SELECT d.classid, d.objid FROM pg_depend d
    WHERE d.refclassid = 'pg_extension'::regclass AND d.deptype = 'e'
      AND d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'pg_stat_monitor')
"""

SNAPSHOT_QUERIES = {
    "extension": """
        SELECT e.extversion, e.extrelocatable, e.extnamespace::regnamespace::text,
               pg_get_userbyid(e.extowner), e.extconfig::regclass[]::text, e.extcondition
        FROM pg_extension e WHERE e.extname = 'pg_stat_monitor'""",
    "extension dependencies": """
        SELECT pg_describe_object(d.refclassid, d.refobjid, d.refobjsubid), d.deptype
        FROM pg_depend d WHERE d.classid = 'pg_extension'::regclass
          AND d.objid = (SELECT oid FROM pg_extension WHERE extname = 'pg_stat_monitor')
        ORDER BY 1, 2""",
    "members": f"""
        SELECT o.type, o.schema, o.identity FROM ({MEMBERS}) m,
               pg_identify_object(m.classid, m.objid, 0) o ORDER BY 1, 2, 3""",
    "functions": f"""
        SELECT p.oid::regprocedure::text, p.pronamespace::regnamespace::text,
               pg_get_function_arguments(p.oid), pg_get_function_result(p.oid), p.prokind,
               p.provolatile, p.proparallel, p.prosecdef, p.proisstrict, p.proretset,
               p.proconfig::text, p.prosrc, p.probin, l.lanname, pg_get_userbyid(p.proowner),
               p.proacl::text
        FROM ({MEMBERS}) m JOIN pg_proc p ON m.classid = 'pg_proc'::regclass AND p.oid = m.objid
        JOIN pg_language l ON l.oid = p.prolang ORDER BY 1""",
    "relations": f"""
        SELECT c.oid::regclass::text, c.relkind, c.relpersistence, c.relispartition,
               pg_get_userbyid(c.relowner), c.relacl::text,
               CASE WHEN c.relkind IN ('v', 'm') THEN pg_get_viewdef(c.oid) END,
               pg_get_partkeydef(c.oid), pg_get_expr(c.relpartbound, c.oid)
        FROM ({MEMBERS}) m JOIN pg_class c ON m.classid = 'pg_class'::regclass AND c.oid = m.objid
        ORDER BY 1""",
    "columns": f"""
        SELECT c.oid::regclass::text, a.attnum, a.attname, format_type(a.atttypid, a.atttypmod),
               a.attnotnull, pg_get_expr(ad.adbin, ad.adrelid), a.attidentity, a.attacl::text
        FROM ({MEMBERS}) m
        JOIN pg_class c ON c.oid = m.objid AND m.classid = 'pg_class'::regclass
                           OR m.classid = 'pg_type'::regclass
                              AND c.oid = (SELECT t.typrelid FROM pg_type t WHERE t.oid = m.objid)
        JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
        LEFT JOIN pg_attrdef ad ON ad.adrelid = c.oid AND ad.adnum = a.attnum
        ORDER BY 1, 2""",
    "indexes and constraints": f"""
        SELECT i.indrelid::regclass::text, pg_get_indexdef(i.indexrelid)
        FROM ({MEMBERS}) m JOIN pg_index i ON m.classid = 'pg_class'::regclass
                                           AND i.indrelid = m.objid
        UNION ALL
        SELECT k.conrelid::regclass::text, k.conname || ' ' || pg_get_constraintdef(k.oid)
        FROM ({MEMBERS}) m JOIN pg_constraint k ON m.classid = 'pg_class'::regclass
                                                AND k.conrelid = m.objid
        ORDER BY 1, 2""",
    "types": f"""
        SELECT t.oid::regtype::text, t.typtype, t.typrelid::regclass::text,
               pg_get_userbyid(t.typowner), t.typacl::text
        FROM ({MEMBERS}) m JOIN pg_type t ON m.classid = 'pg_type'::regclass AND t.oid = m.objid
        ORDER BY 1""",
    "schemas": f"""
        SELECT n.nspname, pg_get_userbyid(n.nspowner), n.nspacl::text
        FROM ({MEMBERS}) m
        JOIN pg_namespace n ON m.classid = 'pg_namespace'::regclass AND n.oid = m.objid
        ORDER BY 1""",
    "initial privileges": f"""
        SELECT o.identity, i.objsubid, i.privtype, i.initprivs::text
        FROM ({MEMBERS}) m
        JOIN pg_init_privs i ON i.classoid = m.classid AND i.objoid = m.objid,
        pg_identify_object(m.classid, m.objid, 0) o ORDER BY 1, 2""",
    "dependencies of members": f"""
        SELECT pg_describe_object(d.classid, d.objid, d.objsubid),
               pg_describe_object(d.refclassid, d.refobjid, d.refobjsubid), d.deptype
        FROM ({MEMBERS}) m JOIN pg_depend d ON d.classid = m.classid AND d.objid = m.objid
        WHERE d.deptype <> 'e'
        ORDER BY 1, 2, 3""",
}


def catalog_snapshot(conn: psycopg.Connection[Any]) -> dict[str, list[tuple[Any, ...]]]:
    """Everything the catalog says of the extension's objects, without oids."""
    return {name: conn.execute(query).fetchall() for name, query in SNAPSHOT_QUERIES.items()}


def view_columns(conn: psycopg.Connection[Any], view: str = "pg_stat_monitor") -> int:
    """The number of columns of a view."""
    cur = conn.execute(f"SELECT * FROM {view} LIMIT 0")
    assert cur.description is not None
    return len(cur.description)


@pytest.fixture(scope="session")
def private_root(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivateRoot]:
    """One private copy of the server installation for the session's upgrade tests (removed
    at the end: about 90 MB)."""
    root = PrivateRoot(tmp_path_factory.mktemp("root"))
    yield root
    shutil.rmtree(root.root, ignore_errors=True)


def start_upstream(root: PrivateRoot, version: str, base: Path, databases: list[str]) -> PgServer:
    """A started server of upstream's release of this version, the extension created (as
    upstream: without plpython3u) in each database."""
    root.install_upstream(version, base)
    server = root.server(base / "pg", UPSTREAM_SETTINGS)
    server.start()
    for db in databases:
        if db != "postgres":
            server.sql(f'CREATE DATABASE "{db}"')
        server.sql("CREATE EXTENSION pg_stat_monitor", dbname=db)
    return server


def swap_to_ours(root: PrivateRoot, server: PgServer) -> None:
    """Stop, install this project over upstream, start with its settings (the upstream SQL
    objects stay until ALTER EXTENSION ... UPDATE)."""
    server.stop()
    root.install_ours()
    server.set(**OUR_SETTINGS)
    server.start()


def extversion(conn: psycopg.Connection[Any]) -> str:
    """The version of pg_stat_monitor created in the connection's database."""
    row = conn.execute("SELECT extversion FROM pg_extension WHERE extname = 'pg_stat_monitor'").fetchone()
    assert row is not None
    return str(row[0])
