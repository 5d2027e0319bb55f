"""A postgresql.conf written for upstream keeps its meaning: upstream's memory settings are in
MB, so a value without a unit is MB here too; values with a unit are read as written."""

from __future__ import annotations

import pytest

from fixtures import ServerFactory
from pgserver import PgServer

MAX = "pg_stat_monitor.pgsm_max"
TEXTS = "pg_stat_monitor.pgsm_query_shared_buffer"


def settings_of(server: PgServer) -> dict[str, tuple[str, str, str]]:
    """(setting, unit, source) of the two memory settings."""
    got = server.sql("SELECT name, setting, unit, source FROM pg_settings WHERE name IN (%s, %s)",
                     [MAX, TEXTS])
    return {name: (setting, unit, source) for name, setting, unit, source in got}


@pytest.mark.parametrize("written, kb", [
    (("3", "2"), ("3072", "2048")),                 # upstream's unit, MB
    (("'512kB'", "'1MB'"), ("512", "1024")),        # units as written
    (("' 4 '", "'256kB'"), ("4096", "256")),
])
def test_memory_settings_without_unit_are_mb(make_server: ServerFactory,
                                             written: tuple[str, str],
                                             kb: tuple[str, str]) -> None:
    """pgsm_max = 3 is 3 MB (3072 kB) and pgsm_query_shared_buffer = 2 is 2 MB, from the
    configuration file and without a warning; '512kB', '1MB' and '256kB' stay as written."""
    server = make_server({MAX: written[0], TEXTS: written[1]}, extension=False)
    assert settings_of(server) == {MAX: (kb[0], "kB", "configuration file"),
                                   TEXTS: (kb[1], "kB", "configuration file")}
    assert "WARNING" not in server.log()
    server.stop()
