# syntax=docker/dockerfile:1
# The modfleet image: `modfleet worker` by default; any other modfleet command works too (the
# compose file's topic-init job runs `modfleet topics create`).
#
# The base is pinned to a Python minor and Debian release; CI that rebuilds images should pin
# its digest as well (python:3.11-slim-bookworm@sha256:...), which a bot keeps current.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# --- build: modfleet and every dependency as wheels -------------------------------------------
FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
WORKDIR /src
# Only what the wheel is made of, so that edits to tests or docs do not rebuild this layer.
COPY pyproject.toml README.md ./
COPY workers ./workers
COPY topics ./topics
COPY policies ./policies
RUN pip wheel --wheel-dir /wheels .

# --- runtime: the wheels installed, no compiler, no pip cache, not root ------------------------
FROM ${PYTHON_IMAGE} AS runtime
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1
RUN groupadd --system --gid 10001 modfleet \
 && useradd --system --uid 10001 --gid modfleet --home-dir /var/lib/modfleet --create-home \
      --shell /usr/sbin/nologin modfleet
# A bind mount keeps the wheels out of every layer of the final image.
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install --no-index --find-links=/wheels modfleet
USER 10001:10001
# faust keeps its (small) state directory in the working directory: it must be writable.
WORKDIR /var/lib/modfleet
# /health (alive), /ready (in the consumer group, consuming) and /metrics on MODFLEET_WEB_PORT,
# bound to MODFLEET_WEB_HOST: 127.0.0.1 unless a deployment opens it for probes and scrapes
# (compose and the chart set 0.0.0.0; the chart's NetworkPolicy then admits only that port).
EXPOSE 6066
ENTRYPOINT ["modfleet"]
CMD ["worker"]
