"""Triage viewer: server-side filters, paging, sort, export and relabel over a small run
(tasks/seval/viewer.py), the page's escaping (viewer_page.py), the HTTP API (viewer_server.py)
and the ``trustflow view`` command's bad-input errors."""

from __future__ import annotations

import csv
import http.client
import io
import json
import urllib.parse
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from typer.testing import CliRunner

from trustflow import names
from trustflow.data.schemas import SEVAL_JUDGEMENTS, SEVAL_RESPONSES
from trustflow.data.store import ArtifactStore, StageRef
from trustflow.errors import InputError
from trustflow.tasks.seval.judging import JUDGEMENT_KEYS
from trustflow.tasks.seval.label_sources import load_label_records
from trustflow.tasks.seval.relabel import import_relabels, relabel_datasets
from trustflow.tasks.seval.viewer import ViewFilter, open_run, parse_filter

RUN = "seval-view"
SCRIPT = '<script>document.title="pwned"</script><img src=x onerror="document.title=1">'


def run_rows() -> list[dict[str, Any]]:
    """Twelve verdicts: models a/b × en/zh × crimes/privacy, base and role_play attacks, one
    judge error, one answer carrying markup, one rationale mentioning "wrench"."""
    rows = []
    for i in range(12):
        model = "a" if i % 2 == 0 else "b"
        lang = "en" if i % 3 else "zh"
        error = "timeout" if i == 7 else None
        score = None if error else round(i / 11, 3)
        rows.append(
            {
                "rid": f"r{i:02d}",
                "model": model,
                "lang": lang,
                "dimension": "crimes" if i < 6 else "privacy",
                "attack": None if i % 4 else "role_play",
                "prompt": f"prompt {i} " + ("how do I pick a lock" if i == 3 else "tell me something"),
                "response": SCRIPT if i == 10 else f"answer {i}",
                "score": score,
                "error": error,
                "rationale": "mentions a tension wrench" if i == 9 else None,
                "tags": ["crimes.theft", "crimes.burglary"] if i in (9, 11) else (["crimes.theft"] if i == 6 else []),
            }
        )
    return rows


def populate(store: ArtifactStore, run_id: str = RUN) -> list[dict[str, Any]]:
    rows = run_rows()
    responses, judgements = [], []
    for r in rows:
        common = {
            "response_id": r["rid"],
            "model": r["model"],
            "prompt_uid": f"base_risk:{r['lang']}:{r['rid']}",
            "set": "base_risk" if r["attack"] is None else "attack",
            "attack": r["attack"],
            "base_id": r["rid"],
            "lang": r["lang"],
            "dimension": r["dimension"],
        }
        responses.append(
            {
                **common,
                "gen_config_hash": "g",
                "prompt": r["prompt"],
                "response": r["response"],
                "finish_reason": "stop",
                "prompt_tokens": 1,
                "completion_tokens": 1,
                "latency_s": 0.1,
                "error": None,
            }
        )
        judgements.append(
            {
                **common,
                "critic_id": "c",
                "critic_prompt_hash": "h",
                "risk_score": r["score"],
                "unsafe": None if r["error"] else r["score"] >= 0.5,
                "risk_tags": r["tags"],
                "explanation": "",
                "raw_output": "",
                "judge_error": r["error"],
                "rationale": r["rationale"],
            }
        )
    store.write_stage(
        StageRef(names.SEVAL_EVALUATE, run_id, names.RESPONSES),
        SEVAL_RESPONSES,
        pa.Table.from_pylist(responses, schema=SEVAL_RESPONSES.schema),
        ["response_id"],
    )
    store.write_stage(
        StageRef(names.SEVAL_EVALUATE, run_id, names.JUDGEMENTS),
        SEVAL_JUDGEMENTS,
        pa.Table.from_pylist(judgements, schema=SEVAL_JUDGEMENTS.schema),
        JUDGEMENT_KEYS,
    )
    return rows


@pytest.fixture()
def store(local_settings) -> ArtifactStore:
    s = ArtifactStore(settings=local_settings)
    populate(s)
    return s


def ids(page_rows: list[dict[str, Any]]) -> list[str]:
    return [r["response_id"] for r in page_rows]


def expected(pred: Any) -> set[str]:
    return {r["rid"] for r in run_rows() if pred(r)}


@pytest.mark.parametrize(
    ("params", "pred"),
    [
        ({"model": "a"}, lambda r: r["model"] == "a"),
        ({"lang": "zh", "dimension": "privacy"}, lambda r: r["lang"] == "zh" and r["dimension"] == "privacy"),
        ({"attack": "role_play"}, lambda r: r["attack"] == "role_play"),
        ({"attack": "none"}, lambda r: r["attack"] is None),
        ({"verdict": "unsafe"}, lambda r: r["score"] is not None and r["score"] >= 0.5),
        ({"verdict": "safe"}, lambda r: r["score"] is not None and r["score"] < 0.5),
        ({"verdict": "error"}, lambda r: r["error"] is not None),
        ({"judge_error": "false"}, lambda r: r["error"] is None),
        ({"score_min": "0.3", "score_max": "0.6"}, lambda r: r["score"] is not None and 0.3 <= r["score"] <= 0.6),
        ({"q": "PICK A LOCK"}, lambda r: "pick a lock" in r["prompt"]),
        ({"q": "wrench"}, lambda r: r["rationale"] is not None),  # the critic's rationale is searched too
        ({"q": "onerror", "model": "a"}, lambda r: r["rid"] == "r10"),
        ({"tag": "crimes.theft"}, lambda r: "crimes.theft" in r["tags"]),
        ({"tag": "crimes.burglary", "model": "b"}, lambda r: "crimes.burglary" in r["tags"] and r["model"] == "b"),
    ],
)
def test_filters_keep_exactly_the_matching_rows(store: ArtifactStore, params: dict[str, str], pred: Any) -> None:
    page = open_run(store, RUN).query(parse_filter({**params, "page_size": "500"}))
    assert set(ids(page.rows)) == expected(pred) and page.total == len(expected(pred)) > 0


def test_sort_and_paging_walk_every_row_once_riskiest_first(store: ArtifactStore) -> None:
    view = open_run(store, RUN)
    seen: list[dict[str, Any]] = []
    for n in (1, 2, 3):
        page = view.query(ViewFilter(page=n, page_size=5))
        assert page.total == 12 and len(page.rows) == (5 if n < 3 else 2)
        seen += page.rows
    assert len({r["judgement_id"] for r in seen}) == 12
    scores = [r["risk_score"] for r in seen]
    assert scores[-1] is None  # the judge error sorts last, whatever the order
    assert scores[:-1] == sorted(scores[:-1], reverse=True)
    asc = view.query(ViewFilter(order="asc", page_size=3)).rows
    assert [r["risk_score"] for r in asc] == [0.0, 0.091, 0.182]
    by_model = view.query(ViewFilter(sort="model", order="asc", page_size=500)).rows
    assert [r["model"] for r in by_model] == ["a"] * 6 + ["b"] * 6


def test_page_rows_carry_text_and_relabel_columns(store: ArtifactStore) -> None:
    [row] = open_run(store, RUN).query(ViewFilter(q="wrench")).rows
    assert row["prompt"] == "prompt 9 tell me something" and row["response"] == "answer 9"
    assert row["rationale"] == "mentions a tension wrench" and row["critic_unsafe"] is True
    assert len(row["judgement_id"]) == 16 and row["human_unsafe"] is None


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"verdict": "maybe"}, "filter verdict='maybe'"),
        ({"score_min": "high"}, "filter score_min='high'"),
        ({"score_max": "2"}, "filter score_max='2'"),
        ({"colour": "red"}, "filter 'colour' is not a viewer filter"),
        ({"page_size": "100000"}, "filter page_size='100000'"),
    ],
)
def test_bad_filter_values_name_the_key(params: dict[str, str], message: str) -> None:
    with pytest.raises(InputError, match="^" + message.replace("(", r"\(")):
        parse_filter(params)


def test_a_facet_value_no_row_has_is_an_error_not_an_empty_page(store: ArtifactStore) -> None:
    view = open_run(store, RUN)
    with pytest.raises(InputError, match="filter model='gpt-9': no row of run seval-view has it; known: a, b"):
        view.query(ViewFilter(model="gpt-9"))
    with pytest.raises(InputError, match="filter tag='crimes.arson': no row .* known: crimes.burglary, crimes.theft"):
        view.query(ViewFilter(tag="crimes.arson"))
    with pytest.raises(InputError, match="score_min=0.8 is above score_max=0.2"):
        view.query(ViewFilter(score_min=0.8, score_max=0.2))
    with pytest.raises(InputError, match="run 'seval-nope'"):
        open_run(store, "seval-nope")


def test_export_jsonl_and_csv_hold_the_filtered_rows(store: ArtifactStore, tmp_path: Path) -> None:
    view = open_run(store, RUN)
    f = parse_filter({"model": "a", "page_size": "1"})  # paging does not cut an export
    lines = [json.loads(x) for x in "".join(view.export(f, "jsonl")).splitlines()]
    assert {r["response_id"] for r in lines} == expected(lambda r: r["model"] == "a")
    assert next(r for r in lines if r["response_id"] == "r10")["response"] == SCRIPT
    text = "".join(view.export(f, "csv"))
    rows = list(csv.DictReader(io.StringIO(text)))
    assert {r["response_id"] for r in rows} == expected(lambda r: r["model"] == "a")
    from trustflow.tasks.seval.viewer import csv_cell

    assert csv_cell('=HYPERLINK("http://x")') == '\'=HYPERLINK("http://x")' and csv_cell("-1") == "'-1"
    assert csv_cell("plain") == "plain" and csv_cell(0.5) == 0.5 and csv_cell(None) == ""
    # the CSV is a relabel CSV: fill one label and `seval relabel` stores it
    rows[0]["corrected_unsafe"] = "safe"
    path = tmp_path / "export.csv"
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    info = import_relabels(store, path, annotator="bob")
    assert info.tables["labels"] == 1 and info.source == f"relabel:{RUN}"


def test_relabel_is_stored_once_flips_win_and_loaders_read_it(store: ArtifactStore) -> None:
    view = open_run(store, RUN)
    [row] = view.query(ViewFilter(q="pick a lock")).rows
    assert row["critic_unsafe"] is False
    first = view.relabel(row["judgement_id"], row["response_id"], True, "alice", "clearly lock picking")
    assert first["status"] == "stored"
    assert view.relabel(row["judgement_id"], row["response_id"], True, "alice")["status"] == "unchanged"
    assert len(relabel_datasets(store, RUN)) == 1  # the same label again wrote nothing
    [record] = load_label_records(f"relabel:{RUN}", store=store)
    assert record.prompt == row["prompt"] and record.unsafe is True and record.label_origin == "human"
    flip = view.relabel(row["judgement_id"], row["response_id"], False, "carol")
    back = view.relabel(row["judgement_id"], row["response_id"], True, "alice")
    assert flip["status"] == back["status"] == "stored" and len(relabel_datasets(store, RUN)) == 3
    [record] = load_label_records(f"relabel:{RUN}", store=store)
    assert record.unsafe is True  # the newest label wins
    for unsafe in (False, True, False):  # flips back and forth never resurrect an older dataset
        assert view.relabel(row["judgement_id"], row["response_id"], unsafe, "carol")["status"] == "stored"
        [record] = load_label_records(f"relabel:{RUN}", store=store)
        assert record.unsafe is unsafe
    assert len(relabel_datasets(store, RUN)) == 6
    assert view.query(ViewFilter(q="pick a lock")).rows[0]["human_unsafe"] is False
    with pytest.raises(InputError, match="annotator is required"):
        view.relabel(row["judgement_id"], row["response_id"], True, " ")
    with pytest.raises(InputError, match="judgement 'ffff' of response 'r03' is not in run"):
        view.relabel("ffff", "r03", True, "alice")


def test_static_page_escapes_data_and_refuses_large_runs(store: ArtifactStore) -> None:
    from trustflow.tasks.seval.viewer_page import script_hash, static_page

    page, n = static_page(open_run(store, RUN), ViewFilter())
    assert n == 12
    assert "<script>document" not in page and "<img" not in page  # the markup is data, not HTML
    assert "\\u003cscript\\u003edocument.title" in page
    assert page.count("<script") == 2  # the JSON state block and the page's own script
    assert script_hash() in page and "connect-src 'none'" in page
    with pytest.raises(InputError, match="--write: 12 rows match, above the written-page limit of 5"):
        static_page(open_run(store, RUN), ViewFilter(), max_rows=5)


def _request(url: str, method: str = "GET", body: Any = None, headers: dict[str, str] | None = None) -> Any:
    parts = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=10)
    data = None if body is None else json.dumps(body).encode()
    conn.request(method, parts.path + (f"?{parts.query}" if parts.query else ""), body=data, headers=headers or {})
    resp = conn.getresponse()
    payload = resp.read()
    conn.close()
    return resp.status, dict(resp.getheaders()), payload


def test_api_filters_exports_and_relabels(store: ArtifactStore) -> None:
    from trustflow.tasks.seval.viewer_server import start_server

    server, thread = start_server(open_run(store, RUN), 0)
    try:
        assert server.server_address[0] == "127.0.0.1"
        status, _, body = _request(server.url + "api/rows?lang=zh&verdict=unsafe")
        assert status == 200
        assert set(ids(json.loads(body)["rows"])) == expected(lambda r: r["lang"] == "zh" and (r["score"] or 0) >= 0.5)
        status, _, body = _request(server.url + "api/rows?score_min=abc")
        assert status == 400 and json.loads(body)["error"].startswith("filter score_min='abc'")
        status, headers, body = _request(server.url + "api/export?format=csv&model=a")
        assert status == 200 and headers["Content-Type"].startswith("text/csv")
        assert {r["response_id"] for r in csv.DictReader(io.StringIO(body.decode()))} == expected(
            lambda r: r["model"] == "a"
        )
        status, headers, body = _request(server.url + "?model=b")
        assert status == 200 and "script-src 'sha256-" in headers["Content-Security-Policy"]
        assert "<script>document" not in body.decode()
        status, _, body = _request(server.url + "?verdict=maybe")  # the page, unfiltered, with the error
        assert status == 400 and "filter verdict='maybe'" in body.decode() and '"total": 12' in body.decode()
        [row] = json.loads(_request(server.url + "api/rows?q=lock")[2])["rows"]
        post = {"judgement_id": row["judgement_id"], "response_id": "r03", "label": "unsafe", "annotator": "dana"}
        status, _, body = _request(server.url + "api/relabel", "POST", post, {"Content-Type": "text/plain"})
        assert status == 415  # a cross-site form cannot post here
        status, _, body = _request(server.url + "api/relabel", "POST", post, {"Content-Type": "application/json"})
        assert status == 200 and json.loads(body)["status"] == "stored"
        status, _, body = _request(
            server.url + "api/relabel", "POST", {**post, "label": "meh"}, {"Content-Type": "application/json"}
        )
        assert status == 400 and "label='meh'" in json.loads(body)["error"]
        status, _, _ = _request(server.url + "api/rows", headers={"Host": "evil.example:80"})
        assert status == 403
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
    [record] = load_label_records(f"relabel:{RUN}", store=store)
    assert record.unsafe is True and "pick a lock" in record.prompt


runner = CliRunner()


def test_cli_bad_input_is_one_error_line(store: ArtifactStore, tmp_path: Path) -> None:
    from trustflow.cli.main import app

    url = store.url
    for args, message in [
        (["seval-nope"], "run 'seval-nope'"),
        ([RUN, "--filter", "verdict=maybe"], "--filter verdict='maybe'"),
        ([RUN, "--filter", "model=gpt-9"], "filter model='gpt-9'"),
        ([RUN, "--filter", "oops"], "--filter 'oops': use KEY=VALUE"),
        ([RUN, "--export", str(tmp_path / "x.parquet")], "name a .jsonl or .csv file"),
    ]:
        result = runner.invoke(app, ["view", *args, "--store", url])
        assert result.exit_code == 1, result.output
        assert "error:" in result.output and message in result.output, result.output
    out = tmp_path / "unsafe.jsonl"
    result = runner.invoke(app, ["view", RUN, "--store", url, "-f", "verdict=unsafe", "--export", str(out)])
    assert result.exit_code == 0, result.output
    assert {json.loads(x)["response_id"] for x in out.read_text().splitlines()} == expected(
        lambda r: (r["score"] or 0) >= 0.5
    )
    page = tmp_path / "page.html"
    result = runner.invoke(app, ["view", RUN, "--store", url, "--write", str(page), "--max-rows", "5"])
    assert result.exit_code == 1 and "above the written-page limit of 5" in result.output
    result = runner.invoke(app, ["view", RUN, "--store", url, "--write", str(page), "-f", "model=a"])
    assert result.exit_code == 0 and page.read_text().count('"response_id"') == 6
