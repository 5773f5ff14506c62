# mlbot in a container: `mlbot run` with the content baked in, state in /data, and
# /healthz + /metrics on 9100. Build: docker build -t mlbot .
# Run:   docker run --env-file .env -p 3000:3000 -p 9100:9100 -v mlbot-data:/data mlbot
FROM python:3.12-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore

# The package, installed like any user would (not editable); the sources go afterwards.
# [all]: the image runs whichever platforms the environment has tokens for, on SQLite or PostgreSQL.
COPY pyproject.toml README.md /src/
COPY mlbot /src/mlbot
COPY bot /src/bot
COPY adapters /src/adapters
RUN pip install --no-cache-dir '/src[all]' && rm -rf /src

# A non-root user that can write only its home and /data.
RUN useradd --create-home --uid 10001 --user-group mlbot \
    && mkdir /data && chown mlbot:mlbot /data

# Content is data: baked in beside the program, read-only, found through MLBOT_CONTENT
# (the installed package has no content/ beside it).
COPY content /app/content
WORKDIR /app

# XDG_DATA_HOME: small state files (the Discord command hash) also land in /data when
# MLBOT_DB is a postgresql:// URL, so a restart doesn't re-sync the slash commands.
ENV MLBOT_CONTENT=/app/content \
    MLBOT_DB=/data/mlbot.sqlite3 \
    XDG_DATA_HOME=/data \
    MLBOT_HTTP_PORT=9100 \
    PORT=3000

USER mlbot
VOLUME ["/data"]
# 3000: Slack HTTP mode (PORT); 9100: /healthz and /metrics (MLBOT_HTTP_PORT)
EXPOSE 3000 9100

HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, sys, urllib.request as u; sys.exit(0 if u.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('MLBOT_HTTP_PORT', '9100'), timeout=4).status == 200 else 1)"]

# Exec form: mlbot is PID 1 and gets the SIGTERM of `docker stop` itself.
CMD ["mlbot", "run"]
