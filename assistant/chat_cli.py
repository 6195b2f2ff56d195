"""`daozhen chat`: the triage conversation in a terminal (no LLM, works with piped stdin).

Commands: /quit (or /exit), /reset, /lang zh|en, /help. End of input exits with 0. When stdin is
not a terminal each user line is echoed after "> " so a piped transcript reads as a dialogue.
"""

from __future__ import annotations

import sys
from typing import TextIO, cast

from assistant import session_text as st
from assistant.session import ConversationSession
from tools.triage_models import Lang

PROMPT = "> "


def _is_tty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def _tolerate_unencodable(stream: TextIO) -> None:
    """A terminal without UTF-8 must not crash on Chinese text: replace what it cannot show."""
    encoding = (getattr(stream, "encoding", None) or "").lower().replace("-", "")
    if encoding and encoding != "utf8" and hasattr(stream, "reconfigure"):
        stream.reconfigure(errors="replace")


class _Chat:
    def __init__(self, lang: Lang | None, stdout: TextIO) -> None:
        self.initial_lang = lang
        self.stdout = stdout
        self.session = ConversationSession(lang=lang)

    def say(self, text: str) -> None:
        print(text, file=self.stdout)
        print(file=self.stdout)
        self.stdout.flush()

    def command(self, line: str) -> bool:
        """Runs a /command; False means quit."""
        name, _, arg = line.strip().partition(" ")
        name, arg = name.lower(), arg.strip().lower()
        lang = self.session.lang
        if name in ("/quit", "/exit", "/q"):
            self.say(st.render_any("cli_bye", lang))
            return False
        if name == "/reset":
            self.session = ConversationSession(lang=self.initial_lang or lang)
            self.say(st.render_any("cli_reset", self.session.lang))
        elif name == "/lang":
            if arg not in ("zh", "en"):
                self.say(st.render_any("cli_lang_usage", lang))
                return True
            self.session.set_lang(cast(Lang, arg))
            self.initial_lang = cast(Lang, arg)
            lines = [st.render("cli_lang_set", self.session.lang or "zh")]
            if self.session.pending_question is not None:
                lines.append(self.session.pending_question.question)
            self.say("\n".join(lines))
        elif name in ("/help", "/?"):
            self.say(st.render_any("cli_welcome", lang))
        else:
            self.say(st.render_any("cli_unknown_command", lang, command=name))
        return True


def run_chat(lang: str | None = None, stdin: TextIO | None = None, stdout: TextIO | None = None) -> int:
    """Reads user lines until EOF or /quit and prints one reply per line. Returns the exit code.

    stdin/stdout default to the process streams at call time (not import time, so captured
    streams in tests and redirected streams work)."""
    stdin = stdin if stdin is not None else sys.stdin
    stdout = stdout if stdout is not None else sys.stdout
    if stdout is sys.stdout:
        _tolerate_unencodable(stdout)
    if stdin is sys.stdin and hasattr(stdin, "reconfigure"):
        stdin.reconfigure(errors="replace")  # stray non-UTF-8 bytes become U+FFFD, not a crash
    chat = _Chat(cast(Lang, lang) if lang in ("zh", "en") else None, stdout)
    interactive = _is_tty(stdin)
    chat.say(st.render_any("cli_welcome", chat.session.lang))
    try:
        while True:
            if interactive:
                print(PROMPT, end="", file=stdout, flush=True)
            line = stdin.readline()
            if not line:  # EOF
                if interactive:
                    print(file=stdout)
                return 0
            line = line.rstrip("\r\n")
            if not line.strip():
                continue  # blank lines are not turns
            if not interactive:
                print(PROMPT + line, file=stdout)
            if line.lstrip().startswith("/"):
                if not chat.command(line):
                    return 0
                continue
            reply = chat.session.handle_user_message(line)
            chat.say(reply.text)
    except KeyboardInterrupt:
        print(file=stdout)
        return 130
