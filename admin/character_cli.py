"""``ryla character add``: the face, style and seed policy an influencer's images keep.

A LoRA must be a ``.safetensors`` file; its trigger word joins the prompt.
"""

from __future__ import annotations

import click

from admin.context import CliContext
from models import SeedPolicy
from pipeline.planning.influencers import (
    CharacterIn,
    create_character,
)

__all__ = ["character", "character_add"]


@click.group()
def character() -> None:
    """Characters: the face, style and seed policy an influencer's images keep."""


@character.command("add")
@click.argument("handle")
@click.argument("name")
@click.option("--identity", "identity_prompt", default="", help="Fixed identity prompt.")
@click.option("--age", default="")
@click.option("--ethnicity", default="")
@click.option("--hair", default="")
@click.option("--eyes", default="")
@click.option("--body", default="")
@click.option("--features", default="", help="Distinctive features (freckles, tattoo …).")
@click.option("--outfit", "default_outfit", default="", help="Default outfit.")
@click.option("--negative", "negative_prompt", default="", help="Negative prompt.")
@click.option("--trigger-word", default="", help="The LoRA's trigger word.")
@click.option("--lora", "lora_path", default=None, help="Path to a .safetensors LoRA.")
@click.option("--lora-scale", type=click.FloatRange(0, 2), default=1.0, show_default=True)
@click.option(
    "--seed-policy",
    type=click.Choice([p.value for p in SeedPolicy]),
    default=SeedPolicy.FIXED.value,
    show_default=True,
)
@click.option("--seed", type=int, default=0, show_default=True)
@click.pass_obj
def character_add(obj: CliContext, handle: str, seed_policy: str, **fields: object) -> None:
    """Add a character to an influencer."""
    data = CharacterIn(seed_policy=SeedPolicy(seed_policy), **fields)  # type: ignore[arg-type]
    with obj.session() as session:
        created = create_character(session=session, handle=handle, data=data)
        click.echo(f"character {created.name} added to {handle} (id {created.id})")
