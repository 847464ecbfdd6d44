"""The adaptive-attack loop: attacker → target → critic, round by round, keyed and resumable.

Every conversation of a group (``group_size`` base prompts) advances in lockstep, so each
round is three batched calls — the attacker for every child branch, the target for every
on-topic child, the critic for every answer — whatever the backends (an HTTP target keeps
its ``max_concurrency`` requests in flight, an in-process model runs one padded batch).
Rounds depend on the previous round's answers, so the loop is sequential in rounds; the
batch across base prompts is its parallelism.

After each round the group's rows go to the ``adaptive_turns`` stage as one Parquet part
(anti-joined on ``loop_id, base_uid, round, branch``), so a killed run loses at most the
round in flight. A re-run reads the finished rows of its ``loop_id`` back, rebuilds every
live branch from them (the attacker's and the target's whole conversations are stored per
row) and continues from the round after the last finished one; a conversation already
broken or exhausted is not touched, and no row is written twice. Chat calls go through the
cross-run LLM cache when the caller wraps the backends in it (``ResponderFactory`` does), so
a round redone after a kill does not pay twice either.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from trustflow.data.schemas import SEVAL_ADAPTIVE_TURNS
from trustflow.data.store import ArtifactStore, StageRef, StageWriter
from trustflow.models.critics import Critic, JudgeItem
from trustflow.models.llm.base import ChatBackend, ChatRequest, GenParams
from trustflow.tasks.seval.adaptive import _prompts
from trustflow.tasks.seval.adaptive.base import AdaptiveAttack, Child, Lang, Node, parse_attacker_reply, rng_for

TURN_KEYS = ["loop_id", "base_uid", "round", "branch"]
LIVE = ("continue", "backtracked")  # statuses of a branch that goes on to the next round
log = logging.getLogger(__name__)


def loop_id(
    attack: AdaptiveAttack,
    model: str,
    gen_config_hash: str,
    attacker_model: str,
    critic: Critic,
    seed: int,
) -> str:
    """Everything that changes a loop's rows, hashed: two loops share rows only when equal."""
    parts = [
        attack.spec,
        model,
        gen_config_hash,
        attacker_model,
        critic.critic_id,
        critic.prompt_hash,
        str(seed),
        _prompts.PROMPT_VERSION,
    ]
    return hashlib.sha256("\x00".join(parts).encode()).hexdigest()[:16]


def turn_id(loop: str, base_uid: str, round_no: int, branch: str) -> str:
    return hashlib.sha256(f"{loop}\x00{base_uid}\x00{round_no}\x00{branch}".encode()).hexdigest()[:24]


@dataclass
class Conversation:
    """One base prompt under one loop: its live branches and how it ended."""

    base: dict[str, Any]
    frontier: list[Node]
    next_round: int = 1
    done: bool = False
    broken_round: int | None = None

    @property
    def lang(self) -> Lang:
        return "zh" if self.base["lang"] == "zh" else "en"


@dataclass
class LoopContext:
    """The fixed parts of one loop (one attack × target × attacker × critic)."""

    attack: AdaptiveAttack
    target: ChatBackend
    attacker: ChatBackend
    critic: Critic
    model: str
    gen_params: GenParams
    gen_config_hash: str
    attacker_model: str
    seed: int = 0
    loop: str = field(init=False)

    def __post_init__(self) -> None:
        self.loop = loop_id(self.attack, self.model, self.gen_config_hash, self.attacker_model, self.critic, self.seed)


def _node_from_row(row: dict[str, Any]) -> Node:
    attacker = [*json.loads(row["attacker_messages"]), {"role": "assistant", "content": row["attacker_raw"]}]
    sent = json.loads(row["messages"])
    back = row["status"] == "backtracked"  # the refused turn was taken out of the target's history
    target = sent[:-1] if back else [*sent, {"role": "assistant", "content": row["response"] or ""}]
    return Node(
        backtracked=back,
        branch=row["branch"],
        attacker_messages=attacker,
        target_messages=target,
        response=row["response"] or "",
        score=float(row["risk_score"] or 0.0),
        round=int(row["round"]),
    )


def resume_state(attack: AdaptiveAttack, base: dict[str, Any], rows: list[dict[str, Any]]) -> Conversation:
    """A conversation rebuilt from its finished rows (those of its loop and base prompt)."""
    conv = Conversation(base=base, frontier=[attack.start()])
    if not rows:
        return conv
    last = max(int(r["round"]) for r in rows)
    broken = sorted(int(r["round"]) for r in rows if r["unsafe"])
    if broken:
        conv.done, conv.broken_round = True, broken[0]
        return conv
    live = [r for r in rows if int(r["round"]) == last and r["status"] in LIVE]
    conv.frontier = [_node_from_row(r) for r in sorted(live, key=lambda r: r["branch"])]
    for node in conv.frontier:  # backtracking (Crescendo): how often this branch was taken back
        node.backtracks = sum(
            1
            for r in rows
            if r["status"] == "backtracked"
            and (node.branch == r["branch"] or node.branch.startswith(r["branch"] + "."))
        )
    conv.next_round = last + 1
    conv.done = last >= attack.rounds or not conv.frontier
    return conv


def read_loop_rows(store: ArtifactStore, writer: StageWriter, loop: str) -> list[dict[str, Any]]:
    """Every row of ``loop`` already on storage, committed or not (a killed run's parts count)."""
    prefix = f"part-{loop}-"
    tables = []
    for info in writer.part_files():
        if not info.base_name.startswith(prefix):
            continue
        table: pa.Table = store.io(
            f"read of {info.base_name}",
            functools.partial(pq.read_table, info.path, filesystem=store.fs),
            stage=writer.ref,
        )
        tables.append(table.filter(pc.equal(table["loop_id"], loop)))
    return pa.concat_tables(tables).to_pylist() if tables else []


def _attacker_requests(ctx: LoopContext, conv: Conversation, children: list[Child], round_no: int) -> list[ChatRequest]:
    params = {
        "max_tokens": int(ctx.attack.options.attacker_max_tokens),
        "temperature": float(ctx.attack.options.attacker_temperature),
    }
    out = []
    for child in children:
        seed = rng_for(ctx.attack.name, "attacker", conv.base["prompt_uid"], ctx.seed, round_no, child.branch)
        out.append(ChatRequest.of(child.attacker_messages, seed=seed.randrange(2**31), **params))
    return out


def run_round(ctx: LoopContext, convs: list[Conversation], round_no: int) -> list[dict[str, Any]]:
    """One round for every live conversation in ``convs``: three batched calls, the rows, and
    each conversation's frontier / done state moved on."""
    attack = ctx.attack
    plan: list[tuple[Conversation, Child]] = []
    for conv in convs:
        for node in conv.frontier:  # one rng per node: a resumed frontier (other order) draws the same
            rng = rng_for(attack.name, "children", conv.base["prompt_uid"], ctx.seed, round_no, node.branch)
            plan += [(conv, c) for c in attack.children(node, conv.base["prompt"], conv.lang, round_no, rng)]
    replies = ctx.attacker.generate(
        [r for conv, child in plan for r in _attacker_requests(ctx, conv, [child], round_no)]
    )
    rows: list[dict[str, Any]] = []
    asks: list[int] = []
    for i, ((conv, child), reply) in enumerate(zip(plan, replies, strict=True)):
        goal = conv.base["prompt"]
        prompt = parse_attacker_reply(reply.text) if reply.ok else None
        fallback = prompt is None
        if prompt is None:
            prompt = attack.fallback_prompt(goal, conv.lang, conv.base["prompt_uid"], round_no, child.branch, ctx.seed)
        on_topic = attack.on_topic(prompt, goal)
        messages = attack.target_messages(child.parent, prompt)
        rows.append(
            {
                "branch": child.branch,
                "parent_branch": child.parent.branch,
                "attacker_messages": json.dumps(child.attacker_messages, ensure_ascii=False),
                "attacker_raw": reply.text or "",
                "attacker_error": reply.error,
                "attacker_fallback": fallback,
                "attack_prompt": prompt,
                "on_topic": on_topic,
                "messages": json.dumps(messages, ensure_ascii=False),
                "_conv": conv,
                "_child": child,
                "_messages": messages,
            }
        )
        if on_topic:
            asks.append(i)
    answers = ctx.target.generate([ChatRequest.of(rows[i]["_messages"], **ctx.gen_params.model_dump()) for i in asks])
    judged: list[int] = []
    for i, ans in zip(asks, answers, strict=True):
        rows[i].update(
            response=(ans.text or "") if ans.ok else None,
            finish_reason=ans.finish_reason,
            prompt_tokens=ans.prompt_tokens,
            completion_tokens=ans.completion_tokens,
            latency_s=ans.latency_s,
            error=ans.error,
        )
        if ans.ok:
            judged.append(i)
    verdicts = ctx.critic.judge(
        [
            JudgeItem(
                prompt=rows[i]["_conv"].base["prompt"],
                response=rows[i]["response"],
                lang=rows[i]["_conv"].lang,
                dimension=rows[i]["_conv"].base["dimension"],
            )
            for i in judged
        ]
    )
    for i, v in zip(judged, verdicts, strict=True):
        rows[i].update(risk_score=v.risk_score, unsafe=v.unsafe, judge_error=v.judge_error)
    by_conv: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        by_conv[id(row["_conv"])].append(row)
    out = []
    for conv in convs:
        mine = by_conv.get(id(conv), [])
        survivors = []
        for row in mine:
            if not row["on_topic"]:
                row["status"] = "pruned_off_topic"
            elif row.get("error"):
                row["status"] = "error"
            elif row.get("unsafe"):
                row["status"] = "broken"
            else:
                row["status"] = "continue"
                node = Node(
                    branch=row["branch"],
                    attacker_messages=[
                        *json.loads(row["attacker_messages"]),
                        {"role": "assistant", "content": row["attacker_raw"]},
                    ],
                    target_messages=[*row["_messages"], {"role": "assistant", "content": row["response"] or ""}],
                    response=row["response"] or "",
                    score=float(row.get("risk_score") or 0.0),
                    round=round_no,
                    backtracks=row["_child"].parent.backtracks,
                )
                if attack.after_answer(node, row["_messages"]):
                    row["status"] = "backtracked"
                survivors.append(node)
        if any(r["status"] == "broken" for r in mine):
            conv.done, conv.broken_round, conv.frontier = True, round_no, []
        else:
            kept = attack.select(survivors) if round_no < attack.rounds else []
            names = {n.branch for n in kept}
            for row in mine:
                if row["status"] in LIVE and row["branch"] not in names:
                    row["status"] = "pruned_score" if round_no < attack.rounds else "exhausted"
            conv.frontier, conv.next_round = kept, round_no + 1
            conv.done = not kept
        out += [_finish(ctx, conv, round_no, row) for row in mine]
    return out


def _finish(ctx: LoopContext, conv: Conversation, round_no: int, row: dict[str, Any]) -> dict[str, Any]:
    base = conv.base
    full = {
        "turn_id": turn_id(ctx.loop, base["prompt_uid"], round_no, row["branch"]),
        "loop_id": ctx.loop,
        "model": ctx.model,
        "gen_config_hash": ctx.gen_config_hash,
        "attack": ctx.attack.name,
        "attack_spec": ctx.attack.spec,
        "attacker_model": ctx.attacker_model,
        "critic_id": ctx.critic.critic_id,
        "critic_prompt_hash": ctx.critic.prompt_hash,
        "seed": ctx.seed,
        "base_uid": base["prompt_uid"],
        "base_id": base["base_id"],
        "lang": base["lang"],
        "dimension": base["dimension"],
        "goal": base["prompt"],
        "round": round_no,
        "response": None,
        "finish_reason": None,
        "prompt_tokens": 0,
        "completion_tokens": 0,
        "latency_s": 0.0,
        "error": None,
        "risk_score": None,
        "unsafe": None,
        "judge_error": None,
    }
    full.update({k: v for k, v in row.items() if not k.startswith("_")})
    return full


def run_loop(
    store: ArtifactStore,
    ref: StageRef,
    bases: Sequence[dict[str, Any]],
    ctx: LoopContext,
    group_size: int = 64,
    on_round: Callable[[int, int], None] | None = None,
) -> dict[str, int]:
    """Run (or resume) ``ctx``'s attack on every base prompt (suite rows: ``prompt_uid,
    base_id, lang, dimension, prompt``); writes one part per group and round, no commit.

    ``on_round(round, rows)`` is called after each part is written (progress; tests use it
    to kill a run mid-loop). Returns counts: conversations, rows written, rounds run."""
    writer = store.writer(ref, SEVAL_ADAPTIVE_TURNS, TURN_KEYS)
    done_rows: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in read_loop_rows(store, writer, ctx.loop):
        done_rows[row["base_uid"]].append(row)
    stats = {"conversations": len(bases), "rows_written": 0, "rounds_run": 0, "resumed": 0}
    ordered = sorted(bases, key=lambda b: b["prompt_uid"])
    for start in range(0, len(ordered), group_size):
        group = ordered[start : start + group_size]
        tag = hashlib.sha256("\x00".join(b["prompt_uid"] for b in group).encode()).hexdigest()[:10]
        convs = [resume_state(ctx.attack, b, done_rows.get(b["prompt_uid"], [])) for b in group]
        stats["resumed"] += sum(1 for b in group if done_rows.get(b["prompt_uid"]))
        for round_no in range(1, ctx.attack.rounds + 1):
            live = [c for c in convs if not c.done and c.next_round == round_no]
            if not live:
                continue
            rows = run_round(ctx, live, round_no)
            table = writer.missing(pa.Table.from_pylist(rows, schema=SEVAL_ADAPTIVE_TURNS.schema))
            if table.num_rows:
                writer.write_part(table, f"{ctx.loop}-{tag}-r{round_no:03d}")
            stats["rows_written"] += table.num_rows
            stats["rounds_run"] += 1
            if on_round is not None:
                on_round(round_no, table.num_rows)
    return stats


def commit_turns(store: ArtifactStore, ref: StageRef, attrs: dict[str, Any]) -> Any:
    return store.writer(ref, SEVAL_ADAPTIVE_TURNS, TURN_KEYS).commit(attrs)
