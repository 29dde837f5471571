# Small image that runs the bot with long polling; the database lives on the /data volume.
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml setup.py README.md ./
COPY bot ./bot
COPY handlers ./handlers
COPY storage ./storage
COPY shop ./shop
COPY web ./web
RUN pip install --no-cache-dir --prefix=/install .

FROM python:3.11-slim
ENV PYTHONUNBUFFERED=1 DATABASE_PATH=/data/bot.db BACKUP_DIR=/data/backups
COPY --from=build /install /usr/local
RUN useradd --create-home --uid 10001 numbot && mkdir -p /data && chown numbot /data
USER numbot
WORKDIR /home/numbot
VOLUME ["/data"]
CMD ["python", "-m", "bot"]
