"""The dmstore command line lives in the package `dmstore/cli/` (one module per command group) and installs as the `dmstore` script; this
file keeps `python cli.py …` and `from cli import cli` working in a checkout."""
from dmstore.cli import cli, main  # noqa: F401

if __name__ == "__main__":
    main()
