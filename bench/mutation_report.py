"""Per-module mutation score for `make mutate` (mutmut prints one total only).

Reads mutmut's results (mutants/**/*.meta), keeps the rule functions named in RULES,
prints a score per module and every surviving mutant, with `mutmut show NAME` to see it.
Exit status 1 when a module is under TARGET, so CI could hold the line if wanted.
"""

from __future__ import annotations

import fnmatch
import json
import sys
from collections import defaultdict
from pathlib import Path

TARGET = 0.90

# module -> the functions that hold its rules (mutmut's names: x_func, xǁClassǁmethod)
RULES: dict[str, list[str]] = {
    "storage.store": [  # the outbox state machine and claims, delivery state ranking
        "xǁStoreǁclaim_due", "xǁStoreǁclaim_one", "xǁStoreǁmark_sending", "xǁStoreǁrecord_outcome",
        "xǁStoreǁrelease", "xǁStoreǁunclaim", "xǁStoreǁunclaim_owner", "xǁStoreǁreap_expired",
        "xǁStoreǁrecover_owner", "xǁStoreǁcancel", "xǁStoreǁedit", "xǁStoreǁsend_missed_now",
        "xǁStoreǁapply_delivery_event",
    ],
    "storage.delivery": ["xǁDeliveryQueriesǁadopt_orphans", "xǁDeliveryQueriesǁsettle_unknown"],
    "bot.worker": ["xǁDispatcherǁprocess", "xǁDispatcherǁ_retry_or_fail", "x_backoff"],
    "providers.sociocs": ["x_verify_sociocs_signature"],
    "providers.bird": ["x_verify_bird_signature"],
    "providers.textus": ["x_verify_textus_signature"],
    "providers.base": ["x_redact"],
    "bot.logs": ["xǁRedactSecretsǁfilter"],
}

KILLED = {1, 3, 37}  # test failure, pytest internal error, type checker
TIMEOUT = {36, -24, 24, 152, 255}  # a mutant that hangs is caught too


def patterns() -> list[str]:
    """The `mutmut run` arguments that select the rule functions' mutants."""
    return [f"{module}.{func}__mutmut_*" for module, funcs in RULES.items() for func in funcs]


def results(root: Path) -> dict[str, int | None]:
    codes: dict[str, int | None] = {}
    for meta in root.glob("**/*.py.meta"):
        codes.update(json.loads(meta.read_text())["exit_code_by_key"])
    return codes


def report(root: Path = Path("mutants")) -> int:
    wanted = patterns()
    by_module: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    for name, code in sorted(results(root).items()):
        if not any(fnmatch.fnmatchcase(name, p) for p in wanted):
            continue
        module = name.split(".x", 1)[0]
        kind = "killed" if code in KILLED or code in TIMEOUT else "unchecked" if code is None else \
            "no tests" if code in (5, 33) else "survived"
        by_module[module][kind].append(name)
    worst = 1.0
    survivors: list[str] = []
    print(f"{'module':<20} {'killed':>7} {'total':>6} {'score':>6}")
    for module in RULES:
        kinds = by_module.get(module, {})
        total = sum(len(v) for k, v in kinds.items() if k != "unchecked")
        killed = len(kinds.get("killed", []))
        score = killed / total if total else 0.0
        worst = min(worst, score)
        print(f"{module:<20} {killed:>7} {total:>6} {score:>6.0%}")
        survivors += kinds.get("survived", []) + kinds.get("no tests", [])
    print(f"\n{len(survivors)} surviving mutants (see one with `mutmut show NAME`):")
    for name in survivors:
        print("  " + name)
    return 0 if worst >= TARGET else 1


if __name__ == "__main__":
    if sys.argv[1:] == ["--patterns"]:
        print("\n".join(patterns()))
        sys.exit(0)
    sys.exit(report())
