"""`svcssl serve`: the web panel over HTTPS on the panel service's own certificate."""

from __future__ import annotations

from types import SimpleNamespace

import click

from ..deploy.layout import installed_certificate_path, installed_key_path
from ..errors import ConfigError
from ..operations.context import Context
from ..operations.recovery import require_sound_state
from ..operations.users import ensure_root
from .command import EXIT_OK, Command, runs


@click.command("serve", cls=Command, help="run the web panel over HTTPS on the panel service's certificate")
@click.option("--listen", metavar="HOST:PORT", help="default: [server] listen")
@runs
def cmd_serve(ctx: Context, args: SimpleNamespace) -> int:
    from ..app import create_app
    from ..maintenance.scheduler import start_scheduler
    from ..web.server import PanelCertificate, PanelServer, bind_address

    panel = next((s for s in ctx.settings.enabled_services() if s.kind == "panel"), None)
    if panel is None:
        raise ConfigError("`svcssl serve` needs an enabled service of kind \"panel\" (the panel's own certificate).")
    require_sound_state(ctx.settings)  # PRAGMA quick_check: a damaged database is said before serving
    listen = args.listen or ctx.settings.server.listen
    host, port = bind_address(listen)
    password = ensure_root(ctx)
    certificate = PanelCertificate(installed_certificate_path(panel), installed_key_path(panel))
    server = PanelServer(listen, certificate)
    app = create_app(ctx.settings, panel_control=server)
    shown = ctx.settings.server.hostname if host in ("0.0.0.0", "::") else host
    print(f"svcssl panel: https://{shown}:{port}/  (state: {ctx.settings.server.state_dir})", flush=True)
    if host in ("0.0.0.0", "::"):
        print(f"              https://127.0.0.1:{port}/ from this machine", flush=True)
    if password:
        print(f"First start: log in as root with the password {password}  (shown only once; change it with "
              f"`svcssl user passwd root --password-file FILE`)", flush=True)
    scheduler = start_scheduler(ctx.settings)
    try:
        server.run(app)
    finally:
        scheduler.shutdown(wait=False)
    return EXIT_OK
