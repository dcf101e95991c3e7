"""``ryla model download``: the Z-Image-Turbo weights for GPU workers.

Needs the ``gpu`` extra and internet; weights go to the HF cache or ``RYLA_ZIMAGE_PATH``.
"""

from __future__ import annotations

import click

from admin.context import CliContext

__all__ = ["model", "model_download"]


@click.group()
def model() -> None:
    """Model weights for the zimage generator."""


@model.command("download")
@click.pass_obj
def model_download(obj: CliContext) -> None:
    """Download Z-Image-Turbo into the HF cache (or RYLA_ZIMAGE_PATH); needs internet."""
    try:
        from pipeline.generators import zimage
    except ImportError as exc:
        raise click.ClickException(
            f"the GPU extra is not installed ({exc.name}): pip install 'ryla-pipeline[gpu]'"
        ) from None
    click.echo(f"downloading {obj.settings.zimage_model_id} …")
    click.echo(f"weights in {zimage.download_weights(obj.settings)}")
