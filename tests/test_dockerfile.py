"""The Dockerfile (a Dask worker image) stays in step with the package's needs: CI does
not build it, so these are its checks."""
from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

from pylme_alliance.requirements import DEBIAN_PACKAGES, RPY2_FOR_OLD_R

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = (ROOT / "Dockerfile").read_text()


def test_debian12_r_packages_rpy2_and_cluster_extra():
    assert re.search(r"^FROM debian:bookworm", DOCKERFILE, re.M)
    for name in DEBIAN_PACKAGES.values():  # every R package setup.sh installs from apt
        assert re.search(rf"\s{re.escape(name)}(\s|$)", DOCKERFILE), name
    assert "r-base-core" in DOCKERFILE and "r-base-dev" in DOCKERFILE
    assert f'"{RPY2_FOR_OLD_R}"' in DOCKERFILE  # bookworm's R is 4.2
    assert '".[cluster]"' in DOCKERFILE and "pip install -e" not in DOCKERFILE  # R files inside the wheel
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".venv", ".git"} <= set(ignored) and not {"src", "r"} & set(ignored)


def test_entrypoint_runs_a_dask_worker_on_the_scheduler(tmp_path):
    fake = tmp_path / "dask"
    fake.write_text('#!/bin/sh\necho dask "$@"\n')
    fake.chmod(0o755)
    line = next(ln for ln in DOCKERFILE.splitlines() if ln.startswith("ENTRYPOINT"))
    argv = json.loads(line[len("ENTRYPOINT"):])
    env = dict(os.environ, PATH=f"{tmp_path}:{os.environ['PATH']}", DASK_NWORKERS="-1", SCHEDULER="")
    missing = subprocess.run(argv, env=env, capture_output=True, text=True)
    assert missing.returncode != 0 and "SCHEDULER" in missing.stderr
    env["SCHEDULER"] = "tcp://scheduler:8786"
    ran = subprocess.run(argv + ["--memory-limit", "8GB"], env=env, capture_output=True, text=True, check=True)
    assert ran.stdout.split() == ["dask", "worker", "tcp://scheduler:8786", "--nworkers", "-1", "--nthreads", "1",
                                  "--memory-limit", "8GB"]
