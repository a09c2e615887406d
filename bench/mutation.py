"""Mutation testing of the services' domain cores with mutmut 3 (issue 14, item 5). Not part of CI.

    python bench/mutation.py --service customers                      # one service's services/<svc>/domain/
    python bench/mutation.py --service followups --module cadence     # one domain module of it
    python bench/mutation.py --service all --json .run/mutation.json  # every service, figures as JSON
    python bench/mutation.py --service alerts --tests test_domain.py  # without test_domain_mutants.py

For each service it builds a scratch copy of the project outside the repository (``--workdir``, default
``/tmp/crm-mutation/<service>``, removed afterwards unless ``--keep``): services/, crm_common/, crm/, the
service's domain unit tests (tests/unit/<svc>/test_domain*.py, or ``--tests GLOB``) and a
pyproject.toml holding only the mutmut and pytest settings. mutmut then writes its ``mutants/`` copy there,
never in the repository. mutmut runs, per mutant, only the tests that called the mutated function (its
per-function test selection), each mutant with a time limit (mutmut's: 15 x the tests' own time + 1 s).

The scratch conftest.py imports crm_common.contracts, as tests/conftest.py does, but does not call
eventlet.monkey_patch(): the domain tests need no green sockets, and a patched ``threading`` breaks
mutmut's timeout thread ("cannot notify on un-acquired lock").

It prints every mutant that is not killed (survived, timeout, no tests, ...) with file, line and diff, then
per module: mutants, killed, survived, timeout, no tests, other. ``--json PATH`` writes all of it.
mutmut (3.x) is installed into the running interpreter with pip if it is missing.

The survivors found and what was done about each (a test in tests/unit/<svc>/test_domain_mutants.py, or a
note that the mutant is equivalent) are in docs/testing.md#mutation-testing.
"""
from __future__ import annotations

import argparse
import fnmatch
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections import Counter, defaultdict
from datetime import datetime, timezone

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.benchlib import ROOT, write_json  # noqa: E402

SERVICES = ("customers", "followups", "alerts", "reports")
MUTMUT = "mutmut>=3,<4"
IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc", "mutants")

PYPROJECT = """\
[tool.mutmut]
source_paths = ["services"]
only_mutate = [{only}]
also_copy = ["crm_common", "crm"]
pytest_add_cli_args = ["-p", "no:randomly", "-p", "no:cacheprovider", "-q"]
pytest_add_cli_args_test_selection = [{tests}]

[tool.pytest.ini_options]
addopts = "--import-mode=importlib"
filterwarnings = ["ignore::DeprecationWarning"]
"""

CONFTEST = """\
import crm_common.contracts  # noqa: F401 - registers every event contract, as tests/conftest.py does
"""

# Run inside the scratch directory after `mutmut run`: every mutant's status, and the diff of those not killed.
COLLECT = r"""
import json
from mutmut.__main__ import SourceFileMutationData, get_diff_for_mutant, status_by_exit_code, walk_mutatable_files
out = []
for path in walk_mutatable_files():
    m = SourceFileMutationData(path=path)
    m.load()
    for name, code in m.exit_code_by_key.items():
        status = status_by_exit_code[code]
        diff = "" if status == "killed" else get_diff_for_mutant(name, path=m.path)
        out.append({"name": name, "path": str(path), "status": status, "diff": diff})
print(json.dumps(out))
"""


def ensure_mutmut() -> str:
    try:
        import mutmut  # noqa: F401
    except ImportError:
        print(f"installing {MUTMUT} into {sys.prefix}")
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", MUTMUT], check=True)
    from importlib.metadata import version
    return version("mutmut")


def build_workdir(service: str, workdir: str, module: str | None, pattern: str) -> list[str]:
    if os.path.exists(workdir):
        shutil.rmtree(workdir)
    os.makedirs(workdir)
    for package in ("services", "crm_common", "crm"):
        shutil.copytree(os.path.join(ROOT, package), os.path.join(workdir, package), ignore=IGNORE)
    source_tests = os.path.join(ROOT, "tests", "unit", service)
    target_tests = os.path.join(workdir, "tests", "unit", service)
    os.makedirs(target_tests)
    tests = sorted(name for name in os.listdir(source_tests) if fnmatch.fnmatch(name, pattern))
    if not tests:
        raise SystemExit(f"no tests/unit/{service}/{pattern}")
    for name in tests:
        shutil.copy(os.path.join(source_tests, name), target_tests)
    with open(os.path.join(workdir, "tests", "conftest.py"), "w") as handle:
        handle.write(CONFTEST)
    only = f"services/{service}/domain/{module + '.py' if module else '*'}"
    with open(os.path.join(workdir, "pyproject.toml"), "w") as handle:
        handle.write(PYPROJECT.format(only=json.dumps(only),
                                      tests=", ".join(json.dumps(f"tests/unit/{service}/{t}") for t in tests)))
    return tests


def source_line(path: str, name: str, diff: str) -> int | None:
    """The line of the original file the mutant changes: the first removed line of its diff, searched for
    after the mutated function's `def`."""
    removed = [line[1:] for line in diff.splitlines() if line.startswith("-") and not line.startswith("---")]
    if not removed:
        return None
    function = re.sub(r"__mutmut_\d+$", "", name.rsplit(".", 1)[-1]).split("ǁ")[-1]
    function = function[2:] if function.startswith("x_") else function
    with open(os.path.join(ROOT, path)) as handle:
        lines = handle.read().splitlines()
    start = next((i for i, line in enumerate(lines) if re.match(rf"\s*(async\s+)?def {re.escape(function)}\b", line)), 0)
    for i in range(start, len(lines)):
        if lines[i].strip() == removed[0].strip():
            return i + 1
    return None


def run_service(service: str, args) -> dict:
    workdir = os.path.join(args.workdir, service)
    tests = build_workdir(service, workdir, args.module, args.tests)
    print(f"== {service}: mutating services/{service}/domain/{args.module or '*'}.py, tests {', '.join(tests)}")
    started = time.monotonic()
    command = [sys.executable, "-m", "mutmut", "run", "--max-children", str(args.max_children)]
    log_path = os.path.join(workdir, "mutmut-run.log")
    with open(log_path, "w") as log:
        try:
            run = subprocess.run(command, cwd=workdir, stdout=log, stderr=subprocess.STDOUT, timeout=args.timeout)
            returncode = run.returncode
        except subprocess.TimeoutExpired:
            returncode = "timeout"
    elapsed = time.monotonic() - started
    if returncode != 0:
        with open(log_path, errors="replace") as log:
            tail = log.read().replace("\r", "\n")[-3000:]
        print(f"  mutmut run ended with {returncode} after {elapsed:.0f}s; its log ends:\n{tail}")
    collected = subprocess.run([sys.executable, "-c", COLLECT], cwd=workdir, capture_output=True, text=True)
    mutants = json.loads(collected.stdout) if collected.returncode == 0 else []
    if collected.returncode != 0:
        print(collected.stderr[-2000:])
    per_module: dict[str, Counter] = defaultdict(Counter)
    not_killed = []
    for mutant in mutants:
        counts = per_module[mutant["path"]]
        counts["mutants"] += 1
        counts[mutant["status"]] += 1
        if mutant["status"] != "killed":
            mutant["line"] = source_line(mutant["path"], mutant["name"], mutant["diff"])
            not_killed.append(mutant)
    for mutant in not_killed:
        print(f"\n--- {mutant['status'].upper()}: {mutant['path']}:{mutant['line']}  {mutant['name']}")
        print(mutant["diff"].rstrip())
    print(f"\n{service}: {len(mutants)} mutants in {elapsed:.0f}s (mutmut exit {returncode})")
    print(f"  {'module':45} {'mutants':>7} {'killed':>6} {'survived':>8} {'timeout':>7} {'no tests':>8} {'other':>5}")
    known = {"mutants", "killed", "survived", "timeout", "no tests"}
    for path, counts in sorted(per_module.items()):
        other = sum(v for k, v in counts.items() if k not in known)
        print(f"  {path:45} {counts['mutants']:>7} {counts['killed']:>6} {counts['survived']:>8} "
              f"{counts['timeout']:>7} {counts['no tests']:>8} {other:>5}")
    if not args.keep:
        shutil.rmtree(workdir, ignore_errors=True)
        if not os.listdir(args.workdir):
            os.rmdir(args.workdir)
    return {"service": service, "module": args.module, "tests": tests, "seconds": round(elapsed, 1),
            "mutmut_exit": returncode, "per_module": {p: dict(c) for p, c in per_module.items()},
            "totals": dict(sum(per_module.values(), Counter())), "not_killed": not_killed}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--service", choices=SERVICES + ("all",), default="customers")
    parser.add_argument("--module", help="one module of services/<svc>/domain/, without .py (e.g. cadence)")
    parser.add_argument("--tests", default="test_domain*.py",
                        help="which tests/unit/<svc>/ files to run (a glob, default test_domain*.py; "
                             "test_domain.py alone gives the figures before test_domain_mutants.py)")
    parser.add_argument("--workdir", default=os.path.join("/tmp", "crm-mutation"),
                        help="scratch directory, outside the repository (default /tmp/crm-mutation)")
    parser.add_argument("--max-children", type=int, default=2, help="mutants tested at once (default 2)")
    parser.add_argument("--timeout", type=int, default=1800, help="seconds for one service's mutmut run")
    parser.add_argument("--keep", action="store_true", help="keep the scratch copy (mutmut results/show/browse)")
    parser.add_argument("--json", metavar="PATH", help="write the figures and the surviving mutants there")
    args = parser.parse_args()
    if os.path.abspath(args.workdir).startswith(os.path.abspath(ROOT) + os.sep):
        parser.error("--workdir must be outside the repository")
    figures = {"tests": args.tests, "date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "mutmut": ensure_mutmut(),
               "services": []}
    for service in SERVICES if args.service == "all" else (args.service,):
        figures["services"].append(run_service(service, args))
    write_json(args.json, figures)
    return 0


if __name__ == "__main__":
    sys.exit(main())
