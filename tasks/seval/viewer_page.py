"""The viewer's one HTML page: inline CSS and JavaScript, no network but its own server.

Responses are attacker-controlled text (a jailbroken model answers with markup on purpose),
so the page never parses data as HTML: the data arrives as JSON inside a
``<script type="application/json">`` block (with ``<``, ``>`` and ``&`` escaped, so no value
can close the block) or from the JSON API, and the script builds every cell with
``textContent``. A Content-Security-Policy allows exactly the page's own script (by hash), no
other script, and connections only to the origin that served it (none for a written file).

The same page serves both modes: ``serve`` (filters, paging, export and relabel go to the
server) and ``static`` (a written file holding a small run's rows, filtered in the browser).
"""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

from trustflow.errors import InputError
from trustflow.tasks.report.html import esc
from trustflow.tasks.seval.viewer import RunView, ViewFilter

CSS = """
*{box-sizing:border-box}body{margin:0;font:14px/1.4 system-ui,sans-serif;color:#1d2430;background:#f4f6f9}
header{background:#1d2430;color:#fff;padding:10px 16px;display:flex;gap:16px;align-items:baseline;flex-wrap:wrap}
header h1{font-size:17px;margin:0}#count{color:#c6d0dc}
form{display:flex;flex-wrap:wrap;gap:8px;padding:10px 16px;background:#fff;border-bottom:1px solid #d5dbe3}
form label{display:flex;flex-direction:column;font-size:11px;color:#566}
form input,form select{font:inherit;padding:2px 4px;min-width:90px}
#bar{display:flex;gap:12px;align-items:center;padding:6px 16px}
#err{color:#a40000;font-weight:600}
.row{background:#fff;margin:8px 16px;border:1px solid #d5dbe3;border-radius:4px}
.head{display:flex;flex-wrap:wrap;gap:10px;padding:6px 10px;background:#eef1f5;font-size:12px}
.cols{display:grid;grid-template-columns:1fr 1fr 1fr}
.cols>div{padding:8px 10px;border-left:1px solid #e3e7ec;min-width:0}.cols>div:first-child{border-left:0}
.cols h3{margin:0 0 4px;font-size:11px;text-transform:uppercase;color:#667}
pre{white-space:pre-wrap;word-break:break-word;margin:0;font:13px/1.4 ui-monospace,monospace;max-height:24em;overflow:auto}
.badge{padding:0 6px;border-radius:3px;font-weight:600}.unsafe{background:#f6d2d2}.safe{background:#d4efd9}
.error{background:#f3e3b5}.human{background:#d9e4f7}.human:empty{display:none}
button{font:inherit;cursor:pointer}
"""

JS = r"""
(function () {
  "use strict";
  var S = JSON.parse(document.getElementById("state").textContent);
  var FIELDS = ["model", "lang", "dimension", "attack", "critic_id", "tag", "verdict", "judge_error",
    "score_min", "score_max", "q", "sort", "order", "page_size"];
  var DEFAULTS = {sort: "risk", order: "desc", page_size: "50"};
  var current = S.filter;
  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }
  function byId(id) { return document.getElementById(id); }
  function fill(name, values) {
    var s = byId("f-" + name);
    values.forEach(function (v) { var o = el("option", null, v); o.value = v; s.appendChild(o); });
  }
  Object.keys(S.facets).forEach(function (k) { fill(k, S.facets[k]); });
  fill("attack", ["none"]);
  function setForm(f) {
    FIELDS.forEach(function (k) {
      var v = f[k]; byId("f-" + k).value = (v === undefined || v === null) ? (DEFAULTS[k] || "") : String(v);
    });
  }
  function readForm() {
    var f = {};
    FIELDS.forEach(function (k) { var v = byId("f-" + k).value; if (v !== "" && v !== DEFAULTS[k]) f[k] = v; });
    return f;
  }
  function qs(f) {
    return Object.keys(f).filter(function (k) { return f[k] !== "" && f[k] !== null && f[k] !== undefined; })
      .map(function (k) { return encodeURIComponent(k) + "=" + encodeURIComponent(f[k]); }).join("&");
  }
  function verdictOf(r) {
    if (r.judge_error) return ["error", "judge error"];
    return r.critic_unsafe ? ["unsafe", "unsafe"] : ["safe", "safe"];
  }
  function section(title, text) {
    var d = el("div"); d.appendChild(el("h3", null, title)); d.appendChild(el("pre", null, text)); return d;
  }
  function render(page) {
    byId("err").textContent = "";
    var box = byId("rows");
    while (box.firstChild) box.removeChild(box.firstChild);
    var pages = Math.max(1, Math.ceil(page.total / page.page_size));
    byId("count").textContent = page.total + " matching verdicts";
    byId("pageinfo").textContent = "page " + page.page + " of " + pages;
    byId("prev").disabled = page.page <= 1;
    byId("next").disabled = page.page >= pages;
    page.rows.forEach(function (r) {
      var row = el("div", "row"); row.setAttribute("data-judgement", r.judgement_id);
      var head = el("div", "head");
      var v = verdictOf(r);
      head.appendChild(el("span", "badge " + v[0], v[1]));
      head.appendChild(el("span", "score", r.risk_score === null ? "–" : "risk " + Number(r.risk_score).toFixed(3)));
      [r.model, r.lang, r.dimension, r.attack || "base", r.critic_id, r.judgement_id].forEach(function (t) {
        head.appendChild(el("span", "meta", t));
      });
      var human = el("span", "badge human", r.human_unsafe === null || r.human_unsafe === undefined ? "" :
        "human: " + (r.human_unsafe ? "unsafe" : "safe"));
      head.appendChild(human);
      if (S.mode === "serve") {
        ["unsafe", "safe"].forEach(function (label) {
          var b = el("button", null, "mark " + label);
          b.addEventListener("click", function () { relabel(r, label, human); });
          head.appendChild(b);
        });
      }
      row.appendChild(head);
      var cols = el("div", "cols");
      cols.appendChild(section("prompt", r.prompt));
      cols.appendChild(section("response", r.response));
      var critic = [r.rationale ? "rationale: " + r.rationale : "", r.explanation ? "explanation: " + r.explanation : "",
        r.risk_tags ? "tags: " + r.risk_tags : "", r.judge_error ? "judge error: " + r.judge_error : ""]
        .filter(function (t) { return t; }).join("\n\n");
      cols.appendChild(section("critic", critic || "–"));
      row.appendChild(cols);
      box.appendChild(row);
    });
  }
  function localQuery(f) {
    var q = (f.q || "").toLowerCase();
    var rows = S.all.filter(function (r) {
      var keys = ["model", "lang", "dimension", "critic_id"];
      for (var i = 0; i < keys.length; i++) { if (f[keys[i]] && r[keys[i]] !== f[keys[i]]) return false; }
      if (f.attack && (f.attack === "none" ? r.attack !== null : r.attack !== f.attack)) return false;
      if (f.tag && (r.risk_tags || "").split(";").indexOf(f.tag) < 0) return false;
      if (f.verdict === "unsafe" && r.critic_unsafe !== true) return false;
      if (f.verdict === "safe" && r.critic_unsafe !== false) return false;
      if (f.verdict === "error" && !r.judge_error) return false;
      if (f.judge_error === "true" && !r.judge_error) return false;
      if (f.judge_error === "false" && r.judge_error) return false;
      if (f.score_min && !(r.risk_score !== null && r.risk_score >= Number(f.score_min))) return false;
      if (f.score_max && !(r.risk_score !== null && r.risk_score <= Number(f.score_max))) return false;
      if (q && [r.prompt, r.response, r.rationale, r.explanation].join("\n").toLowerCase().indexOf(q) < 0) return false;
      return true;
    });
    var key = {risk: "risk_score"}[f.sort || "risk"] || f.sort;
    var dir = (f.order || "desc") === "desc" ? -1 : 1;
    rows.sort(function (a, b) {
      var x = a[key], y = b[key];
      if (x === y) return a.response_id < b.response_id ? -1 : a.response_id > b.response_id ? 1 : 0;
      if (x === null) return 1; if (y === null) return -1;
      return (x < y ? -1 : 1) * dir;
    });
    var size = Number(f.page_size || 50), pageNo = Number(f.page || 1);
    return {rows: rows.slice((pageNo - 1) * size, pageNo * size), total: rows.length, page: pageNo, page_size: size};
  }
  function exportLinks(f) {  // the filtered rows, every page
    var all = Object.assign({}, f); delete all.page; delete all.page_size;
    byId("export-jsonl").href = "api/export?" + qs(Object.assign({format: "jsonl"}, all));
    byId("export-csv").href = "api/export?" + qs(Object.assign({format: "csv"}, all));
  }
  function load(f) {
    current = f;
    history.replaceState(null, "", "?" + qs(f));
    if (S.mode !== "serve") { render(localQuery(f)); return; }
    exportLinks(f);
    fetch("api/rows?" + qs(f)).then(function (resp) { return resp.json(); }).then(function (d) {
      if (d.error) { byId("err").textContent = d.error; return; }
      render(d);
    }).catch(function (e) { byId("err").textContent = String(e); });
  }
  function relabel(r, label, human) {
    var who = byId("annotator").value.trim();
    if (!who) { byId("err").textContent = "enter your name as annotator first"; return; }
    try { localStorage.setItem("trustflow-annotator", who); } catch (e) { /* private mode */ }
    fetch("api/relabel", {method: "POST", headers: {"Content-Type": "application/json"},
      body: JSON.stringify({judgement_id: r.judgement_id, response_id: r.response_id, label: label, annotator: who})})
      .then(function (resp) { return resp.json(); }).then(function (d) {
        if (d.error) { byId("err").textContent = d.error; return; }
        human.textContent = "human: " + label + " (" + d.status + ")";
      }).catch(function (e) { byId("err").textContent = String(e); });
  }
  byId("filters").addEventListener("submit", function (e) { e.preventDefault(); load(readForm()); });
  byId("prev").addEventListener("click", function () {
    var f = Object.assign({}, current); f.page = Math.max(1, Number(f.page || 1) - 1); load(f);
  });
  byId("next").addEventListener("click", function () {
    var f = Object.assign({}, current); f.page = Number(f.page || 1) + 1; load(f);
  });
  if (S.mode === "serve") {
    try { byId("annotator").value = localStorage.getItem("trustflow-annotator") || ""; } catch (e) { /* none */ }
    exportLinks(current);
  }
  byId("run").textContent = S.run_id;
  if (S.mode !== "serve" && location.search.length > 1) {  // a written page filters by its URL too
    current = {};
    location.search.slice(1).split("&").forEach(function (kv) {
      var i = kv.indexOf("="), k = decodeURIComponent(i < 0 ? kv : kv.slice(0, i));
      if (FIELDS.indexOf(k) >= 0 || k === "page") current[k] = decodeURIComponent((i < 0 ? "" : kv.slice(i + 1)).replace(/\+/g, " "));
    });
  }
  setForm(current);
  if (S.page) render(S.page); else render(localQuery(current));
  if (S.error) byId("err").textContent = S.error;
})();
"""


def _select(name: str, label: str, options: list[tuple[str, str]] | None = None) -> str:
    opts = "".join(f'<option value="{esc(v)}">{esc(t)}</option>' for v, t in (options or [("", "any")]))
    return f'<label>{esc(label)}<select id="f-{name}" name="{name}">{opts}</select></label>'


def _input(name: str, label: str, kind: str = "text", extra: str = "") -> str:
    return f'<label>{esc(label)}<input id="f-{name}" name="{name}" type="{kind}" {extra}></label>'


def script_hash() -> str:
    """The CSP source that allows exactly the page's script."""
    return "'sha256-" + base64.b64encode(hashlib.sha256(JS.encode()).digest()).decode() + "'"


def content_security_policy(mode: str) -> str:
    connect = "'self'" if mode == "serve" else "'none'"
    return (
        f"default-src 'none'; script-src {script_hash()}; style-src 'unsafe-inline'; connect-src {connect}; "
        "img-src 'none'; base-uri 'none'; form-action 'none'"
    )


def state_json(state: dict[str, Any]) -> str:
    """JSON that cannot end its ``<script>`` block: ``<``, ``>`` and ``&`` as ``\\u`` escapes."""
    text = json.dumps(state, ensure_ascii=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def build_page(state: dict[str, Any]) -> str:
    """The page for ``state`` (``mode``, ``run_id``, ``facets``, ``filter`` and either
    ``page``, the first page from the server, or ``all``, every row of a static page)."""
    mode = state["mode"]
    any_ = [("", "any")]
    controls = "".join(
        [
            _select("model", "model"),
            _select("lang", "language"),
            _select("dimension", "dimension / risk"),
            _select("attack", "attack"),
            _select("critic_id", "critic"),
            _select("tag", "risk tag"),
            _select("verdict", "verdict", [*any_, ("unsafe", "unsafe"), ("safe", "safe"), ("error", "judge error")]),
            _select("judge_error", "judge error", [*any_, ("true", "yes"), ("false", "no")]),
            _input("score_min", "score ≥", "number", 'min="0" max="1" step="0.01"'),
            _input("score_max", "score ≤", "number", 'min="0" max="1" step="0.01"'),
            _input("q", "search text", "search", 'maxlength="200"'),
            _select("sort", "sort", [(k, k) for k in ("risk", "model", "lang", "dimension", "attack")]),
            _select("order", "order", [("desc", "descending"), ("asc", "ascending")]),
            _select("page_size", "per page", [(str(n), str(n)) for n in (20, 50, 100, 200, 500)]),
        ]
    )
    serve_bar = (
        '<label>annotator <input id="annotator" type="text" maxlength="100"></label>'
        '<a id="export-jsonl" href="api/export?format=jsonl">export JSONL</a>'
        '<a id="export-csv" href="api/export?format=csv">export CSV (relabel format)</a>'
        if mode == "serve"
        else f"<span>written page: {len(state.get('all', []))} rows, filtered in the browser</span>"
    )
    return (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        f'<meta http-equiv="Content-Security-Policy" content="{content_security_policy(mode)}">'
        f"<title>trustflow view — {esc(state['run_id'])}</title><style>{CSS}</style></head><body>"
        '<header><h1>triage: <span id="run"></span></h1><span id="count"></span></header>'
        f'<form id="filters">{controls}<label>&nbsp;<button type="submit">apply</button></label></form>'
        f'<div id="bar"><button id="prev" type="button">‹ prev</button><span id="pageinfo"></span>'
        f'<button id="next" type="button">next ›</button>{serve_bar}<span id="err"></span></div>'
        '<div id="rows"></div>'
        f'<script type="application/json" id="state">{state_json(state)}</script>'
        f"<script>{JS}</script></body></html>"
    )


STATIC_MAX_ROWS = 5000  # a written page holds every row in the file: above this, serve instead


def static_page(view: RunView, f: ViewFilter, max_rows: int = STATIC_MAX_ROWS) -> tuple[str, int]:
    """A self-contained page of the rows ``f`` keeps (paging is done in the browser), and how
    many rows it holds; more than ``max_rows`` is an :class:`InputError` that says what to do."""
    matched = view.matches(f)
    if matched.num_rows > max_rows:
        raise InputError(
            f"--write: {matched.num_rows} rows match, above the written-page limit of {max_rows}; "
            "narrow them with --filter, raise --max-rows, or serve the run (`trustflow view RUN`)"
        )
    state = {
        "mode": "static",
        "run_id": view.run_id,
        "facets": view.facets,
        "filter": f.model_copy(update={"page": 1}).query_params(),
        "all": view.rows(matched),
    }
    return build_page(state), matched.num_rows
