# pg_stat_monitor: PGXS build of the C core, the SQL script and the in-database
# Python package.  `make demo` and `make test` set up a fresh Debian 12 machine.

CONTROL     := extension/pg_stat_monitor.control
EXTVERSION  := $(shell sed -n "s/^default_version *= *'\(.*\)'/\1/p" $(CONTROL))
RELEASE     := $(shell sed -n "s/^\# release *= *\(.*\)/\1/p" $(CONTROL))

MODULE_big  = pg_stat_monitor
OBJS        = extension/pg_stat_monitor.o extension/guc.o extension/store.o \
              extension/arena.o extension/histogram.o extension/persist.o \
              extension/hooks.o extension/capture.o extension/text.o \
              extension/handoff.o extension/readers.o extension/fdwtag.o \
              extension/fragments.o extension/upstream.o \
              bgworker/worker.o
PG_CPPFLAGS = -I$(srcdir)/extension -DPGSM_VERSION='"$(RELEASE)"'
PG_CFLAGS   = -Wall -Werror
MODULEDIR   = extension
DATA        = $(CONTROL) $(wildcard migrations/pg_stat_monitor--*--*.sql)
# the update scripts from upstream's releases, made from the install script (below)
UPSTREAM_VERSIONS := 2.0 2.1 2.2 2.3
DATA_built  = build/pg_stat_monitor--$(EXTVERSION).sql \
              $(foreach v,$(UPSTREAM_VERSIONS),build/pg_stat_monitor--$(v)--$(EXTVERSION).sql)
EXTRA_CLEAN = build plpy_modules/pgsm/_version.py
# installcheck runs pytest (below), not pg_regress
NO_INSTALLCHECK = 1

PG_CONFIG  ?= pg_config
PGXS       := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

# plpython3u runs Debian's interpreter: install the package with that one
PLPYTHON   ?= /usr/bin/python3
PYDIR       = $(pkglibdir)/pg_stat_monitor/$(RELEASE)

# every object and its JIT bitcode is rebuilt when a shared header changes (the entry
# layout is in pgsm.h)
$(OBJS) $(OBJS:.o=.bc): $(wildcard $(srcdir)/extension/*.h)

plpy_modules/pgsm/_version.py: $(CONTROL)
	printf '"""The package version, generated from the control file."""\n\n__version__ = "%s"\n' '$(RELEASE)' > $@

build/pg_stat_monitor--$(EXTVERSION).sql: migrations/pg_stat_monitor--$(EXTVERSION).sql.in $(CONTROL)
	mkdir -p build
	sed -e 's|@PGSM_RELEASE@|$(RELEASE)|g' -e 's|@PGSM_PYDIR@|$(PYDIR)|g' $< > $@

# From an upstream release: what that release created is dropped (prelude.sql, the common
# part, and from-<version>.sql), then the install script's body creates this release's
# objects, then epilogue.sql applies the user's grants again.  One source for the objects.
build/pg_stat_monitor--%--$(EXTVERSION).sql: migrations/upstream/prelude.sql \
		migrations/upstream/from-%.sql build/pg_stat_monitor--$(EXTVERSION).sql \
		migrations/upstream/epilogue.sql
	{ cat migrations/upstream/prelude.sql migrations/upstream/from-$*.sql; \
	  sed -e '/^\\echo /d' build/pg_stat_monitor--$(EXTVERSION).sql; \
	  cat migrations/upstream/epilogue.sql; } > $@

all: plpy_modules/pgsm/_version.py

install: install-python

install-python: plpy_modules/pgsm/_version.py
	$(PLPYTHON) -m pip install --quiet --disable-pip-version-check --no-warn-script-location \
	    --root-user-action=ignore \
	    --upgrade --target '$(DESTDIR)$(PYDIR)' .
	rm -rf build/lib build/bdist* plpy_modules/*.egg-info

# the whole suite against the installed build (pg_config on PATH, or PG_CONFIG): no apt,
# no install; `pytest tests/unit` needs no PostgreSQL at all
installcheck:
	PG_CONFIG='$(PG_CONFIG)' bash scripts/installcheck.sh

# ---- the two commands of the README ----
.PHONY: setup demo test bench install-python installcheck

setup:
	bash scripts/setup.sh

demo: setup
	bash scripts/demo.sh

test: setup
	bash scripts/test.sh
