"""`svcssl csr`: a new private key kept on this server and a certificate signing request."""

from __future__ import annotations

import sys
from types import SimpleNamespace

import click

from ..operations.context import Context
from ..settings import KEY_TYPES
from .command import CLI_ACTOR, EXIT_OK, Choice, Command, Group, expand_abbreviations, runs


class DomainsCommand(Command):
    """argparse's ``--domains NAME [NAME ...]``: the names right after --domains are its values (click reads
    them as extra arguments); a name anywhere else is refused as before."""

    many_valued = ("--domains",)

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        words = expand_abbreviations(self, ctx, args, interspersed=True)
        stray, taking, i = [], False, 0
        while i < len(words):
            word = words[i]
            if word == "--":
                stray += words[i + 1:]
                break
            if word.startswith("-"):
                taking = word == "--domains"
                i += 2 if word == "--key-type" else 1
                continue
            if not taking:
                stray.append(word)
            i += 1
        if stray:
            raise click.UsageError(f"unrecognized arguments: {' '.join(stray)}", ctx.find_root())
        return super().parse_args(ctx, words)


@click.group("csr", cls=Group, metavar="ACTION",
             help="a new private key (kept on this server) and a certificate signing request")
def csr() -> None:
    pass


@csr.command("create", cls=DomainsCommand, help="print a PEM CSR for the names; the key stays in svcssl's key store")
@click.option("--domains", required=True, metavar="NAME [NAME ...]", help="the first is the Common Name")
@click.argument("more_domains", nargs=-1, metavar="")
@click.option("--key-type", type=Choice(KEY_TYPES), help="default: [certificates] key_type")
@runs
def cmd_csr_create(ctx: Context, args: SimpleNamespace) -> int:
    from ..operations.csr import create_csr

    domains = [args.domains, *args.more_domains]  # `--domains A B C`, as argparse's nargs="+" took them
    result = create_csr(ctx, domains, args.key_type, actor=CLI_ACTOR)
    print(f"Key {result.key_label} kept in {result.key_path} (0600, never shown). When the CA's certificate comes "
          f"back: svcssl install SERVICE --cert FILE", file=sys.stderr)
    print(result.csr_pem, end="")
    return EXIT_OK
