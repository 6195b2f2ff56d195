"""`daozhen triage` contract: JSON on stdout and exit 0; unusable input gives a zh/en message on
stderr and exit 2; `--jsonl` answers every line in order, bad lines as error objects."""

from __future__ import annotations

import io
import json

import pytest

from assistant.cli import main


def run(argv: list[str], stdin_bytes: bytes = b"") -> tuple[int, str, str]:
    stdin = io.TextIOWrapper(io.BytesIO(stdin_bytes), encoding="utf-8")
    stdout, stderr = io.StringIO(), io.StringIO()
    code = main(argv, stdin=stdin, stdout=stdout, stderr=stderr)
    return code, stdout.getvalue(), stderr.getvalue()


def test_json_result_for_text_argument() -> None:
    code, out, err = run(["triage", "--json", "我爸胸口很痛一直出冷汗"])
    assert code == 0 and not err
    result = json.loads(out)
    assert result["level"] == "emergency_ambulance"
    assert result["departments"][0]["id"] == "emergency"
    assert result["engine_version"] and result["knowledge_version"]


def test_text_from_stdin() -> None:
    code, out, _ = run(["triage", "--json"], b"my ankle is swollen after a fall")
    assert code == 0 and json.loads(out)["departments"][0]["id"] == "orthopedics"


@pytest.mark.parametrize(
    ("stdin_bytes", "needle"),
    [
        (b"", "Please describe"),
        (b"   \n\t ", "Please describe"),
        (("a" * 4001).encode(), "too long"),
        (b"\x00\x01\x02binary", "binary"),
        (b"\xff\xfe\xfa", "UTF-8"),
        ("😀😀😀".encode(), "describe the symptoms"),
    ],
)
def test_unusable_input_exits_2_with_a_bilingual_message(stdin_bytes: bytes, needle: str) -> None:
    code, out, err = run(["triage", "--json"], stdin_bytes)
    assert code == 2 and out == ""
    assert needle in err and "/" in err  # zh / en


def test_jsonl_keeps_order_and_reports_bad_lines() -> None:
    lines = [
        json.dumps({"text": "宝宝发烧38度", "age_months": 2}, ensure_ascii=False),
        "not json",
        "[1, 2]",
        json.dumps({"text": ""}),
        json.dumps({"text": "头痛", "facts": "abc"}, ensure_ascii=False),
        json.dumps({"text": "cough", "vitals": {"spo2": 300}}),
        json.dumps({"text": "rash", "age_months": -5}),
        json.dumps({"text": "my ankle is swollen after a fall", "lang": "en"}),
    ]
    code, out, _ = run(["triage", "--jsonl"], "\n".join(lines).encode())
    assert code == 0
    rows = [json.loads(line) for line in out.splitlines()]
    assert len(rows) == len(lines)
    assert rows[0]["level"] == "emergency"
    assert [rows[i]["error"]["code"] for i in (1, 2, 3, 4)] == [
        "bad_json",
        "bad_json",
        "empty_input",
        "invalid_fact",
    ]
    assert [rows[i]["line"] for i in (1, 2, 3, 4)] == [2, 3, 4, 5]
    assert rows[5]["facts"]["vitals"]["spo2"] is None  # impossible value not used ...
    assert rows[5]["warnings"][0]["code"] == "implausible_spo2"  # ... and the user is told
    assert rows[6]["error"]["code"] == "invalid_fact"
    assert rows[7]["departments"][0]["id"] == "orthopedics"
