"""Per-module mutation score for `make mutate` (mutmut prints one total only).

Reads mutmut's results (mutants/**/*.meta), keeps the rule functions named in RULES,
prints a score per module and every surviving mutant as a one-line diff.

Mutants that only change the letter case of SQL text are equivalent (SQLite keywords
and these identifiers are case-insensitive): they are listed apart and left out of the
score. Other survivors judged equivalent are in docs/operations.md, "Mutation testing".
Exit status 1 when a module is under TARGET.
"""

from __future__ import annotations

import difflib
import fnmatch
import json
import re
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
    "bot.core.dispatch": ["xǁDispatcherǁprocess"],
    "bot.core.outcomes": ["x_outcome_of", "x__retry", "x_backoff"],  # the one outcome policy
    "providers.sociocs": ["x_verify_sociocs_signature"],
    "providers.bird": ["x_verify_bird_signature"],
    "providers.textus": ["x_verify_textus_signature"],
    "providers.base": ["x_redact"],
    "bot.app.logs": ["xǁRedactSecretsǁfilter"],
}

KILLED = {1, 3, 37, 36, -24, 24, 152, 255}  # a failing test, pytest error, type check, timeout
NO_TESTS = {5, 33}
IDENTIFIERS = re.compile(r"\"[\w\s,=?()*<>%'+-]*\"")  # SQL text and column names: no prose
SQL = re.compile(r"\b(SELECT|UPDATE|INSERT|DELETE|WHERE|SET|FROM|AND|OR|ORDER BY|LIMIT|CASE|WHEN|NULL)\b")


def patterns() -> list[str]:
    """The `mutmut run` arguments that select the rule functions' mutants."""
    return [f"{module}.{func}__mutmut_*" for module, funcs in RULES.items() for func in funcs]


def functions(source: str) -> dict[str, str]:
    """Mutated file -> {function name: body}, the body without its def line."""
    bodies: dict[str, str] = {}
    for chunk in re.split(r"\n(?=\s*def )", source):
        m = re.match(r"\s*def (\S+?)\(", chunk)
        if m:
            bodies[m.group(1)] = chunk.split("\n", 1)[-1]
    return bodies


def change(bodies: dict[str, str], name: str) -> tuple[str, str]:
    """The mutant's first changed line, before and after."""
    func = name.rsplit(".", 1)[-1]
    orig = bodies.get(func.rsplit("__mutmut_", 1)[0] + "__mutmut_orig", "").splitlines()
    new = bodies.get(func, "").splitlines()
    removed = [x[1:].strip() for x in difflib.ndiff(orig, new) if x.startswith("- ")]
    added = [x[1:].strip() for x in difflib.ndiff(orig, new) if x.startswith("+ ")]
    return " / ".join(removed), " / ".join(added)


def sql_case_only(name: str, before: str, after: str) -> bool:
    """Only the case of SQL text, a column name or a sqlite3.Row key changed (all case-blind).

    Quoted SQL values ('claimed') and prose (anything with . or ;) do not count.
    """
    if before == after or before.lower() != after.lower():
        return False
    if re.findall(r"'[^']*'", before) != re.findall(r"'[^']*'", after):
        return False
    changed = [a for a, b in zip(re.findall(r'"[^"]*"', before), re.findall(r'"[^"]*"', after), strict=False) if a != b]
    identifiers = all(IDENTIFIERS.fullmatch(c) for c in changed)
    return bool(changed) and identifiers and (name.startswith("storage.") or bool(SQL.search(before)))


def report(root: Path = Path("mutants")) -> int:
    wanted = patterns()
    rows: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    for meta in sorted(root.glob("**/*.py.meta")):
        codes = json.loads(meta.read_text())["exit_code_by_key"]
        bodies = functions(meta.with_suffix("").read_text())
        for name, code in sorted(codes.items(), key=lambda kv: (kv[0].rsplit("_", 1)[0], int(kv[0].rsplit("_", 1)[1]))):
            if code is None or not any(fnmatch.fnmatchcase(name, p) for p in wanted):
                continue
            module = name.split(".x", 1)[0]
            before, after = change(bodies, name)
            if code in KILLED:
                rows[module]["killed"].append(name)
            elif sql_case_only(name, before, after):
                rows[module]["equivalent"].append(name)
            else:
                why = "no test reaches it" if code in NO_TESTS else "survived"
                rows[module]["survived"].append(f"{name} ({why}): {before}  ->  {after}")
    worst = 1.0
    print(f"{'module':<18} {'killed':>6} {'of':>4} {'score':>6}   (SQL-case equivalents left out)")
    for module in RULES:
        kinds = rows.get(module, {})
        killed, alive = len(kinds.get("killed", [])), len(kinds.get("survived", []))
        score = killed / (killed + alive) if killed + alive else 0.0
        worst = min(worst, score)
        print(f"{module:<18} {killed:>6} {killed + alive:>4} {score:>6.1%}   ({len(kinds.get('equivalent', []))})")
    survivors = [s for kinds in rows.values() for s in kinds.get("survived", [])]
    print(f"\n{len(survivors)} surviving mutants (`mutmut show NAME` for the whole diff):")
    for line in survivors:
        print("  " + line)
    return 0 if worst >= TARGET else 1


if __name__ == "__main__":
    if sys.argv[1:] == ["--patterns"]:
        print("\n".join(patterns()))
        sys.exit(0)
    sys.exit(report())
