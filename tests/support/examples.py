"""Hypothesis example counts that follow the loaded profile (`ci`: as written, `dev`: a fifth)."""

from __future__ import annotations

import os

from hypothesis import settings

# The `ci` profile keeps Hypothesis's default, so a property without its own count runs as it
# always has; `dev` runs a fifth of every count for a quick local loop.
CI_EXAMPLES = 100
DEV_EXAMPLES = 20
PROFILE_VARIABLE = "TRACEFIN_HYPOTHESIS_PROFILE"


def profile_from_environment() -> str:
    """TRACEFIN_HYPOTHESIS_PROFILE if set; otherwise `ci` under CI=true, else `dev`."""
    chosen = os.environ.get(PROFILE_VARIABLE)
    if chosen:
        return chosen
    return "ci" if os.environ.get("CI", "").lower() == "true" else "dev"


def examples(ci: int) -> int:
    """`ci` examples under the `ci` profile, the same share of it as the loaded profile's count
    otherwise: a property that needs more than the default says how many CI must run."""
    return max(1, ci * settings().max_examples // CI_EXAMPLES)
