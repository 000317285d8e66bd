"""The gateway's OpenAPI document, checked by schemathesis against the real
gateway, server and stores: no 5xx, and no answer outside the document
(status, content type, body schema)."""

import os
import subprocess
import sys
import urllib.request
from pathlib import Path

from test_grpc_interop import REPO

SCHEMATHESIS = Path(sys.executable).parent / "schemathesis"

# Streams that never end by design (their SSE is tested in gateway/tests).
ENDLESS_PATHS = ["/api/v1/announcements/watch"]

CHECKS = "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance"


def test_the_document_is_served_as_json(gateway):
    with urllib.request.urlopen(f"{gateway.base}/api/v1/openapi.json") as response:
        assert response.headers["content-type"] == "application/json"


def test_schemathesis_finds_no_server_error_and_no_answer_outside_the_schema(gateway):
    command = [
        str(SCHEMATHESIS), "run", f"{gateway.base}/api/v1/openapi.json",
        "--checks", CHECKS,
        "--header", f"Authorization: Bearer {gateway.token}",
        "--phases", "examples,coverage,fuzzing",
        "--max-examples", os.environ.get("SCHEMATHESIS_MAX_EXAMPLES", "25"),
        "--request-timeout", "15",
        # One worker: hypothesis parses lambdas with `ast`, which CPython 3.11 does not
        # allow from two threads at once ("AST constructor recursion depth mismatch").
        "--workers", "1",
        "--seed", "1",
        "--no-color",
        "--generation-database", "none",
    ]
    for path in ENDLESS_PATHS:
        command += ["--exclude-path", path]
    result = subprocess.run(command, timeout=1200, cwd=REPO / "target")
    assert result.returncode == 0, "schemathesis found failures (its report is above)"
