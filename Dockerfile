# One image for every tracefin worker (the compose file picks the subcommand).
FROM python:3.11.11-slim-bookworm AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY tracefin tracefin
COPY ledger ledger
COPY ingest ingest
COPY finance finance
COPY api api
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11.11-slim-bookworm
RUN useradd --create-home --uid 10001 tracefin
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
USER tracefin
ENTRYPOINT []
CMD ["tracefin", "--help"]
