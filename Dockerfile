# One image for every tracefin process; docker-compose.yml picks the subcommand.
# Base images are pinned by tag (the same one in both stages, so the venv's interpreter path is
# valid in the runtime stage); scripts/pin-images.sh adds the digest where a registry answers
# (docs/deployment.md#base-images-pinned-by-digest). Python packages come only from the hashed
# lock files in requirements/ (`make lock` writes them), never from a resolver run at build time.

# --- build: a wheel of tracefin and a virtualenv with it and its pinned dependencies ----------
FROM python:3.11.11-slim-bookworm AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1
WORKDIR /src
RUN python -m venv /opt/tracefin
# Dependencies first, from the lock files alone: this layer is rebuilt only when they change.
# pip and setuptools first (the base image's are old and have published vulnerabilities), then
# every runtime dependency at its locked version, each file checked against its locked hash.
COPY requirements/pip.txt requirements/runtime.txt requirements/
RUN /opt/tracefin/bin/python -m pip install --require-hashes --requirement requirements/pip.txt \
    && /opt/tracefin/bin/python -m pip install --require-hashes --requirement requirements/runtime.txt
COPY pyproject.toml README.md ./
COPY tracefin tracefin
COPY epcis epcis
COPY records records
COPY ledger ledger
COPY ingest ingest
COPY finance finance
COPY api api
# No isolated build environment: it would be filled from the index, unhashed; the venv's locked
# setuptools builds the wheel.
RUN /opt/tracefin/bin/pip wheel --no-deps --no-build-isolation --wheel-dir /wheels . \
    && /opt/tracefin/bin/pip install --no-deps /wheels/tracefin-*.whl

# --- runtime: the virtualenv, the contract artifacts, a non-root user; no compiler, no source --
FROM python:3.11.11-slim-bookworm AS runtime
ENV PATH=/opt/tracefin/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
# The base image's own pip and setuptools (outside the venv, unused at run time) carry published
# vulnerabilities and would show in every image scan: remove them.
RUN /usr/local/bin/python -m pip uninstall --yes --quiet pip setuptools wheel \
    && rm -rf /root/.cache \
    && groupadd --system --gid 10001 tracefin \
    && useradd --system --uid 10001 --gid tracefin --no-create-home \
        --home-dir /nonexistent --shell /usr/sbin/nologin tracefin
COPY --from=build /opt/tracefin /opt/tracefin
# ledger/contracts.py reads the ABI + bytecode from contracts/artifacts beside the ledger
# package (the source-tree layout); the wheel does not ship them, so put them where it looks.
COPY contracts/artifacts /opt/tracefin/lib/python3.11/site-packages/contracts/artifacts
# An empty, read-only working directory: Settings reads `.env` from the working directory, and
# the image must take its configuration from the container's environment only.
WORKDIR /srv/tracefin
# Numeric, so an orchestrator can verify "not root" without reading /etc/passwd.
USER 10001:10001
CMD ["tracefin", "--help"]
