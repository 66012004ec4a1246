# tidegate: the same `tidegate` entry point as the CLI, running `serve` by default.
#   docker build -t tidegate .
#   docker run -p 8080:8080 -v $PWD/examples/serve:/etc/tidegate tidegate
FROM python:3.11-slim AS build
WORKDIR /src
COPY requirements.lock pyproject.toml README.md ./
COPY policies ./policies
COPY adapters ./adapters
COPY controller ./controller
# Pinned dependencies first (the lock file), then the project without re-resolving anything.
RUN python -m venv /opt/tidegate \
 && /opt/tidegate/bin/pip install --no-cache-dir --disable-pip-version-check -r requirements.lock \
 && /opt/tidegate/bin/pip install --no-cache-dir --disable-pip-version-check --no-deps .

FROM python:3.11-slim
COPY --from=build /opt/tidegate /opt/tidegate
RUN useradd --system --uid 10001 --home-dir /var/lib/tidegate --create-home tidegate
USER 10001
WORKDIR /var/lib/tidegate
ENV PATH=/opt/tidegate/bin:$PATH PYTHONUNBUFFERED=1
EXPOSE 8080
# No curl in the slim image: the standard library asks /healthz.
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
  CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=2).status != 200)"]
ENTRYPOINT ["tidegate"]
CMD ["serve", "--config", "/etc/tidegate/controller.yaml"]
