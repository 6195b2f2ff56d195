"""Retrieval eval: does the knowledge base surface the right guideline for a question?

Rows (jsonl, one object a line): {"query", "lang", "expected_doc", "expected_section"}.
Metrics: recall@k and MRR@k at document level (the primary numbers), section-level recall@k,
a per-language breakdown and the list of misses.

    python -m evals.retrieval_eval [--data evals/data/retrieval_x.jsonl ...] [--report out.json] [-k 5]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from assistant.settings import Settings
    from knowledge.retrieval import KnowledgeBase

DATA_DIR = Path(__file__).resolve().parent / "data"
DEFAULT_REPORT = Path(__file__).resolve().parent / "reports" / "retrieval.json"
LANGS = ("zh", "en")


class RetrievalDataError(ValueError):
    """A retrieval eval file or row is malformed (message names file and line)."""


@dataclass(frozen=True)
class RetrievalRow:
    query: str
    lang: str
    expected_doc: str
    expected_section: str | None
    origin: str = ""  # "file:line", for tracing misses back to the data


def default_data_paths() -> list[Path]:
    return sorted(DATA_DIR.glob("retrieval_*.jsonl"))


def _parse_row(obj: Any, origin: str) -> RetrievalRow:
    if not isinstance(obj, dict):
        raise RetrievalDataError(f"{origin}: row must be a JSON object / 每行必须是 JSON 对象")
    query, lang, doc = obj.get("query"), obj.get("lang"), obj.get("expected_doc")
    section = obj.get("expected_section")
    if not isinstance(query, str) or not query.strip():
        raise RetrievalDataError(f"{origin}: 'query' must be a non-empty string / 'query' 不能为空")
    if lang not in LANGS:
        raise RetrievalDataError(f"{origin}: 'lang' must be zh or en, got {lang!r} / 'lang' 必须是 zh 或 en")
    if not isinstance(doc, str) or not doc.strip():
        raise RetrievalDataError(
            f"{origin}: 'expected_doc' must be a non-empty string / 'expected_doc' 不能为空"
        )
    if section is not None and (not isinstance(section, str) or not section.strip()):
        raise RetrievalDataError(f"{origin}: 'expected_section' must be a string or null")
    return RetrievalRow(
        query=query.strip(), lang=lang, expected_doc=doc.strip(), expected_section=section, origin=origin
    )


def load_rows(paths: Iterable[Path | str]) -> list[RetrievalRow]:
    """Rows from one or more jsonl files (blank lines and lines starting with // are skipped)."""
    rows: list[RetrievalRow] = []
    for raw_path in paths:
        path = Path(raw_path)
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except OSError as exc:
            raise RetrievalDataError(f"{path}: cannot read ({exc.strerror}) / 无法读取文件") from None
        for lineno, line in enumerate(lines, start=1):
            if not line.strip() or line.lstrip().startswith("//"):
                continue
            origin = f"{path.name}:{lineno}"
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise RetrievalDataError(f"{origin}: invalid JSON ({exc.msg}) / JSON 格式错误") from None
            rows.append(_parse_row(obj, origin))
    return rows


def _summarise(results: Sequence[dict[str, Any]]) -> dict[str, Any]:
    n = len(results)
    with_section = [r for r in results if r["expected_section"] is not None]
    return {
        "n": n,
        "recall_at_k": round(sum(r["doc_rank"] is not None for r in results) / n, 4) if n else 0.0,
        "mrr": round(sum(1.0 / r["doc_rank"] for r in results if r["doc_rank"]) / n, 4) if n else 0.0,
        "section_recall_at_k": (
            round(sum(r["section_rank"] is not None for r in with_section) / len(with_section), 4)
            if with_section
            else None
        ),
    }


def run_retrieval_eval(kb: KnowledgeBase, rows: Sequence[RetrievalRow], k: int = 5) -> dict[str, Any]:
    """Search every row (in its own language) and score doc-level recall@k / MRR@k."""
    started = time.perf_counter()
    results: list[dict[str, Any]] = []
    for row in rows:
        hits = kb.search(row.query, k=k, lang=row.lang)
        doc_rank = next((i for i, h in enumerate(hits, start=1) if h.doc_id == row.expected_doc), None)
        section_rank = next(
            (
                i
                for i, h in enumerate(hits, start=1)
                if h.doc_id == row.expected_doc and h.section == row.expected_section
            ),
            None,
        )
        results.append(
            {
                "query": row.query,
                "lang": row.lang,
                "expected_doc": row.expected_doc,
                "expected_section": row.expected_section,
                "origin": row.origin,
                "doc_rank": doc_rank,
                "section_rank": section_rank,
                "got": [h.ref for h in hits],
                "expected_exists": (
                    kb.has_section(row.expected_doc, row.expected_section)
                    if row.expected_section
                    else any(d.doc_id == row.expected_doc for d in kb.docs)
                ),
            }
        )
    metrics = _summarise(results)
    metrics.update(
        {
            "k": k,
            "by_lang": {lang: _summarise([r for r in results if r["lang"] == lang]) for lang in LANGS},
            "misses": [r for r in results if r["doc_rank"] is None],
            "section_misses": [r for r in results if r["doc_rank"] is not None and r["section_rank"] is None],
            # Rows whose expected doc/section is not in the corpus are data errors, not retrieval errors.
            "expected_not_in_corpus": [
                r["origin"] or r["query"] for r in results if not r["expected_exists"]
            ],
            "knowledge_version": kb.knowledge_version,
            "embedder": kb.embedder.name,
            "seconds": round(time.perf_counter() - started, 2),
        }
    )
    return metrics


def format_table(metrics: dict[str, Any], max_misses: int = 20) -> str:
    k = metrics["k"]

    def fmt(value: float | None) -> str:
        return "   -" if value is None else f"{value:.3f}"

    lines = [
        f"Retrieval eval  (embedder {metrics['embedder']}, knowledge {metrics['knowledge_version']})",
        f"{'subset':<8}{'n':>6}{'recall@' + str(k):>11}{'MRR@' + str(k):>9}{'sec-recall':>12}",
    ]
    rows = [("all", metrics)] + [(lang, metrics["by_lang"][lang]) for lang in LANGS]
    for name, m in rows:
        if m["n"]:
            lines.append(
                f"{name:<8}{m['n']:>6}{fmt(m['recall_at_k']):>11}{fmt(m['mrr']):>9}{fmt(m['section_recall_at_k']):>12}"
            )
    misses = metrics["misses"]
    if misses:
        lines.append(f"misses ({len(misses)}):")
        for miss in misses[:max_misses]:
            got = ", ".join(miss["got"][:3])
            lines.append(f"  [{miss['lang']}] {miss['query']}  -> expected {miss['expected_doc']}, got {got}")
        if len(misses) > max_misses:
            lines.append(f"  ... {len(misses) - max_misses} more in the JSON report")
    if metrics["expected_not_in_corpus"]:
        lines.append(
            f"rows expecting a doc/section missing from the corpus: {metrics['expected_not_in_corpus'][:10]}"
        )
    return "\n".join(lines)


def write_report(metrics: dict[str, Any], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(metrics, ensure_ascii=False, indent=2), encoding="utf-8")
    return path


def run(
    data_paths: list[Path] | None = None,
    report: Path | None = None,
    settings: Settings | None = None,
    k: int = 5,
    kb: KnowledgeBase | None = None,
) -> dict[str, Any]:
    """Load rows (default: evals/data/retrieval_*.jsonl), open the KB, print the table, write the report."""
    paths = list(data_paths) if data_paths else default_data_paths()
    if not paths:
        raise RetrievalDataError(f"no retrieval eval files found in {DATA_DIR} / 未找到检索评测数据")
    rows = load_rows(paths)
    if not rows:
        raise RetrievalDataError(f"no rows in {', '.join(map(str, paths))} / 评测数据为空")
    if kb is None:
        from assistant.settings import get_settings
        from knowledge.api import open_knowledge_base

        kb = open_knowledge_base(settings or get_settings())
    metrics = run_retrieval_eval(kb, rows, k=k)
    metrics["data"] = [str(p) for p in paths]
    print(format_table(metrics))
    if report is not None:
        write_report(metrics, report)
        print(f"report: {report}")
    return metrics


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Daozhen retrieval eval (recall@k, MRR)")
    parser.add_argument(
        "--data", type=Path, nargs="*", help="jsonl files (default: evals/data/retrieval_*.jsonl)"
    )
    parser.add_argument("--report", type=Path, default=DEFAULT_REPORT, help="JSON report path")
    parser.add_argument("-k", type=int, default=5)
    args = parser.parse_args(argv)
    try:
        run(args.data, args.report, k=args.k)
    except (RetrievalDataError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
