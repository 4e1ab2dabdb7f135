"""Constants and argument checks of the trial simulator (no random numbers here)."""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ..errors import PylmeError

#: Feedback arms of the trial, the reference ("none") first.
ARMS: tuple[str, ...] = ("none", "symptoms", "alliance", "both", "oq_report")

MODERATORS = ("severity", "n_sessions", "integrative", "arm")
COLUMNS = [
    "patient", "therapist", "arm", "session", "day", "alliance", "outcome",
    "severity", "n_sessions", "integrative",
]
PROCESSES = ("auto", "static", "dynamic")

#: Sizes power() refuses before any work starts (each message names its limit): the
#: seeds of every replicate are made up front, and a trial of 1e8 patients would only
#: end in a MemoryError after minutes.
MAX_SIMS = 100_000          # replicates per design point
MAX_REPLICATES = 1_000_000  # replicates over all design points
MAX_POINTS = 10_000         # design points (combinations of the swept values)
MAX_PATIENTS = 100_000      # patients in one simulated trial
MAX_TRIAL_ROWS = 3_000_000  # patients x sessions in one simulated trial


def check_power_size(points: Sequence[Mapping[str, Any]], n_sims: int) -> None:
    """Refuse a power() run beyond the limits above, before seeds or data are made.

    Values that are not numbers are left for simulate()'s own checks."""
    if n_sims > MAX_SIMS:
        raise PylmeError(f"power(): n_sims = {n_sims:,} is more than the limit of {MAX_SIMS:,} replicates "
                         "per design point (the Monte-Carlo error at 10,000 is already below 0.5 percentage points)")
    if len(points) * n_sims > MAX_REPLICATES:
        raise PylmeError(f"power(): {len(points):,} design points x {n_sims:,} replicates = "
                         f"{len(points) * n_sims:,} fits, more than the limit of {MAX_REPLICATES:,}; "
                         "sweep fewer values or run fewer replicates")
    for point in points:
        n = point.get("n_patients")
        if _number(n) and n > MAX_PATIENTS:
            raise PylmeError(f"power(): n_patients = {n:,} is more than the limit of {MAX_PATIENTS:,} patients "
                             "in one simulated trial")
        sessions = point.get("sessions") or point.get("max_sessions", 30)
        if _number(n) and _number(sessions) and n * sessions > MAX_TRIAL_ROWS:
            raise PylmeError(f"power(): a trial of {n:,} patients with up to {sessions:,} sessions each has "
                             f"up to {n * sessions:,.0f} rows, more than the limit of {MAX_TRIAL_ROWS:,} rows "
                             "in one simulated trial")


def check_point_count(lengths: Sequence[int]) -> None:
    """Refuse a design whose sweep has more than MAX_POINTS combinations (before listing them)."""
    count = math.prod(lengths)
    if count > MAX_POINTS:
        raise PylmeError(f"power(): the design sweeps {count:,} combinations, more than the limit of "
                         f"{MAX_POINTS:,} design points")


def _number(value: Any) -> bool:
    return (isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)
            and math.isfinite(value))


def check_int(name: str, value: Any, low: int, high: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise PylmeError(f"simulate(): {name} must be an integer, got {value!r}")
    if value < low or (high is not None and value > high):
        bounds = f">= {low}" if high is None else f"between {low} and {high}"
        raise PylmeError(f"simulate(): {name} must be {bounds}, got {value}")
    return int(value)


def check_float(name: str, value: Any, low: float | None = None, high: float | None = None,
                *, open_low: bool = False, open_high: bool = False) -> float:
    if isinstance(value, bool):
        raise PylmeError(f"simulate(): {name} must be a number, got {value!r}")
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise PylmeError(f"simulate(): {name} must be a number, got {value!r}") from None
    if not math.isfinite(x):
        raise PylmeError(f"simulate(): {name} must be finite, got {value!r}")
    if low is not None and (x < low or (open_low and x == low)):
        raise PylmeError(f"simulate(): {name} must be {'>' if open_low else '>='} {low}, got {x}")
    if high is not None and (x > high or (open_high and x == high)):
        raise PylmeError(f"simulate(): {name} must be {'<' if open_high else '<='} {high}, got {x}")
    return x


def check_effects(within_effect: Sequence[float], max_sessions: int) -> list[float]:
    try:
        if isinstance(within_effect, (str, bytes)):
            raise TypeError
        b = [float(x) for x in within_effect]
    except (TypeError, ValueError):
        raise PylmeError("simulate(): within_effect must be a sequence of numbers, e.g. (-2, -1, 0)") from None
    if not b or not all(math.isfinite(x) for x in b):
        raise PylmeError("simulate(): within_effect must be a non-empty sequence of finite numbers")
    if len(b) >= max(max_sessions, 2):
        raise PylmeError(f"simulate(): within_effect has {len(b)} lags; at most max_sessions - 1 = {max_sessions - 1}")
    return b


def check_moderation(moderation: Mapping[str, Any] | None, arms: Sequence[str]) -> dict[str, Any]:
    if moderation is None:
        return {}
    if not isinstance(moderation, Mapping):
        raise PylmeError("simulate(): moderation must be a dict like {'severity': -0.05, 'arm': {...}}")
    out: dict[str, Any] = {}
    for key, coef in moderation.items():
        if key not in MODERATORS:
            raise PylmeError(f"simulate(): unknown moderator {key!r}; choose from {list(MODERATORS)}")
        if key == "arm":
            if not isinstance(coef, Mapping):
                raise PylmeError("simulate(): moderation['arm'] must be a dict arm -> coefficient")
            arm_coef: dict[str, float] = {}
            for level, c in coef.items():
                if level == arms[0]:
                    raise PylmeError(
                        f"simulate(): moderation['arm'] gives the reference arm {level!r}; "
                        "coefficients are relative to it, leave it out")
                if level not in arms:
                    raise PylmeError(f"simulate(): moderation['arm'] has unknown arm {level!r}; arms are {list(arms)}")
                arm_coef[str(level)] = check_float(f"moderation['arm'][{level!r}]", c)
            out["arm"] = arm_coef
        else:
            out[key] = check_float(f"moderation[{key!r}]", coef)
    return out
