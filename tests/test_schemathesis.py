"""Property-based testing of the live server against its own OpenAPI document, with schemathesis.

Schemathesis reads /openapi.json from the running host and generates requests from it: valid ones (which must
be accepted and answered as documented) and invalid ones (which must be refused with a documented 4xx), plus
requests without credentials and with undocumented methods. Any 5xx, any answer that does not conform to the
document, or any other failed check fails this test with schemathesis' own report.

How requests are counted: schemathesis writes a HAR file of every HTTP exchange it made (generated cases and
the extra requests its checks send); the test counts its entries, and also reads the number of generated test
cases from the JSON report. Both are printed; the HAR count must reach MIN_REQUESTS.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from conftest import API_KEYS

MIN_REQUESTS = 1000
# Per operation and phase. 12 operations, five of which take no input (hypothesis stops those after one
# example); the coverage phase adds its boundary cases on top. ~1,600-2,000 requests in total.
MAX_EXAMPLES = 150
SEED = 20261125  # fixed: a failure reproduces on the next run; change it locally to explore further
RUN_TIMEOUT_S = 600

# Checks that do not apply to this API, each with the reason. Everything else in `--checks all` runs.
EXCLUDED_CHECKS = {
    # These need operations that create and delete resources (links between operations, object ids owned by
    # users). The API is stateless: nothing is created, deleted or owned, so there is nothing to check.
    "use_after_free": "no operation deletes a resource",
    "ensure_resource_availability": "no operation creates a resource",
    "object_level_authorization": "no resources owned by a user; every key sees the same model",
}


def schemathesis_cli() -> Path:
    return Path(sys.executable).with_name("schemathesis")


def test_schemathesis_finds_no_failure(server, tmp_path):
    base = server.base_url
    command = [
        str(schemathesis_cli()), "run", f"{base}/openapi.json",
        "--url", base,
        "-H", f"Authorization: Bearer {API_KEYS[0]}",
        "--checks", "all",
        "--exclude-checks", ",".join(sorted(EXCLUDED_CHECKS)),
        "--phases", "examples,coverage,fuzzing,stateful",
        "--max-examples", str(MAX_EXAMPLES),
        "--seed", str(SEED),
        "--workers", "2",
        "--request-timeout", "60",
        "--generation-database", "none",  # no .hypothesis directory left behind
        "--suppress-health-check", "too_slow,filter_too_much",
        "--report", "json,har",
        "--report-dir", str(tmp_path),
        "--no-color",
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=RUN_TIMEOUT_S, cwd=tmp_path)
    output = result.stdout + result.stderr

    reports = {path.suffix: path for path in tmp_path.iterdir() if path.suffix in (".json", ".har")}
    assert ".json" in reports and ".har" in reports, output
    entries = json.loads(reports[".har"].read_text())["log"]["entries"]
    generated = json.loads(reports[".json"].read_text())["test_cases"]["generated"]
    server_errors = [
        f"{e['request']['method']} {e['request']['url']} -> {e['response']['status']}"
        for e in entries if e["response"]["status"] >= 500
    ]
    print(f"schemathesis: {len(entries)} HTTP requests, {generated} generated test cases")

    assert result.returncode == 0, output
    assert server_errors == [], output
    assert len(entries) >= MIN_REQUESTS, f"only {len(entries)} requests\n{output}"
    assert server.alive(), server.log()
