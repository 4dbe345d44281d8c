# One image for every tracefin process; docker-compose.yml picks the subcommand.
# Base images are pinned by tag (the same one in both stages, so the venv's interpreter path is
# valid in the runtime stage). To pin by digest as well, append @sha256:… to both FROM lines.

# --- build: a wheel of tracefin and a virtualenv with it and its pinned dependencies ----------
FROM python:3.11.11-slim-bookworm AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1
WORKDIR /src
RUN python -m venv /opt/tracefin
# Dependencies first, from pyproject.toml alone: this layer is rebuilt only when they change.
COPY pyproject.toml README.md ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" > requirements.txt \
    && /opt/tracefin/bin/pip install --requirement requirements.txt
COPY tracefin tracefin
COPY epcis epcis
COPY records records
COPY ledger ledger
COPY ingest ingest
COPY finance finance
COPY api api
RUN /opt/tracefin/bin/pip wheel --no-deps --wheel-dir /wheels . \
    && /opt/tracefin/bin/pip install --no-deps /wheels/tracefin-*.whl

# --- runtime: the virtualenv, the contract artifacts, a non-root user; no compiler, no source --
FROM python:3.11.11-slim-bookworm AS runtime
ENV PATH=/opt/tracefin/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
RUN groupadd --system --gid 10001 tracefin \
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
