"""Where the credential encryption keys come from.

Production must bring SERVER_SECRET_KEY. In development, a key is generated once into a
0600 file beside the database so a first `make run` works; the warning says loudly that
this is not for real use (lose the file and every stored credential is unreadable).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from store.crypto import generate_key
from store.db import sqlite_path
from store.settings import GENERATE_KEY, ConfigError, Settings

log = logging.getLogger(__name__)

KEY_FILE_NAME = "server-secret.key"


def dev_key_file(settings: Settings) -> Path:
    database = sqlite_path(settings.database_url)
    folder = database.parent if database is not None else Path("data")
    return folder / KEY_FILE_NAME


def resolve_secret_keys(settings: Settings) -> list[str]:
    if settings.secret_keys:
        return settings.secret_keys
    if settings.app_env == "production":
        raise ConfigError(
            "SERVER_SECRET_KEY is missing: APP_ENV=production refuses to start without it; "
            f"make one with: {GENERATE_KEY}."
        )
    path = dev_key_file(settings)
    if path.exists():
        key = path.read_text(encoding="ascii").strip()
        log.warning(
            "SERVER_SECRET_KEY is not set: using the development key file %s. "
            "Set SERVER_SECRET_KEY before storing real credentials.",
            path,
        )
        return [key]
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w", encoding="ascii") as handle:
        handle.write(generate_key() + "\n")
    log.warning(
        "!!! SERVER_SECRET_KEY is not set: GENERATED a development key into %s (mode 0600). "
        "Credentials stored now can only be read with that file. For production set "
        "SERVER_SECRET_KEY and APP_ENV=production. !!!",
        path,
    )
    return [path.read_text(encoding="ascii").strip()]
