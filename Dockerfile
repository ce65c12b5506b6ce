# Multi-arch image (amd64 + arm64): docker buildx build --platform linux/amd64,linux/arm64 .
FROM python:3.11-slim-bookworm

# Debian's Chromium headless shell for pages that need JavaScript (Playwright drives it; no
# browser download); scribe picks it on its own, and it takes about half the full browser's memory.
RUN apt-get update \
    && apt-get install -y --no-install-recommends chromium-headless-shell \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --create-home --uid 10001 scribe

WORKDIR /app
COPY pyproject.toml README.md ./
COPY requirements/serve.lock ./requirements/
RUN pip install --no-cache-dir --require-hashes -r requirements/serve.lock
COPY scribe ./scribe
RUN pip install --no-cache-dir --no-deps . && mkdir -p /data && chown scribe:scribe /data

USER scribe
ENV SCRIBE_DATA_DIR=/data \
    HOST=0.0.0.0 \
    PORT=8000
EXPOSE 8000
VOLUME ["/data"]
HEALTHCHECK --interval=30s --timeout=5s CMD python -c "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/health').status != 200)"
STOPSIGNAL SIGTERM
CMD ["scribe", "serve"]
