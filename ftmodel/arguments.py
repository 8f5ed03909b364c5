"""`ftmodel --help` (and `ftmodel-tui --help`) in the user's language: an argparse parser whose help,
descriptions, section headings, usage prefix and errors go through the catalog, wrapped in cells.

The help strings stay English in the code (`help="do not use the LLM judge"`): they are the message
ids, translated when the help is formatted; `tests/tui/i18n_ids.py` collects them from the built
parsers (`help_texts`), so a new option without a translation fails the catalog test. argparse's
own words ("usage: ", "options", "show this help message and exit", "unrecognized arguments: …")
come from its gettext domain, which we do not ship; they are ids in our catalog too, translated
here rather than by patching `argparse._`. argparse wraps by characters (textwrap): a Chinese line
would come out twice as wide as the terminal, so lines are wrapped by cells (`ftmodel.textio.wrap`).
"""

from __future__ import annotations

import argparse
import re
import sys

from ftmodel.i18n import t
from ftmodel.textio import cell_width, wrap

# argparse's own messages (Python 3.11) as our catalog's ids: pattern of the English text -> template.
ARGPARSE_ERRORS = (
    (re.compile(r"unrecognized arguments: (?P<args>.*)", re.S), "unrecognized arguments: {args}"),
    (
        re.compile(r"the following arguments are required: (?P<args>.*)", re.S),
        "the following arguments are required: {args}",
    ),
    (
        re.compile(r"argument (?P<arg>.+?): invalid choice: (?P<value>.+?) \(choose from (?P<choices>.*)\)", re.S),
        "argument {arg}: invalid choice: {value} (choose from {choices})",
    ),
    (re.compile(r"argument (?P<arg>.+?): expected one argument", re.S), "argument {arg}: expected one argument"),
    (
        re.compile(r"argument (?P<arg>.+?): invalid (?P<kind>\w+) value: (?P<value>.*)", re.S),
        "argument {arg}: invalid {kind} value: {value}",
    ),
)
ARGPARSE_WORDS = ("usage: ", "positional arguments", "options", "show this help message and exit")


class Translated(str):
    """A help text put together at build time from texts already translated (a list of profiles): the
    formatter shows it as it is, and `help_texts` leaves it out (its parts are ids of their own)."""


def help_texts(parser: argparse.ArgumentParser) -> set[str]:
    """Every text `parser` and its sub-parsers show in --help (help, descriptions, group titles)."""
    texts: set[str] = set()
    todo, seen = [parser], set()
    while todo:
        p = todo.pop()
        if id(p) in seen:
            continue
        seen.add(id(p))
        texts.update(x for x in (p.description, p.epilog) if x)
        texts.update(g.title for g in p._action_groups if g.title)
        for action in p._actions:
            if action.help and action.help is not argparse.SUPPRESS and not isinstance(action.help, Translated):
                texts.add(action.help)
            if isinstance(action, argparse._SubParsersAction):
                texts.update(c.help for c in action._choices_actions if c.help)
                todo.extend(action.choices.values())
    return texts


def translate_error(message: str) -> str:
    """argparse's error message in the current language (as it is when we do not know it)."""
    for pattern, template in ARGPARSE_ERRORS:
        m = pattern.fullmatch(message)
        if m:
            return t(template, **m.groupdict())
    return message


class HelpFormatter(argparse.HelpFormatter):
    """Translates every text it formats and wraps it in terminal cells."""

    class _Section(argparse.HelpFormatter._Section):
        """A section whose Chinese heading ends in a full-width colon (argparse appends an ASCII one)."""

        def format_help(self) -> str:
            text = super().format_help()
            if self.heading and cell_width(self.heading) > len(self.heading):
                text = text.replace(f"{self.heading}:\n", f"{self.heading}：\n", 1)
            return text

    def _get_help_string(self, action: argparse.Action) -> str | None:
        return t(action.help) if action.help and not isinstance(action.help, Translated) else action.help

    def add_text(self, text: str | None) -> None:
        super().add_text(t(text) if text and text is not argparse.SUPPRESS else text)

    def start_section(self, heading: str | None) -> None:
        super().start_section(t(heading) if heading else heading)

    def add_usage(self, usage, actions, groups, prefix: str | None = None) -> None:
        super().add_usage(usage, actions, groups, t("usage: ") if prefix is None else prefix)

    def _format_usage(self, usage, actions, groups, prefix) -> str:
        text = super()._format_usage(usage, actions, groups, prefix)
        extra = cell_width(prefix or "") - len(prefix or "")
        if extra <= 0:
            return text
        # argparse indents a wrapped usage by len(prefix); a Chinese prefix is wider in cells
        first, *rest = text.split("\n")
        return "\n".join([first, *((" " * extra + line) if line.strip() else line for line in rest)])

    def _split_lines(self, text: str, width: int) -> list[str]:
        return wrap(self._whitespace_matcher.sub(" ", text).strip(), width)

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        text = self._whitespace_matcher.sub(" ", text).strip()
        return "\n".join(indent + line for line in wrap(text, max(width - len(indent), 11)))


class Parser(argparse.ArgumentParser):
    """The `ftmodel` parser and, through `add_subparsers` (which reuses the class), all its sub-parsers."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str):
        """Print the usage and the error in the user's language; exit 2 (as argparse does)."""
        self.print_usage(sys.stderr)
        self.exit(2, t("{prog}: error: {message}", prog=self.prog, message=translate_error(message)) + "\n")
