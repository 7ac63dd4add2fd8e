"""Create or drop the throw-away CI database: `pgdb.py create|drop NAME`. Fails loudly if Postgres is down."""
import os
import sys

import psycopg

server = os.environ.get("CI_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432")
action, name = sys.argv[1], sys.argv[2]
try:
    with psycopg.connect(f"{server}/postgres", autocommit=True, connect_timeout=5) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        if action == "create":
            conn.execute(f'CREATE DATABASE "{name}"')
except psycopg.OperationalError as exc:
    sys.exit(f"CI: PostgreSQL is unreachable at {server} ({str(exc).strip().splitlines()[0]})")
print(f"{server}/{name}")
