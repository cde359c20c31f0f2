# autogen-slack image: pinned runtime dependencies, non-root, SQLite on the /data volume.
#   docker build -t autogen-slack .
#   docker run --env-file .env -v autogen-data:/data autogen-slack            # Socket Mode
#   docker run --env-file .env -v autogen-data:/data -p 3000:3000 autogen-slack  # HTTP mode
# Secrets (SLACK_BOT_TOKEN, SLACK_APP_TOKEN, SERVER_SECRET_KEY, ...) come in at run time,
# never through ENV/ARG here.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore

# Non-root user; /data holds the SQLite database and, without SERVER_SECRET_KEY, the
# development key file (the app puts it beside the database).
RUN groupadd --gid 10001 app \
    && useradd --uid 10001 --gid app --no-log-init --create-home --home-dir /home/app \
        --shell /usr/sbin/nologin app \
    && mkdir -p /data /app \
    && chown app:app /data \
    && ln -s /data /app/data
# The /app/data link also sends the default relative URL (sqlite+aiosqlite:///data/...)
# to the volume if an --env-file overrides DATABASE_URL with it.

WORKDIR /tmp/build

# Dependencies first: this layer is rebuilt only when the lock file changes.
COPY requirements.lock ./
RUN pip install --no-cache-dir -r requirements.lock

# Then the project itself (what pyproject.toml packages, with its migrations and team JSON),
# without touching the pinned dependencies. The build folder goes once it is installed.
COPY pyproject.toml README.md ./
COPY bot/ ./bot/
COPY runner/ ./runner/
COPY store/ ./store/
COPY web/ ./web/
RUN pip install --no-cache-dir --no-deps . \
    && cd / \
    && rm -rf /tmp/build

WORKDIR /app
VOLUME ["/data"]

ENV DATABASE_URL=sqlite+aiosqlite:////data/autogen-slack.db \
    PYTHONUNBUFFERED=1

# PORT serves GET /healthz in both modes, and /slack/events in HTTP mode (no SLACK_APP_TOKEN).
EXPOSE 3000

# Probe GET /healthz from outside, e.g. docker run --health-cmd 'python -c "import
# urllib.request as u; u.urlopen(\"http://127.0.0.1:3000/healthz\", timeout=3)"' ..., or a
# Kubernetes httpGet probe.

USER 10001:10001
CMD ["python", "-m", "bot"]
