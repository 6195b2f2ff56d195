"""Load the guideline corpus: `<doc-id>.<lang>.md` files with YAML front matter and `## Title {#id}` sections.

Malformed files raise CorpusError naming the file (and line when known), because a silently
skipped guideline would make the assistant cite less than it should.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import yaml

LANGUAGES: tuple[str, ...] = ("zh", "en")
REQUIRED_KEYS: tuple[str, ...] = ("id", "title", "language", "source", "version", "reviewed")
SOURCE_KEYS: tuple[str, ...] = ("guideline", "year", "section")

_ID_RE = re.compile(r"^[a-z0-9][a-z0-9-]*$")
_SECTION_HEADING_RE = re.compile(r"^##\s+(?P<title>.+?)\s*\{#(?P<id>[^}\s]+)\}\s*$")
_FRONT_MATTER_FENCE = "---"
# Text before the first section (besides a `# Title` line) is kept under this id.
INTRO_SECTION_ID = "intro"


class CorpusError(ValueError):
    """A corpus file (or the corpus folder) is malformed. The message names the file."""

    def __init__(self, path: Path | str, en: str, zh: str, line: int | None = None) -> None:
        self.path = Path(path)
        self.line = line
        where = f"{self.path}:{line}" if line else str(self.path)
        super().__init__(f"{where}: {en} / {zh}")


@dataclass(frozen=True)
class SourceRef:
    """One public guideline a document draws on."""

    guideline: str
    year: int
    section: str

    def format(self) -> str:
        return f"{self.guideline}, {self.year}, {self.section}"

    def to_dict(self) -> dict[str, Any]:
        return {"guideline": self.guideline, "year": self.year, "section": self.section}


@dataclass(frozen=True)
class Section:
    section_id: str
    title: str
    text: str
    line: int  # 1-based line of the heading in the file (0 for the intro)


@dataclass(frozen=True)
class Document:
    doc_id: str
    title: str
    language: str
    sources: tuple[SourceRef, ...]
    version: str
    reviewed: date
    sections: tuple[Section, ...]
    path: Path
    content_hash: str  # sha256 of the whole file text

    @property
    def key(self) -> tuple[str, str]:
        return (self.doc_id, self.language)

    def section(self, section_id: str) -> Section | None:
        return next((s for s in self.sections if s.section_id == section_id), None)


def _split_front_matter(path: Path, text: str) -> tuple[str, str, int]:
    """Return (front matter yaml, body, 1-based line number where the body starts)."""
    lines = text.split("\n")
    if not lines or lines[0].strip() != _FRONT_MATTER_FENCE:
        raise CorpusError(
            path, "file must start with a '---' front matter block", "文件必须以 '---' 元数据块开头", line=1
        )
    for i in range(1, len(lines)):
        if lines[i].strip() == _FRONT_MATTER_FENCE:
            return "\n".join(lines[1:i]), "\n".join(lines[i + 1 :]), i + 2
    raise CorpusError(path, "front matter has no closing '---'", "元数据块缺少结尾的 '---'", line=1)


def _parse_sources(path: Path, raw: Any) -> tuple[SourceRef, ...]:
    if not isinstance(raw, list) or not raw:
        raise CorpusError(path, "'source' must be a non-empty list", "'source' 必须是非空列表")
    refs: list[SourceRef] = []
    for i, item in enumerate(raw, start=1):
        if not isinstance(item, dict):
            raise CorpusError(path, f"source #{i} must be a mapping", f"第 {i} 条 source 必须是映射")
        missing = [k for k in SOURCE_KEYS if item.get(k) in (None, "")]
        if missing:
            raise CorpusError(
                path,
                f"source #{i} is missing {', '.join(missing)}",
                f"第 {i} 条 source 缺少 {', '.join(missing)}",
            )
        try:
            year = int(item["year"])
        except (TypeError, ValueError):
            raise CorpusError(
                path, f"source #{i} year must be a number", f"第 {i} 条 source 的 year 必须是数字"
            ) from None
        refs.append(
            SourceRef(
                guideline=str(item["guideline"]).strip(), year=year, section=str(item["section"]).strip()
            )
        )
    return tuple(refs)


def _parse_reviewed(path: Path, raw: Any) -> date:
    if isinstance(raw, date):
        return raw
    try:
        return date.fromisoformat(str(raw))
    except ValueError:
        raise CorpusError(
            path,
            f"'reviewed' must be a date like 2026-11-23, got {raw!r}",
            "'reviewed' 必须是日期（如 2026-11-23）",
        ) from None


def _parse_sections(path: Path, body: str, first_line: int, doc_title: str) -> tuple[Section, ...]:
    sections: list[Section] = []
    intro: list[str] = []
    current: tuple[str, str, int] | None = None  # (id, title, line)
    buffer: list[str] = []
    in_code_fence = False

    def close() -> None:
        if current is None:
            return
        text = "\n".join(buffer).strip()
        if not text:
            raise CorpusError(
                path, f"section '{current[0]}' is empty", f"章节 '{current[0]}' 为空", line=current[2]
            )
        sections.append(Section(section_id=current[0], title=current[1], text=text, line=current[2]))

    for offset, line in enumerate(body.split("\n")):
        lineno = first_line + offset
        if line.lstrip().startswith("```"):
            in_code_fence = not in_code_fence
        if not in_code_fence and re.match(r"^##\s", line):
            match = _SECTION_HEADING_RE.match(line)
            if match is None:
                raise CorpusError(
                    path,
                    "level-2 heading needs an explicit id, e.g. '## Chest pain {#chest-pain}'",
                    "二级标题必须带 id，例如 '## 胸痛 {#chest-pain}'",
                    line=lineno,
                )
            section_id = match["id"]
            if not _ID_RE.match(section_id):
                raise CorpusError(
                    path,
                    f"section id '{section_id}' must be lowercase letters, digits and '-'",
                    f"章节 id '{section_id}' 只能包含小写字母、数字和 '-'",
                    line=lineno,
                )
            if any(s.section_id == section_id for s in sections) or (current and current[0] == section_id):
                raise CorpusError(
                    path, f"duplicate section id '{section_id}'", f"章节 id '{section_id}' 重复", line=lineno
                )
            close()
            current, buffer = (section_id, match["title"].strip(), lineno), []
        elif current is None:
            if not re.match(r"^#\s", line):  # the document's own `# Title` line is not content
                intro.append(line)
        else:
            buffer.append(line)
    close()

    if not sections:
        raise CorpusError(
            path, "no '## Title {#section-id}' sections found", "未找到 '## 标题 {#section-id}' 形式的章节"
        )
    intro_text = "\n".join(intro).strip()
    if intro_text and all(s.section_id != INTRO_SECTION_ID for s in sections):
        sections.insert(0, Section(section_id=INTRO_SECTION_ID, title=doc_title, text=intro_text, line=0))
    return tuple(sections)


def parse_document(path: Path | str) -> Document:
    """Parse one corpus file; raises CorpusError (naming the file) when it is malformed."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig").replace("\r\n", "\n")
    except UnicodeDecodeError:
        raise CorpusError(path, "file is not valid UTF-8", "文件不是有效的 UTF-8 编码") from None
    except OSError as exc:
        raise CorpusError(path, f"cannot read file ({exc.strerror})", "无法读取文件") from None

    front, body, body_line = _split_front_matter(path, text)
    try:
        meta = yaml.safe_load(front)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 2 if mark is not None else None  # +1 for 1-based, +1 for the opening fence
        raise CorpusError(
            path, f"front matter is not valid YAML ({exc})", "元数据不是有效的 YAML", line=line
        ) from None
    if not isinstance(meta, dict):
        raise CorpusError(path, "front matter must be a YAML mapping", "元数据必须是 YAML 映射")

    missing = [k for k in REQUIRED_KEYS if meta.get(k) in (None, "")]
    if missing:
        joined = ", ".join(missing)
        raise CorpusError(path, f"front matter is missing: {joined}", f"元数据缺少字段：{joined}")
    unknown = sorted(set(meta) - set(REQUIRED_KEYS))
    if unknown:
        joined = ", ".join(map(str, unknown))
        raise CorpusError(path, f"unknown front matter keys: {joined}", f"未知的元数据字段：{joined}")

    doc_id, language = str(meta["id"]).strip(), str(meta["language"]).strip()
    if not _ID_RE.match(doc_id):
        raise CorpusError(
            path, f"id '{doc_id}' must be lowercase letters, digits and '-'", f"id '{doc_id}' 格式不正确"
        )
    if language not in LANGUAGES:
        raise CorpusError(
            path,
            f"language must be zh or en, got '{language}'",
            f"language 必须是 zh 或 en，实际为 '{language}'",
        )
    expected_name = f"{doc_id}.{language}.md"
    if path.name != expected_name:
        raise CorpusError(
            path,
            f"file name must match front matter ({expected_name})",
            f"文件名必须与元数据一致（{expected_name}）",
        )
    title = str(meta["title"]).strip()
    return Document(
        doc_id=doc_id,
        title=title,
        language=language,
        sources=_parse_sources(path, meta["source"]),
        version=str(meta["version"]).strip(),
        reviewed=_parse_reviewed(path, meta["reviewed"]),
        sections=_parse_sections(path, body, body_line, title),
        path=path,
        content_hash=hashlib.sha256(text.encode("utf-8")).hexdigest(),
    )


def corpus_files(directory: Path | str) -> list[Path]:
    """The `<doc-id>.<lang>.md` files of a corpus folder (other files such as README.md are ignored)."""
    directory = Path(directory)
    if not directory.is_dir():
        raise CorpusError(directory, "knowledge folder does not exist", "知识库目录不存在")
    return sorted(p for p in directory.glob("*.*.md") if p.is_file())


def load_corpus(directory: Path | str) -> list[Document]:
    """All documents of a corpus folder, sorted by (doc id, language)."""
    files = corpus_files(directory)
    if not files:
        raise CorpusError(
            directory, "no '<doc-id>.<lang>.md' files found", "未找到 '<doc-id>.<lang>.md' 文件"
        )
    docs = sorted((parse_document(p) for p in files), key=lambda d: d.key)
    return docs


def check_parallel_languages(docs: Iterable[Document]) -> list[str]:
    """Problems with the zh/en pairing (missing translation, differing section ids); empty when consistent.

    Returned rather than raised so a corpus that is still being written can be indexed.
    """
    by_id: dict[str, dict[str, Document]] = {}
    for doc in docs:
        by_id.setdefault(doc.doc_id, {})[doc.language] = doc
    problems: list[str] = []
    for doc_id, versions in sorted(by_id.items()):
        for lang in LANGUAGES:
            if lang not in versions:
                problems.append(f"{doc_id}: missing {lang} version")
        if len(versions) == len(LANGUAGES):
            ids = {lang: [s.section_id for s in d.sections] for lang, d in versions.items()}
            zh_ids, en_ids = set(ids["zh"]), set(ids["en"])
            if zh_ids != en_ids:
                problems.append(
                    f"{doc_id}: section ids differ "
                    f"(only zh: {sorted(zh_ids - en_ids)}, only en: {sorted(en_ids - zh_ids)})"
                )
    return problems


def knowledge_version(docs: Iterable[Document] | Path | str) -> str:
    """Short stable hash over every document's id, language, version and content (for audit trails)."""
    if isinstance(docs, (str, Path)):
        docs = load_corpus(docs)
    digest = hashlib.sha256()
    for doc in sorted(docs, key=lambda d: d.key):
        digest.update(f"{doc.doc_id}|{doc.language}|{doc.version}|{doc.content_hash}\n".encode())
    return digest.hexdigest()[:12]
