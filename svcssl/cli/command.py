"""What every command of `svcssl` shares: the exit codes, how a command is declared and run, the
argparse-style parameter types, and the table and result printing."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any, Callable

import click

from ..errors import FileSystemError
from ..operations.context import Context
from ..operations.install import InstallOutcome

EXIT_OK, EXIT_FAILED, EXIT_INPUT = 0, 1, 2
CLI_ACTOR = "root (command line)"

Action = Callable[[Context, SimpleNamespace], int]


@dataclass(frozen=True)
class Invocation:
    """A parsed command line: what to run once the settings are loaded and the context is open."""

    command: tuple[str, ...]  # e.g. ("maintenance", "run")
    config: str | None
    log_level: str | None
    verbose: bool
    args: SimpleNamespace  # the command's own options and arguments
    action: Action
    opens_store: bool = True  # False: the action gets the Settings, not a Context (`svcssl state`: the
    # database may be damaged, and those commands must work all the same)

    def __call__(self, ctx: Context) -> int:
        return self.action(ctx, self.args)


def runs(command: Action, /, *, opens_store: bool = True, **fixed: Any) -> Callable[..., Invocation]:
    """A click callback that hands back an Invocation of ``command`` instead of running it: main() runs it
    inside the error handling, after the settings are loaded (and, unless ``opens_store`` is False, the
    state directory opened)."""

    def callback(**params: Any) -> Invocation:
        here = click.get_current_context()
        root = here.find_root().params
        values = {name: list(value) if isinstance(value, tuple) else value for name, value in params.items()}
        return Invocation(tuple(here.command_path.split()[1:]), root["config"], root["log_level"], root["verbose"],
                          SimpleNamespace(**fixed, **values), command, opens_store)

    callback.__name__ = command.__name__
    callback.__doc__ = command.__doc__
    return callback


def expand_abbreviations(command: click.Command, ctx: click.Context, args: list[str], *,
                         interspersed: bool) -> list[str]:
    """argparse took a unique prefix of a long option (``--dry`` for ``--dry-run``); click does not. A group
    stops at its first positional (the sub-command): what follows is the sub-command's to read."""
    options = [p for p in command.get_params(ctx) if isinstance(p, click.Option)]
    takes_value = {o for p in options if not p.is_flag and not p.count for o in p.opts}
    longs = [o for p in options for o in (*p.opts, *p.secondary_opts) if o.startswith("--")]
    out = list(args)
    i = 0
    while i < len(out):
        word = out[i]
        if word == "--" or (not word.startswith("-") and not interspersed):
            break
        i += 1
        if not word.startswith("--"):
            continue
        name, equals, value = word.partition("=")
        if name not in longs:
            matches = [o for o in longs if o.startswith(name)]
            if len(matches) > 1:
                raise click.UsageError(f"ambiguous option: {name} could match {', '.join(matches)}", ctx)
            if matches:
                name = matches[0]
                out[i - 1] = name + equals + value
        if name in takes_value and not equals:
            if i >= len(out) or _looks_like_an_option(out[i]):
                many = name in getattr(command, "many_valued", ())  # a Group has none
                raise click.UsageError(f"argument {name}: expected {'at least' if many else ''} one argument"
                                       .replace("  ", " "), ctx)
            i += 1  # its value
    return out


def _looks_like_an_option(word: str) -> bool:
    """As argparse sees it: '-' alone and negative numbers are values."""
    if not word.startswith("-") or word == "-":
        return False
    try:
        float(word)
    except ValueError:
        return True
    return False


class Command(click.Command):
    """A leaf command: long options may be abbreviated and extra arguments are refused, as with argparse."""

    many_valued: tuple[str, ...] = ()  # options that took several values (argparse's nargs="+")

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        ctx.allow_extra_args = True
        rest = super().parse_args(ctx, expand_abbreviations(self, ctx, args, interspersed=True))
        if ctx.args:
            raise click.UsageError(f"unrecognized arguments: {' '.join(ctx.args)}", ctx.find_root())
        return rest


class Group(click.Group):
    """A command group: commands listed in the order declared, unknown or missing ones refused in argparse's
    words (``metavar`` names the missing word: COMMAND, ACTION, WHAT)."""

    command_class = Command

    def __init__(self, name: str | None = None, commands: Any = None, *, metavar: str = "ACTION",
                 callback: Callable[..., Any] | None = None, **kwargs: Any) -> None:
        def checked(*args: Any, **params: Any) -> Any:
            here = click.get_current_context()
            if here.invoked_subcommand is None:
                raise click.UsageError(f"the following arguments are required: {metavar}", here)
            return callback(*args, **params) if callback is not None else None

        super().__init__(name, commands, callback=checked, invoke_without_command=True, no_args_is_help=False,
                         subcommand_metavar=f"{metavar} [ARGS]...", **kwargs)
        self.metavar = metavar

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        return super().parse_args(ctx, expand_abbreviations(self, ctx, args, interspersed=False))

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(self.commands)

    def resolve_command(self, ctx: click.Context,
                        args: list[str]) -> tuple[str | None, click.Command | None, list[str]]:
        if args and args[0] not in self.commands and not args[0].startswith("-"):
            raise click.UsageError(f"argument {self.metavar}: {invalid_choice(args[0], self.commands)}", ctx)
        return super().resolve_command(ctx, args)


def invalid_choice(value: str, choices) -> str:
    return f"invalid choice: {value!r} (choose from {', '.join(map(repr, choices))})"


class Choice(click.ParamType):
    """argparse's ``choices`` (optionally lower-casing first, as ``type=str.lower`` did)."""

    name = "choice"

    def __init__(self, choices: tuple[str, ...], lower: bool = False) -> None:
        self.choices, self.lower = tuple(choices), lower

    def get_metavar(self, param: click.Parameter, ctx: click.Context | None = None) -> str:
        return "{" + ",".join(self.choices) + "}"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        text = value.lower() if self.lower else value
        if text not in self.choices:
            self.fail(invalid_choice(text, self.choices), param, ctx)
        return text


class Integer(click.ParamType):
    """argparse's ``type=int``, optionally bounded: ``between 1 and 1000``."""

    name = "integer"

    def __init__(self, low: int | None = None, high: int | None = None) -> None:
        self.low, self.high = low, high

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        if isinstance(value, int):
            return value
        try:
            number = int(value)
        except ValueError:
            self.fail(f"not a number: {value!r}" if self.low is not None else f"invalid int value: {value!r}",
                      param, ctx)
        if self.low is not None and self.high is not None and not self.low <= number <= self.high:
            self.fail(f"between {self.low} and {self.high}", param, ctx)
        return number


def print_table(rows: list[list[str]]) -> None:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())


_CLI_WORDS = (
    ("paste the private key of this certificate", "give --key FILE"),
    ("paste its private key", "give its private key with --key FILE"),
    ("paste the key in the private key field", "give the key with --key FILE"),
    ("paste it in the private key field", "give it with --key FILE"),
    ("browse again or paste the private key", "give --key FILE"),
    ("paste the private key", "give --key FILE"),
    ("paste the CA bundle your CA gave you", "give the CA bundle your CA gave you with --cabundle FILE"),
)


def for_the_command_line(message: str) -> str:
    """A message written for the form, said for the command line ("give --key FILE", not "paste the key")."""
    for form_words, cli_words in _CLI_WORDS:
        message = message.replace(form_words, cli_words)
    return message


def report(outcomes: list[InstallOutcome]) -> int:
    code = EXIT_OK
    for outcome in outcomes:
        if outcome.ok:
            print(outcome.message)
        else:
            code = EXIT_FAILED
            print(f"{outcome.service}: FAILED at {outcome.stage}: {outcome.message}", file=sys.stderr)
            if outcome.output:
                print(outcome.output, file=sys.stderr)
    return code


def refresh_first(ctx: Context) -> None:
    from ..operations.browse import MIN_INTERVAL, refresh_index

    try:
        refresh_index(ctx, if_older_than=MIN_INTERVAL)
    except FileSystemError as exc:  # a full disk: read what the index knows
        print(f"The index was not refreshed: {exc.message}", file=sys.stderr)
