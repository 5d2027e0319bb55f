-- pg_stat_monitor: update from upstream Percona pg_stat_monitor to this release.
-- Generated into build/ by the Makefile: this prelude, the list of what the upstream version
-- created (from-<version>.sql), the install script's body, then epilogue.sql.
\echo Use "ALTER EXTENSION pg_stat_monitor UPDATE" to load this file. \quit

-- ---------------------------------------------------------------- what the update cannot do
-- Upstream's pg_stat_monitor view is replaced: an object of the user's that depends on it
-- (a view, a materialized view) would have to go with it.  Refuse, naming each, and change
-- nothing (the whole ALTER EXTENSION is one transaction).
DO $do$
DECLARE
    dependents text;
    upstream_view oid;
BEGIN
    -- found through the catalog: the schema's name is never spliced into a literal
    SELECT c.oid INTO STRICT upstream_view
      FROM pg_catalog.pg_class c
      JOIN pg_catalog.pg_extension e ON e.extnamespace = c.relnamespace
     WHERE e.extname = 'pg_stat_monitor' AND c.relname = 'pg_stat_monitor';
    SELECT pg_catalog.string_agg(DISTINCT pg_catalog.format('%s %s', o.type, o.identity), ', ')
      INTO dependents
      FROM pg_catalog.pg_depend d
      LEFT JOIN pg_catalog.pg_rewrite r
             ON d.classid = 'pg_catalog.pg_rewrite'::pg_catalog.regclass::pg_catalog.oid AND r.oid = d.objid
      CROSS JOIN LATERAL pg_catalog.pg_identify_object(
             CASE WHEN r.oid IS NULL THEN d.classid ELSE 'pg_catalog.pg_class'::pg_catalog.regclass::pg_catalog.oid END,
             coalesce(r.ev_class, d.objid), 0) o
     WHERE d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass::pg_catalog.oid
       AND d.refobjid = upstream_view
       AND d.deptype = 'n'
       AND coalesce(r.ev_class, 0) <> upstream_view;
    IF dependents IS NOT NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'dependent_objects_still_exist',
            MESSAGE = pg_catalog.format(
                'cannot update pg_stat_monitor: %s depends on its view pg_stat_monitor', dependents),
            DETAIL = 'The update replaces upstream''s pg_stat_monitor view; nothing was changed.',
            HINT = 'Keep the definition (pg_get_viewdef), drop the dependent view, run ALTER EXTENSION pg_stat_monitor UPDATE again, then create the view again.';
    END IF;
END
$do$;

-- ---------------------------------------------------------------- privileges kept
-- What the user granted or revoked on upstream's view and functions (their privileges now
-- against the ones the extension gave them) is applied again to the objects of the same name
-- and kind after the update (epilogue.sql), kept until then in a transaction-local setting.
DO $do$
DECLARE
    saved jsonb;
BEGIN
    WITH member AS (
        SELECT d.classid, d.objid,
               CASE WHEN d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass::pg_catalog.oid
                    THEN (SELECT coalesce(c.relacl, pg_catalog.acldefault('r', c.relowner))
                            FROM pg_catalog.pg_class c WHERE c.oid = d.objid)
                    ELSE (SELECT coalesce(p.proacl, pg_catalog.acldefault('f', p.proowner))
                            FROM pg_catalog.pg_proc p WHERE p.oid = d.objid)
               END AS acl,
               CASE WHEN d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass::pg_catalog.oid
                    THEN (SELECT pg_catalog.acldefault('r', c.relowner)
                            FROM pg_catalog.pg_class c WHERE c.oid = d.objid)
                    ELSE (SELECT pg_catalog.acldefault('f', p.proowner)
                            FROM pg_catalog.pg_proc p WHERE p.oid = d.objid)
               END AS default_acl
          FROM pg_catalog.pg_depend d
         WHERE d.refclassid = 'pg_catalog.pg_extension'::pg_catalog.regclass::pg_catalog.oid
           AND d.refobjid = (SELECT e.oid FROM pg_catalog.pg_extension e
                              WHERE e.extname = 'pg_stat_monitor')
           AND d.deptype = 'e'
           AND d.classid IN ('pg_catalog.pg_class'::pg_catalog.regclass::pg_catalog.oid,
                             'pg_catalog.pg_proc'::pg_catalog.regclass::pg_catalog.oid)
    ), privs AS (
        SELECT m.classid, m.objid, m.acl,
               coalesce((SELECT i.initprivs FROM pg_catalog.pg_init_privs i
                          WHERE i.classoid = m.classid AND i.objoid = m.objid
                            AND i.objsubid = 0), m.default_acl) AS initial
          FROM member m
    ), delta AS (
        SELECT p.classid, p.objid,
               (SELECT pg_catalog.jsonb_agg(pg_catalog.jsonb_build_array(a.grantee, a.privilege_type, a.is_grantable))
                  FROM (SELECT x.grantee, x.privilege_type, x.is_grantable FROM pg_catalog.aclexplode(p.acl) x
                        EXCEPT
                        SELECT x.grantee, x.privilege_type, x.is_grantable FROM pg_catalog.aclexplode(p.initial) x) a)
                   AS granted,
               (SELECT pg_catalog.jsonb_agg(pg_catalog.jsonb_build_array(a.grantee, a.privilege_type, a.is_grantable))
                  FROM (SELECT x.grantee, x.privilege_type, x.is_grantable FROM pg_catalog.aclexplode(p.initial) x
                        EXCEPT
                        SELECT x.grantee, x.privilege_type, x.is_grantable FROM pg_catalog.aclexplode(p.acl) x) a)
                   AS revoked
          FROM privs p
    )
    SELECT pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object(
               'type', o.type, 'names', o.object_names, 'args', o.object_args,
               'granted', coalesce(d.granted, '[]'), 'revoked', coalesce(d.revoked, '[]')))
      INTO saved
      FROM delta d
      CROSS JOIN LATERAL pg_catalog.pg_identify_object_as_address(d.classid, d.objid, 0) o
     WHERE d.granted IS NOT NULL OR d.revoked IS NOT NULL;
    PERFORM pg_catalog.set_config('pgsm_upgrade.privileges', coalesce(saved, '[]')::text, true);
END
$do$;

-- ---------------------------------------------------------------- upstream's objects
-- What every upstream 2.x release creates (from-<version>.sql lists the rest).
DROP VIEW @extschema@.pg_stat_monitor;
DROP FUNCTION @extschema@.pg_stat_monitor_internal(boolean);
DROP FUNCTION @extschema@.histogram(integer, bigint);
DROP FUNCTION @extschema@.range();
DROP FUNCTION @extschema@.get_histogram_timings();
DROP FUNCTION @extschema@.get_cmd_type(integer);
DROP FUNCTION @extschema@.decode_error_level(integer);
DROP FUNCTION @extschema@.pg_stat_monitor_version();
DROP FUNCTION @extschema@.pg_stat_monitor_reset();
DROP FUNCTION @extschema@.pgsm_create_view();
