"""The ``zoo`` command line. It parses arguments and delegates to the library.

Commands import what they need inside their bodies, so ``zoo --help`` never loads torch.
"""

from __future__ import annotations

import inspect

import click

from zoo import __version__


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="uncertainty-zoo")
def main() -> None:
    """uncertainty-zoo: pretrained, uncertainty-aware PyTorch classifiers."""


@main.command("list")
@click.argument("pattern", default="*")
def list_command(pattern: str) -> None:
    """List the registered models whose names match PATTERN (wildcards: * ? [...])."""
    from zoo.registry import list_models, model_entrypoint

    names = list_models(pattern)
    if not names:
        known = ", ".join(list_models())
        raise click.ClickException(f"no model matches {pattern!r}; known models: {known}")
    width = max(len(name) for name in names)
    for name in names:
        summary = (inspect.getdoc(model_entrypoint(name)) or "").partition("\n")[0]
        click.echo(f"{name:<{width}}  {summary}".rstrip())


if __name__ == "__main__":
    main()
