# A Dask worker for pylme_alliance: Debian 12, R 4.2 and the R packages from apt,
# Python 3.11, rpy2 for that R, and this package with its "cluster" extra.
#
#   docker build -t pylme-alliance-worker .
#   docker run --rm -e SCHEDULER=tcp://scheduler-host:8786 pylme-alliance-worker
#
# Every worker process starts its own R (one R per process: threads would only queue
# behind it), so the default runs one single-threaded worker process per CPU
# (DASK_NWORKERS=-1; set a number to use fewer). The client must run the same
# pylme_alliance and dask/distributed versions as the image.
FROM debian:bookworm-slim

ENV DEBIAN_FRONTEND=noninteractive \
    LANG=C.UTF-8 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# R, the R packages the package calls (src/pylme_alliance/requirements.py DEBIAN_PACKAGES,
# as scripts/setup.sh installs them), and what rpy2 needs to compile against this R.
RUN apt-get update -q \
 && apt-get install -y -q --no-install-recommends \
      python3.11 python3-venv python3-dev gcc \
      r-base-core r-base-dev \
      r-cran-lme4 r-cran-nlme r-cran-lmertest r-cran-glmmtmb r-cran-emmeans r-cran-pbkrtest r-cran-lavaan \
      r-cran-jsonlite r-cran-broom.mixed \
 && rm -rf /var/lib/apt/lists/*

# Debian's Python is externally managed (PEP 668): the package goes into a venv.
RUN python3.11 -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH

WORKDIR /src
COPY pyproject.toml README.md ./
COPY src ./src
COPY r ./r
# Not editable: the wheel carries r/*.R as pylme_alliance/r, so the workers find the R
# sources inside the installed package. rpy2 3.6+ needs R >= 4.5; R 4.2 takes the 3.5 series.
RUN pip install "rpy2>=3.5.11,<3.6" ".[cluster]" \
 && python -c "import rpy2.rinterface as ri; ri.initr()" \
 && python -c "from pylme_alliance.bridge.session import r_source_dir; print(r_source_dir())" \
 && cd / && rm -rf /src

RUN useradd --create-home --shell /usr/sbin/nologin worker
USER worker
WORKDIR /home/worker

ENV SCHEDULER="" \
    DASK_NWORKERS=-1
# The scheduler's address comes from $SCHEDULER; extra `dask worker` options may follow
# the image name (docker run ... pylme-alliance-worker --memory-limit 8GB).
ENTRYPOINT ["/bin/sh", "-c", "exec dask worker \"${SCHEDULER:?set SCHEDULER, e.g. -e SCHEDULER=tcp://host:8786}\" --nworkers \"$DASK_NWORKERS\" --nthreads 1 \"$@\"", "dask-worker"]
CMD []
