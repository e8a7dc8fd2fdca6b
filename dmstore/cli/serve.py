"""`dmstore serve`: the local web explorer over one snapshot of a store."""
from __future__ import annotations

import click

from .base import Command
from .options import store_arg


@click.command("serve", cls=Command)
@store_arg
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to bind; anything but loopback exposes the store to the network (a warning says so).")
@click.option("--port", type=click.IntRange(0, 65535), default=8765, show_default=True, help="Port (0: any free one).")
@click.option("--fit", "fit_id", type=int, default=None, metavar="FIT",
              help="Default fit of the target and leakage lists (default: the newest lasso fit).")
@click.option("--images", type=click.Path(exists=True, file_okay=False), default=None, metavar="DIR",
              help="Folder of {example_id}.png pictures, for stores whose recipe cannot draw its examples.")
@click.option("--timeout", "timeout_s", type=click.FloatRange(0.1), default=10.0, show_default=True,
              help="Seconds a /sql query may run before it is cancelled.")
@click.option("--open", "open_browser", is_flag=True, help="Open the explorer in the default web browser.")
def serve_cmd(store, host, port, fit_id, images, timeout_s, open_browser):
    """Explore a store in the browser: the method table and cost–quality plot, every target's
    strongest positive and negative training examples for every method side by side, their
    agreement, predicted vs actual margins, data support, counterfactuals, leakage, and a
    read-only SQL box. Read-only: nothing is written to the store; Ctrl-C stops it.

    \b
      dmstore serve demo-out/store
      dmstore serve runs --fit 3 --port 9000 --open
      dmstore serve runs --images ./pngs          # runs/…/{example_id}.png
    """
    import socket
    import webbrowser

    import uvicorn

    from ..serve.app import create_app
    app = create_app(store, fit=fit_id, images=images, timeout_s=timeout_s)
    if host not in ("127.0.0.1", "localhost", "::1"):
        click.echo(f"Warning: binding {host}: anyone who can reach this address can read the whole store "
                   f"(use the default 127.0.0.1 to keep it on this machine)", err=True)
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as e:
        raise click.UsageError(f"--host {host} --port {port}: cannot bind ({e.strerror}); choose another port "
                               f"(--port 0 picks a free one)") from None
    url = f"http://{host if ':' not in host else '[' + host + ']'}:{sock.getsockname()[1]}/"
    click.echo(f"dmstore explorer of {store} (version {app.state.snapshot.version}) at {url}  (Ctrl-C stops it)",
               err=True)
    if open_browser:
        webbrowser.open(url)
    config = uvicorn.Config(app, log_level="warning", access_log=False)
    uvicorn.Server(config).run(sockets=[sock])
