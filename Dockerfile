# One image for every process of the platform: prequal-api, outbox-publisher, credit-service,
# decision-service, loan-operator and prequalctl (the charts pick one with `args`/`command`).
# `make images` builds it on the project's machines, from a Python base built from Debian
# packages (docs/images.md). Elsewhere, with Docker Hub:
#
#   docker build -t loan-prequal:0.1.0 .               # the runtime image (the default target)
#   docker build --target dev -t loan-prequal:dev .    # Tilt's image: reloads on synced changes
#
# Behind a TLS-inspecting proxy, hand pip the proxy's CA bundle as a BuildKit secret; it is
# never written into a layer: `--secret id=pip-ca,src=$SSL_CERT_FILE`.

# The runtime base needs only python3; the build stages also need `python3 -m venv` (pip). Both
# must have python3 at the same path: the virtualenv links to the build stage's interpreter.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm
ARG PYTHON_BUILD_IMAGE=${PYTHON_IMAGE}

# --- deps: a virtualenv with exactly the locked runtime dependencies, each checked by hash ----
FROM ${PYTHON_BUILD_IMAGE} AS deps
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore
RUN python3 -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
# Dependencies first, in their own layer: they change far less often than the code.
# requirements.lock pins the dev tools too; the script keeps what pyproject's runtime needs.
COPY requirements.lock pyproject.toml images/runtime-requirements.py ./
RUN python3 runtime-requirements.py requirements.lock pyproject.toml > runtime-requirements.txt
RUN --mount=type=secret,id=pip-ca \
    if [ -s /run/secrets/pip-ca ]; then export PIP_CERT=/run/secrets/pip-ca; fi; \
    pip install --require-hashes --only-binary=:all: -r runtime-requirements.txt

# --- build: the project itself, then everything the runtime does not need is removed ---------
# Removed: pip and setuptools; the console script of devstack (the local runner, which
# .dockerignore keeps out); the kubernetes client's asyncio twin, kubernetes/aio (68 MB, nothing imports it:
# the operator uses the synchronous client); test suites and type stubs inside packages.
# Bytecode is compiled here because the root filesystem is read-only at run time.
FROM deps AS build
COPY README.md ./
COPY services ./services
COPY operator ./operator
RUN --mount=type=secret,id=pip-ca \
    if [ -s /run/secrets/pip-ca ]; then export PIP_CERT=/run/secrets/pip-ca; fi; \
    pip install --no-deps . \
 && python3 -m pip uninstall --yes pip setuptools \
 && rm -rf /opt/venv/bin/devstack /opt/venv/lib/python3*/site-packages/kubernetes/aio \
 && find /opt/venv -depth -type d -name tests -path '*/site-packages/*' -prune -exec rm -rf {} + \
 && find /opt/venv -depth \( -name '*.pyi' -o -name py.typed \) -delete \
 && python3 -m compileall -q -j 0 --invalidation-mode unchecked-hash /opt/venv

# --- dev: the dependencies, the source installed editable and a reloader in front ------------
# Tilt syncs services/ and operator/ into /app; watchfiles (from uvicorn[standard]) restarts the
# process given as the container's args when a .py file changes. The operator's chart sets
# `command`, which bypasses the reloader: Tilt builds it from the runtime target instead.
FROM deps AS dev
RUN groupadd --system --gid 10001 prequal \
 && useradd --system --uid 10001 --gid prequal --no-create-home --shell /usr/sbin/nologin prequal
WORKDIR /app
COPY --chown=10001:10001 pyproject.toml README.md ./
COPY --chown=10001:10001 services ./services
COPY --chown=10001:10001 operator ./operator
RUN --mount=type=secret,id=pip-ca \
    if [ -s /run/secrets/pip-ca ]; then export PIP_CERT=/run/secrets/pip-ca; fi; \
    pip install --no-deps -e . && chown 10001:10001 /app
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 HOME=/tmp
USER 10001:10001
ENTRYPOINT ["watchfiles", "--filter", "python"]
CMD ["prequal-api"]

# --- runtime (the default target): no pip, no build tools, no source tree, non-root ----------
FROM ${PYTHON_IMAGE} AS runtime
RUN groupadd --system --gid 10001 prequal \
 && useradd --system --uid 10001 --gid prequal --no-create-home --shell /usr/sbin/nologin prequal
COPY --from=build /opt/venv /opt/venv
# The root filesystem is read-only in the charts: the bytecode was compiled in the build stage
# and nothing may be written next to it; HOME points at the one writable place, /tmp.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp
# The numeric user lets Kubernetes' runAsNonRoot verify it without reading /etc/passwd.
USER 10001:10001
EXPOSE 8000 9101 9102 9103 9104
CMD ["prequal-api"]
