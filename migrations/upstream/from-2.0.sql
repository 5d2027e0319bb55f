-- upstream 2.0: the functions that made the view, per PostgreSQL version
DROP FUNCTION @extschema@.pgsm_create_11_view();
DROP FUNCTION @extschema@.pgsm_create_13_view();
DROP FUNCTION @extschema@.pgsm_create_14_view();
DROP FUNCTION @extschema@.pgsm_create_15_view();
