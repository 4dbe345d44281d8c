# One image for every tracefin worker (the compose file picks the subcommand).
FROM python:3.11.11-slim-bookworm
RUN useradd --create-home --uid 10001 tracefin
WORKDIR /app
COPY pyproject.toml README.md ./
COPY tracefin tracefin
COPY ledger ledger
COPY ingest ingest
COPY finance finance
COPY api api
# The contract artifacts are read from the source tree (contracts/artifacts), hence the
# in-place install rather than a wheel.
COPY contracts/artifacts contracts/artifacts
RUN pip install --no-cache-dir -e . && chown -R root:root /app
USER tracefin
ENTRYPOINT []
CMD ["tracefin", "--help"]
