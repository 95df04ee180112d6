"""The report of the hand-built period: JSON valid against the schema documented in
docs/RECONCILE.md, the gauges by the project's conventions, the terminal table, and the
HTML page rendered by headless Chromium with both figures on screen."""

from __future__ import annotations

import base64
import copy
import json
import re
from io import BytesIO
from pathlib import Path

import jsonschema
import pandas as pd
import pytest
from headless_browser import layout, rendered_like, screenshot
from PIL import Image
from prometheus_client import write_to_textfile
from prometheus_client.parser import text_string_to_metric_families
from reconcile_data import END, LOCKS, LOG_LINES, START, frames

from signal_export.reconcile import classify as c
from signal_export.reconcile import inputs, report

REPO = Path(__file__).resolve().parents[2]
PNG_SRC = re.compile(r"src='data:image/png;base64,([A-Za-z0-9+/=]+)'")
WIDTH = 1300


def documented_schema() -> dict:
    text = (REPO / "docs" / "RECONCILE.md").read_text()
    section = text.split("## JSON schema", 1)[1]
    return json.loads(re.search(r"```json\n(.*?)\n```", section, re.S).group(1))


@pytest.fixture(scope="module")
def rec(tmp_path_factory) -> report.Reconciliation:
    log = tmp_path_factory.mktemp("log") / "freqtrade.log"
    log.write_text("\n".join(LOG_LINES) + "\n")
    entries = inputs.log_entries_from_file(log)
    bot, bt, versions = frames()
    rules = c.Rules("1m")
    ctx = c.BotContext(max_open_trades=2, outages=inputs.outages(entries), locks=LOCKS,
                       refusals=inputs.refusals(entries))
    signals = c.signal_timeliness(versions, rules, ctx.outages)
    rows = c.classify(bot, bt, signals, rules, ctx, END)
    return report.Reconciliation(
        start=START, end=END, timeframe="1m", signal_view="as_known",
        sources={"bot": "sqlite:x", "backtest": "file:y"},
        settings={"late_tolerance_s": 0.0, "late_bars": 1, "tolerance_bars": 1,
                  "max_open_trades": 2, "strategy_ids": ["alpha"]},
        rows=rows, attribution=c.attribution(rows), signals=signals,
        producers=c.producer_lateness(signals), outages=ctx.outages, bot=bot, backtest=bt,
        slippage=c.slippage_summary(rows, bot))


def test_json_follows_the_documented_schema(rec):
    schema = documented_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    data = json.loads(json.dumps(report.to_json(rec)))  # what a reader of the file gets
    jsonschema.validate(data, schema, format_checker=jsonschema.FormatChecker())
    assert data["summary"]["differences"] == 9 and data["summary"]["matched"] == 1
    assert sum(a["pnl_difference"] for a in data["attribution"]) == pytest.approx(
        data["summary"]["pnl_difference"])
    late = [s for s in data["signals"] if s["late"]]
    assert [(s["pair"], s["late_by_s"]) for s in late] == [("ADA/USDT", 120.0),
                                                          ("ETH/USDT", 20.0)]
    # the schema can fail: an unknown cause, a missing field
    bad = copy.deepcopy(data)
    bad["trades"][0]["cause"] = "bad_luck"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, schema)
    del data["summary"]["pnl_difference"]
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(data, schema)


def test_gauges_follow_the_conventions_and_carry_the_report(rec, tmp_path):
    data = report.to_json(rec)
    path = tmp_path / "reconcile.prom"
    write_to_textfile(str(path), report.registry(data))
    samples = {}
    for family in text_string_to_metric_families(path.read_text()):
        assert family.name.startswith("signal_bridge_") and family.type == "gauge"
        for s in family.samples:
            assert "job" not in s.labels and "instance" not in s.labels
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    key = "signal_bridge_reconcile_"
    assert samples[(f"{key}signals_late_ratio", (("strategy_id", "alpha"),))] == 0.2
    assert samples[(f"{key}differences", (("cause", "store_outage"),))] == 1
    assert samples[(f"{key}pnl_difference", (("cause", "refused_max_open_trades"),))
                   ] == pytest.approx(-20.0)
    assert samples[(f"{key}slippage_bps", (("side", "entry"),))] == pytest.approx(10.0)
    assert samples[(f"{key}trades", (("source", "bot"),))] == 4
    assert samples[(f"{key}period_end_timestamp_seconds", ())] == END.timestamp()


def test_terminal_table_lists_each_difference(rec):
    text = report.text_table(rec)
    for cause in ("slippage", "signal_late", "store_outage", "manual_trade",
                  "refused_max_open_trades", "refused_stake", "refused_lock"):
        assert cause in text
    assert "alpha" in text and "20.0%" in text


def _figures(page: Path) -> list[bytes]:
    return [base64.b64decode(m) for m in PNG_SRC.findall(page.read_text(encoding="utf-8"))]


def test_report_page_in_headless_chromium(rec, tmp_path):
    page = report.write_html(rec, tmp_path / "reconcile.html")
    figures = _figures(page)
    assert len(figures) == 2
    seen = layout(page, WIDTH)
    shot = screenshot(page, tmp_path / "shot.png", WIDTH, int(seen["height"]))
    images = seen["images"]
    assert [i["alt"] for i in images] == ["Equity curves: bot and backtest",
                                          "P&L difference by cause"]
    for image, png in zip(images, figures, strict=True):
        with Image.open(BytesIO(png)) as decoded:
            assert (image["naturalWidth"], image["naturalHeight"]) == decoded.size
        assert image["complete"] and image["box"]["w"] > 600 and image["box"]["h"] > 200
        # drawn there: close to the figure (well under 1 level of 255 on average)
        assert rendered_like(shot, image["box"], png) < 2, image["alt"]
    # control: the same page without figure data fails the same comparison (the figures
    # are mostly white, so a blank region is off by ~11 levels rather than the research
    # report's >12; still several times the tolerance above)
    broken = tmp_path / "broken.html"
    broken.write_text(PNG_SRC.sub("src='data:image/png;base64,'", page.read_text("utf-8")),
                      encoding="utf-8")
    shot2 = screenshot(broken, tmp_path / "shot2.png", WIDTH, int(layout(broken, WIDTH)[
        "height"]))
    for image, png in zip(images, figures, strict=True):
        assert rendered_like(shot2, image["box"], png) > 5


def test_equity_curves_are_the_cumulative_realised_profit(rec):
    bot = report.equity(rec.bot)
    assert bot.index.is_monotonic_increasing
    assert bot.iloc[-1] == pytest.approx(pd.to_numeric(rec.bot["profit_abs"]).sum())
    assert len(report.equity(rec.backtest)) == 6
