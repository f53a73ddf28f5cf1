-- uscmail's database and its two roles, least privilege (docs/deploy.md, "PostgreSQL"):
--   uscmail_owner  owns the database and every table; used only by `flask db upgrade` (migrations).
--   uscmail        what the web app, the workers, beat and the bounce receiver connect as: it reads and writes rows
--                  (SELECT, INSERT, UPDATE, DELETE), uses sequences and makes TEMPORARY tables (the CSV import stages
--                  rows in them), and can do nothing else: no CREATE, ALTER, DROP or TRUNCATE, so a compromised
--                  app cannot change the schema or remove the audit log's append-only trigger.
-- Run once, as the postgres superuser:
--     sudo -u postgres psql -v ON_ERROR_STOP=1 -f /opt/uscmail/deploy/postgresql-roles.sql
-- The names can be changed with -v owner=... -v app=... -v database=... (the defaults are below).

\if :{?owner}
\else
    \set owner uscmail_owner
\endif
\if :{?app}
\else
    \set app uscmail
\endif
\if :{?database}
\else
    \set database uscmail
\endif

-- Both roles log in over the local socket with peer authentication (the OS user of the same name, or root through
-- the map in docs/deploy.md); give them passwords only for connections from other machines.
CREATE ROLE :"owner" LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION;
CREATE ROLE :"app" LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION;
CREATE DATABASE :"database" OWNER :"owner" ENCODING 'UTF8' TEMPLATE template0;

-- Nobody else may connect; the app role may connect and make temporary tables.
REVOKE ALL ON DATABASE :"database" FROM PUBLIC;
GRANT CONNECT, TEMPORARY ON DATABASE :"database" TO :"app";

\connect :"database"
-- Only the owner creates objects in the schema (PostgreSQL 15 and later do this already; older ones do not).
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
GRANT USAGE ON SCHEMA public TO :"app";
-- Every table and sequence the migrations make (as the owner) is usable by the app role for rows only.
ALTER DEFAULT PRIVILEGES FOR ROLE :"owner" IN SCHEMA public
    GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO :"app";
ALTER DEFAULT PRIVILEGES FOR ROLE :"owner" IN SCHEMA public
    GRANT USAGE, SELECT ON SEQUENCES TO :"app";
