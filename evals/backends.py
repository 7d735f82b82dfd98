"""Where an eval job runs: ``local`` (a detached process here, the default) or ``ray``.

``placement`` turns the settings and command-line flags into a checked
``Placement`` before anything is queued, so a bad backend name, a missing Ray
address or a Ray that is not installed is a titled error (exit 2) and no job
row is written. The local backend is ``forgetwatch.evals.jobs`` itself; the Ray
one is ``forgetwatch.evals.ray_backend``, imported only when a job goes there,
so without the ``forgetwatch[ray]`` extra nothing here imports Ray.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass

from forgetwatch import settings
from forgetwatch.errors import BadInputError

BACKENDS = ("local", "ray")
RAY_INSTALL = "pip install 'forgetwatch[ray]'"


@dataclass(frozen=True)
class Placement:
    """A job's backend and, on Ray, the cluster address and the resources it asks for."""

    backend: str = "local"
    address: str | None = None
    num_cpus: float = 1.0
    num_gpus: float = 0.0


LOCAL = Placement()


def ray_installed() -> bool:
    """True if Ray's Jobs API client can be imported (checked without importing Ray)."""
    try:
        return importlib.util.find_spec("ray.job_submission") is not None
    except ModuleNotFoundError:  # no ``ray`` package at all
        return False


def normalise_address(address: str) -> str:
    """``head:8265`` -> ``http://head:8265``: the Jobs API is the Ray dashboard's HTTP port."""
    address = address.strip().rstrip("/")
    return address if "://" in address else f"http://{address}"


def placement(
    backend: str | None = None,
    address: str | None = None,
    gpus: float | None = None,
    cpus: float | None = None,
) -> Placement:
    """The checked placement: flags win over ``FORGETWATCH_JOB_BACKEND``, ``RAY_ADDRESS``, ..."""
    name = settings.choice("job_backend", BACKENDS, backend)
    if name == "local":
        if gpus or cpus:
            raise BadInputError(
                "--gpus and --cpus apply to the ray job backend",
                "Add --backend ray (and --ray-address), or drop --gpus/--cpus: a local job "
                "uses this machine as it is.",
                where="--gpus" if gpus else "--cpus",
            )
        return LOCAL
    if not ray_installed():
        raise BadInputError(
            "The ray job backend needs Ray, which is not installed",
            f"Install the extra with `{RAY_INSTALL}`, or set FORGETWATCH_JOB_BACKEND=local.",
            where="FORGETWATCH_JOB_BACKEND" if backend is None else "--backend",
        )
    where = (address or settings.get("ray_address")).strip()
    if not where:
        raise BadInputError(
            "The ray job backend needs the cluster's address",
            "Set RAY_ADDRESS (or pass --ray-address) to the Ray dashboard, e.g. "
            "http://ray-head:8265.",
            where="RAY_ADDRESS",
        )
    return Placement(
        backend="ray",
        address=normalise_address(where),
        num_cpus=settings.number("ray_num_cpus") if cpus is None else _at_least_0(cpus, "cpus"),
        num_gpus=settings.number("ray_num_gpus") if gpus is None else _at_least_0(gpus, "gpus"),
    )


def _at_least_0(value: float, flag: str) -> float:
    if value < 0:
        raise BadInputError(f"--{flag} {value:g} is negative", f"Pass --{flag} 0 or more.")
    return float(value)
