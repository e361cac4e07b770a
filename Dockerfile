# One image for every process of the platform: prequal-api, outbox-publisher, credit-service,
# decision-service, loan-operator and prequalctl (the charts pick one with `args`/`command`).
# Not built on the project's machines (no container engine there): see docs/kubernetes.md.
#
#   docker build -t loan-prequal:dev .                 # runtime image
#   docker build --target dev -t loan-prequal:dev .    # Tilt's image: reloads on synced changes

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# --- build: a virtualenv with the locked runtime dependencies, then the project -------------
FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
# Dependencies first, in their own layer: they change far less often than the code.
# requirements.lock pins everything (dev tools too); as constraints it pins the runtime set only.
COPY requirements.lock pyproject.toml ./
RUN python -c "import tomllib; print(*tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies'], sep='\n')" \
      > /tmp/runtime-requirements.txt
RUN pip install -c requirements.lock -r /tmp/runtime-requirements.txt
COPY README.md ./
COPY services ./services
COPY operator ./operator
RUN pip install --no-deps .

# --- runtime: slim, non-root, no build tools, no source tree ---------------------------------
FROM ${PYTHON_IMAGE} AS runtime
RUN groupadd --system --gid 10001 prequal \
 && useradd --system --uid 10001 --gid prequal --no-create-home --shell /usr/sbin/nologin prequal
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
# The numeric user lets Kubernetes' runAsNonRoot verify it without reading /etc/passwd.
USER 10001:10001
EXPOSE 8000 9101 9102 9103 9104
CMD ["prequal-api"]

# --- dev: the runtime image with the source installed editable and a reloader in front -------
# Tilt syncs services/ and operator/ into /app; watchfiles (from uvicorn[standard]) restarts the
# process given as the container's args when a .py file changes. The operator's chart sets
# `command`, which bypasses the reloader: Tilt builds it from the runtime target instead.
FROM runtime AS dev
USER root
WORKDIR /app
COPY --chown=10001:10001 pyproject.toml README.md ./
COPY --chown=10001:10001 services ./services
COPY --chown=10001:10001 operator ./operator
RUN pip install --no-cache-dir --no-deps -e . && chown 10001:10001 /app
USER 10001:10001
ENTRYPOINT ["watchfiles", "--filter", "python"]
CMD ["prequal-api"]
