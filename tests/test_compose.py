"""compose.yaml: PostgreSQL and two replicas that share its database, wait for it, and
get the time to stop gracefully."""

from __future__ import annotations

import yaml

from tests.conftest import PROJECT_ROOT


def test_two_replicas_share_one_postgres_and_stop_gracefully() -> None:
    compose = yaml.safe_load((PROJECT_ROOT / "compose.yaml").read_text())
    services = compose["services"]
    replicas = {name: s for name, s in services.items() if name.startswith("replica-")}
    assert len(replicas) == 2 and "postgres" in services
    urls = {s["environment"]["DATABASE_URL"] for s in replicas.values()}
    assert len(urls) == 1 and next(iter(urls)).startswith("postgresql+asyncpg://")
    assert "@postgres:5432/" in next(iter(urls))
    for replica in replicas.values():
        assert replica["depends_on"]["postgres"]["condition"] == "service_healthy"
        assert replica["env_file"] == ".env"  # one SERVER_SECRET_KEY for both
        assert replica["stop_grace_period"] == "60s"
        assert "/healthz" in " ".join(replica["healthcheck"]["test"])
