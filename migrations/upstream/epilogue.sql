
-- ---------------------------------------------------------------- privileges kept
-- The user's grants and revokes on upstream's view and functions (saved by the prelude),
-- applied to this release's object of the same kind and name where there is one.  They stay
-- the user's: the extension's initial privileges (pg_init_privs, what pg_dump compares with)
-- are set back to what this release's script gave.
DO $do$
DECLARE
    item jsonb;
    priv jsonb;
    target record;
    initial aclitem[];
    keyword text;
    grantee text;
    kind text;
BEGIN
    FOR item IN SELECT pg_catalog.jsonb_array_elements(
                    pg_catalog.current_setting('pgsm_upgrade.privileges')::jsonb)
    LOOP
        keyword := CASE item->>'type' WHEN 'view' THEN 'TABLE' WHEN 'function' THEN 'FUNCTION' END;
        IF keyword IS NULL THEN
            CONTINUE;
        END IF;
        BEGIN
            SELECT a.classid, a.objid, o.identity INTO STRICT target
              FROM pg_catalog.pg_get_object_address(item->>'type',
                       ARRAY(SELECT pg_catalog.jsonb_array_elements_text(item->'names')),
                       ARRAY(SELECT pg_catalog.jsonb_array_elements_text(item->'args'))) a
             CROSS JOIN LATERAL pg_catalog.pg_identify_object(a.classid, a.objid, 0) o;
        EXCEPTION WHEN undefined_table OR undefined_function OR wrong_object_type THEN
            CONTINUE;       -- not in this release
        END;
        SELECT i.initprivs INTO initial FROM pg_catalog.pg_init_privs i
         WHERE i.classoid = target.classid AND i.objoid = target.objid AND i.objsubid = 0;
        FOREACH kind IN ARRAY ARRAY['granted', 'revoked'] LOOP
            FOR priv IN SELECT pg_catalog.jsonb_array_elements(item->kind) LOOP
                grantee := CASE WHEN (priv->>0)::pg_catalog.oid = 0::pg_catalog.oid THEN 'PUBLIC'
                                ELSE pg_catalog.quote_ident(pg_catalog.pg_get_userbyid((priv->>0)::oid)) END;
                IF priv->>1 !~ '^[A-Z]+$' THEN
                    CONTINUE;
                END IF;
                IF kind = 'granted' THEN
                    EXECUTE pg_catalog.format('GRANT %s ON %s %s TO %s%s', priv->>1, keyword,
                                              target.identity, grantee,
                                              CASE WHEN (priv->>2)::boolean THEN ' WITH GRANT OPTION' ELSE '' END);
                ELSE
                    EXECUTE pg_catalog.format('REVOKE %s%s ON %s %s FROM %s',
                                              CASE WHEN (priv->>2)::boolean THEN 'GRANT OPTION FOR ' ELSE '' END,
                                              priv->>1, keyword, target.identity, grantee);
                END IF;
            END LOOP;
        END LOOP;
        IF initial IS NULL THEN
            DELETE FROM pg_catalog.pg_init_privs i
             WHERE i.classoid = target.classid AND i.objoid = target.objid AND i.objsubid = 0;
        ELSE
            UPDATE pg_catalog.pg_init_privs i SET initprivs = initial
             WHERE i.classoid = target.classid AND i.objoid = target.objid AND i.objsubid = 0;
        END IF;
    END LOOP;
END
$do$;
