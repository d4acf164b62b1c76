"""The `svcssl` command: click command groups, one module per group.

Exit codes: 0 done; 2 input refused (nothing changed on disk), a usage error, or a file system that cannot
take the write (full, read-only: refused before anything was written); 1 deployment failed (and was rolled
back) or another operational failure (a damaged state database).
"""

from __future__ import annotations

import os
import sys
from typing import Sequence

import click

from .. import __version__
from ..errors import ConfigError, FileSystemError, InputError, SvcsslError
from ..filesystem import from_os_error
from ..logformat import LEVELS, configure_logging, error_prefix
from ..operations.context import open_context
from ..operations.firstrun import ensure_certificates
from ..settings import load_settings
from . import csr, dane, discovery, maintenance, serve, services, state, users
from .command import EXIT_FAILED, EXIT_INPUT, EXIT_OK, Choice, Group, Invocation, for_the_command_line

__all__ = ["EXIT_FAILED", "EXIT_INPUT", "EXIT_OK", "main", "parse", "svcssl"]


@click.group("svcssl", cls=Group, metavar="COMMAND", context_settings={"help_option_names": ["-h", "--help"]},
             help="Keep the TLS certificates of this server's services valid.")
@click.option("--config", metavar="CONFIG",
              help="TOML configuration file (default: $SVCSSL_CONFIG, else the embedded default)")
@click.option("-v", "--verbose", is_flag=True, help="log each action to stderr (--log-level info)")
@click.option("--log-level", type=Choice(LEVELS, lower=True),
              help="log records at this level and above to stderr (default: warning, info with -v); "
                   "under systemd they go to the journal with their priority")
@click.version_option(__version__, "--version", prog_name="svcssl", message="%(prog)s %(version)s")
def svcssl(**options: object) -> None:
    """The global options are read back from the root context by each command's Invocation."""


for command in (*services.COMMANDS[:4], csr.csr, *services.COMMANDS[4:], serve.cmd_serve, maintenance.maintenance,
                *users.GROUPS, *discovery.GROUPS, state.state, dane.dane):
    svcssl.add_command(command)


def _usage_message(exc: click.UsageError) -> str:
    """click's usage errors in the words argparse used."""
    if isinstance(exc, click.MissingParameter) and exc.param is not None:
        param = exc.param
        name = param.opts[0] if isinstance(param, click.Option) else (param.metavar or param.name)
        return f"the following arguments are required: {name}"
    if isinstance(exc, click.NoSuchOption):
        return f"unrecognized arguments: {exc.option_name}"
    if isinstance(exc, click.BadOptionUsage) and "requires an argument" in exc.message:
        return f"argument {exc.option_name}: expected one argument"
    if isinstance(exc, click.BadParameter) and exc.param is not None:
        param = exc.param
        name = "/".join(param.opts) if isinstance(param, click.Option) else (param.metavar or param.name)
        return f"argument {name}: {exc.message}"
    return exc.message


def parse(argv: Sequence[str] | None = None) -> Invocation:
    """The command line parsed; as argparse did, a usage error prints the usage and exits 2, and --help and
    --version print and exit 0 (SystemExit)."""
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        result = svcssl.main(args, prog_name="svcssl", standalone_mode=False)
    except click.UsageError as exc:
        message = _usage_message(exc)
        where = exc.ctx.find_root() if exc.ctx is not None and message.startswith("unrecognized") else exc.ctx
        if where is not None:
            print(where.get_usage(), file=sys.stderr)
        print(f"{where.command_path if where is not None else 'svcssl'}: error: {message}", file=sys.stderr)
        raise SystemExit(EXIT_INPUT) from None
    except click.exceptions.Exit as exc:
        raise SystemExit(exc.exit_code) from None
    if not isinstance(result, Invocation):  # --help or --version: printed, done
        raise SystemExit(result if isinstance(result, int) else EXIT_OK)
    return result


def main(argv: Sequence[str] | None = None) -> int:
    invocation = parse(argv)
    configure_logging(invocation.log_level or ("info" if invocation.verbose else "warning"), sys.stderr)
    if invocation.command == ("check",) and invocation.args.nagios:  # the plugin API's exit codes, read-only
        from .monitoring import run_plugin
        return run_plugin(invocation)
    settings = None
    try:
        settings = load_settings(invocation.config)
        if not invocation.opens_store:
            return invocation.action(settings, invocation.args)
        ctx = open_context(settings)
        ensure_certificates(ctx)
        return invocation(ctx)
    except FileSystemError as exc:  # the disk refused a write, or would: nothing was changed
        print(f"{error_prefix(sys.stderr)}svcssl: {exc.message}", file=sys.stderr)
        return EXIT_INPUT
    except ConfigError as exc:
        print(f"{error_prefix(sys.stderr)}svcssl: configuration error: {exc.message}", file=sys.stderr)
        return EXIT_INPUT
    except InputError as exc:
        print(f"{error_prefix(sys.stderr)}svcssl: {for_the_command_line(exc.message)}", file=sys.stderr)
        return EXIT_INPUT
    except SvcsslError as exc:
        print(f"{error_prefix(sys.stderr)}svcssl: {exc.message}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print("svcssl: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. `svcssl list | head`: the reader is gone, nothing to report
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_OK
    except OSError as exc:  # a write in the state directory the disk refused, said in words
        said = from_os_error(exc, exc.filename or (settings.server.state_dir if settings else None))
        if said is None:
            raise
        print(f"{error_prefix(sys.stderr)}svcssl: {said.message}", file=sys.stderr)
        return EXIT_INPUT
