# One image for every role; the GPU worker builds it with EXTRAS=gpu (torch + diffusers).
FROM python:3.11-slim
ARG EXTRAS=""
ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 RYLA_DATA_DIR=/data
WORKDIR /app
COPY pyproject.toml README.md alembic.ini ./
COPY models ./models
COPY pipeline ./pipeline
COPY tasks ./tasks
COPY admin ./admin
COPY migrations ./migrations
RUN pip install ".${EXTRAS:+[$EXTRAS]}" \
 && useradd --create-home --uid 1000 ryla \
 && mkdir -p /data /hf-cache && chown ryla /data /hf-cache
USER ryla
ENTRYPOINT ["ryla"]
CMD ["--help"]
