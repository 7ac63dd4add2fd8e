"""vcrpy set-up shared by the wire-format tests.

Replay is the default (VCR_RECORD_MODE=none): no network, and an unexpected request fails the test.
Recording (VCR_RECORD_MODE=all) sends real requests to the base URLs the test hands over and
rewrites their origin to the platform's own hosts, so cassettes read like the real API. Secrets
and tokens are scrubbed before anything is written.
"""
from __future__ import annotations

import json
import os
from contextlib import contextmanager
from pathlib import Path

import vcr

CASSETTES = Path(__file__).parent / "cassettes"
RECORD_MODE = os.environ.get("VCR_RECORD_MODE", "none")
RECORDING = RECORD_MODE != "none"
SCRUBBED = "SCRUBBED"
SECRET_FIELDS = ("access_token", "refresh_token", "client_secret", "subject_token")


def _scrub_json(text: str) -> str:
    try:
        data = json.loads(text)
    except ValueError:
        return text
    if isinstance(data, dict):
        for key in SECRET_FIELDS:
            if key in data:
                data[key] = SCRUBBED
    return json.dumps(data, ensure_ascii=False)


def recorder(folder: str, origin_map: dict[str, str]) -> vcr.VCR:
    """`origin_map`: the URL prefixes used while recording → the public origin written to the cassette."""

    def before_request(request):
        for live, public in origin_map.items():
            if request.uri.startswith(live):
                request.uri = public + request.uri[len(live):]
        if request.body:
            body = request.body.decode() if isinstance(request.body, bytes) else request.body
            request.body = _scrub_json(body).encode()
        return request

    def before_response(response):
        body = response["body"].get("string", b"")
        if body:
            text = body.decode() if isinstance(body, bytes) else body
            for live, public in origin_map.items():  # URLs in answers (e.g. a bulk result file) too
                text = text.replace(live, public)
            response["body"]["string"] = _scrub_json(text).encode()
        # Scrubbing changed the body's length; let the client measure it.
        response["headers"] = {k: v for k, v in response["headers"].items() if k.lower() != "content-length"}
        return response

    return vcr.VCR(
        cassette_library_dir=str(CASSETTES / folder),
        record_mode=RECORD_MODE,
        match_on=["method", "scheme", "host", "port", "path", "query", "body"],
        filter_headers=[("authorization", SCRUBBED), ("x-shopify-access-token", SCRUBBED), ("host", None)],
        before_record_request=before_request,
        before_record_response=before_response,
        decode_compressed_response=True,
    )


def cassettes(folder: str, origin_map: dict[str, str]):
    """`cassette(name)`: a context manager that re-records from scratch when recording, and when
    replaying insists that every recorded interaction was used."""
    vcr = recorder(folder, origin_map)

    @contextmanager
    def cassette(name: str):
        if RECORDING:
            (CASSETTES / folder / f"{name}.yaml").unlink(missing_ok=True)
        with vcr.use_cassette(f"{name}.yaml", allow_playback_repeats=False) as c:
            yield c
        if not RECORDING:
            assert c.all_played, f"{name}: not every recorded interaction was used"

    return cassette
