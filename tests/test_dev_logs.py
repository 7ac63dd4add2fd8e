"""Development logs are one short human line an event; production logs are JSON; both keep ids and
drop personal fields. The stand-ins' state pages are readable."""
from __future__ import annotations

import json
import logging
import urllib.request

from app.config import load_config
from app.dev.seed import seed
from app.dev.serving import serve_in_thread
from app.dev.standins import build, readable_state_pages
from app.logs import HumanFormatter, JsonFormatter, configure_logging


def _record() -> logging.LogRecord:
    record = logging.LogRecord("app.sync.worker", logging.INFO, __file__, 1, "sync.done", (), None)
    record.link_id = 42
    record.smaregi_customer_id = "7"
    record.email = "taro@example.com"
    return record


def test_development_logs_one_short_line_with_the_ids():
    line = HumanFormatter().format(_record())
    assert "\n" not in line
    assert line.split(" ", 1)[1].split() == ["info", "sync.worker", "sync.done", "link_id=42", "smaregi_customer_id=7"]
    assert "taro@example.com" not in line


def test_the_environment_picks_the_format():
    root = logging.getLogger()
    saved = root.handlers[:], root.level

    def ours():  # pytest's own capturing handlers may sit beside ours
        return [h.formatter for h in root.handlers if isinstance(h.formatter, (HumanFormatter, JsonFormatter))]
    try:
        configure_logging("INFO", development=True)
        assert [type(f) for f in ours()] == [HumanFormatter]
        configure_logging("INFO", development=False)
        assert [type(f) for f in ours()] == [JsonFormatter]
        entry = json.loads(ours()[0].format(_record()))
        assert entry["event"] == "sync.done" and entry["link_id"] == 42 and "email" not in entry
    finally:
        root.handlers[:], _ = saved[0], root.setLevel(saved[1])


def test_stand_in_state_pages_are_indented_with_real_japanese():
    config = load_config({"POINTBRIDGE_ENV": "development"})
    smaregi, shopify = build(config)
    seed(smaregi, shopify, config.smaregi_contract_id)
    app = smaregi.create_app()
    readable_state_pages(app)
    with serve_in_thread(app) as base, \
            urllib.request.urlopen(f"{base}/_emulator/{config.smaregi_contract_id}/members") as response:
        text = response.read().decode()
        assert response.headers["Content-Type"].startswith("application/json")
    assert "山田" in text and "\\u" not in text
    assert text.count("\n") > 20
    assert json.loads(text)[0]["lastName"] == "山田"
