#!/bin/sh
# First start of the postgres container (docker-entrypoint-initdb.d): one login role and one
# database per CRM service, each database owned by its role and closed to the others.
# Passwords come from <SERVICE>_DB_PASSWORD (docker-compose.yml passes them in).
# Written to work whether the entrypoint executes this file or sources it.

crm_create_databases() {
    for crm_service in customers followups alerts reports; do
        crm_upper=$(echo "$crm_service" | tr '[:lower:]' '[:upper:]')
        eval "crm_password=\${${crm_upper}_DB_PASSWORD:-crm_${crm_service}}"
        echo "crm: creating role and database crm_${crm_service}"
        psql -v ON_ERROR_STOP=1 --username "${POSTGRES_USER:-postgres}" --dbname postgres \
            -v name="crm_${crm_service}" -v password="$crm_password" <<'SQL' || return 1
CREATE ROLE :"name" LOGIN PASSWORD :'password';
CREATE DATABASE :"name" OWNER :"name";
REVOKE ALL ON DATABASE :"name" FROM PUBLIC;
GRANT CONNECT, TEMPORARY ON DATABASE :"name" TO :"name";
SQL
    done
}

crm_create_databases
