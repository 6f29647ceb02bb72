"""Hypothesis profiles for the fuzzers.

- ``ci`` (the default, part of ``make test``): a few hundred examples per target, derandomized so a
  run is repeatable and never flaky, no deadline (the machine is shared).
- ``fuzz`` (``make fuzz``): ``FUZZ_EXAMPLES`` (default 25,000) examples per test, so at least
  100,000 inputs for each parser (4-5 tests each); random seeds; failures saved in
  ``.hypothesis/`` and replayed first next time.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

PROFILE = os.environ.get("HYPOTHESIS_PROFILE", "ci")
FUZZ_EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "25000"))

settings.register_profile(
    "ci",
    max_examples=300,
    derandomize=True,
    deadline=None,
    database=None,
    print_blob=True,
)
settings.register_profile(
    "fuzz",
    max_examples=FUZZ_EXAMPLES,
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile(PROFILE)


def examples(ci: int, fuzz_share: float = 1.0) -> int:
    """Examples for a target slower than the parsers: ``ci`` in ``make test``, a share of
    ``FUZZ_EXAMPLES`` in ``make fuzz``."""
    return int(FUZZ_EXAMPLES * fuzz_share) if PROFILE == "fuzz" else ci
