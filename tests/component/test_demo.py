"""The README's first command keeps working: the embedded demo loads, tours and writes its charts."""
import os
import socket
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_demo_runs_end_to_end(tmp_path):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    data_dir = tmp_path / "demo"
    result = subprocess.run(
        [sys.executable, "-m", "crm", "demo", "--customers", "40", "--no-serve", "--port", str(port),
         "--data-dir", str(data_dir)],
        cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    out = result.stdout
    for expected in ("Loaded 40 customers", "Value tier", "answers HTTP 404", "work list today",
                     "Churn early warning", "Charts and tables for a manager"):
        assert expected in out, f"{expected!r} missing from the demo's output:\n{out[-3000:]}"
    charts = os.listdir(data_dir / "reports")
    assert {"churn-by-team.svg", "repurchase-by-team.svg", "summary-by-team-monthly.csv"} <= set(charts)
