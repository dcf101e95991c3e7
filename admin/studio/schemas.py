"""The API's request and response bodies (pydantic): what the OpenAPI schema documents.

Shapes only: every rule about values lives in the pipeline's planning code, shared with the CLI.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from models import PostStatus, SeedPolicy, TargetKind

__all__ = [
    "AttemptOut",
    "CalendarIn",
    "CalendarOut",
    "CalendarPatch",
    "CaptionIn",
    "CharacterIn",
    "CharacterOut",
    "EventOut",
    "HoldOut",
    "ImageOut",
    "ImportOut",
    "InfluencerIn",
    "InfluencerOut",
    "PostDetailOut",
    "PostIn",
    "PostOut",
    "PostPageOut",
    "RejectIn",
    "ResolveIn",
    "SecretsIn",
    "StatusOut",
    "TargetCheckOut",
    "TargetOut",
    "TriggerOut",
]

_Text = Field(default="", max_length=2000)
_Strict = ConfigDict(extra="forbid")


class ImageOut(BaseModel):
    format: str
    width: int
    height: int
    sha256: str
    url: str  # signed and expiring: fetch it, do not store it


class PostOut(BaseModel):
    id: int
    handle: str
    status: PostStatus
    publish_at: datetime
    local_time: str
    scene: str
    environment: str
    media_type: str
    image_count: int
    caption: str
    last_error: str | None
    thumbnail_url: str | None


class PostPageOut(BaseModel):
    items: list[PostOut]
    next_cursor: str | None = Field(description="Pass as ?cursor= for the next page.")


class EventOut(BaseModel):
    at: datetime
    from_status: str | None
    to_status: str
    actor: str
    detail: str


class AttemptOut(BaseModel):
    id: str
    target_kind: str
    status: str
    started_at: datetime
    finished_at: datetime | None
    external_id: str | None
    error: str | None


class PostDetailOut(PostOut):
    prompt: str
    negative_prompt: str
    seed: int | None
    alt_text: str
    hashtags: list[str]
    formats: list[str]
    generation: int
    generator: str | None
    calendar: str | None
    target: str | None
    external_id: str | None
    permalink: str | None
    published_at: datetime | None
    images: list[ImageOut]
    thumbnail: ImageOut | None
    events: list[EventOut]
    attempts: list[AttemptOut]


class TriggerOut(BaseModel):
    post_id: int
    status: PostStatus
    queued: bool = Field(description="False when the broker was unreachable: the beat re-sends.")


class RejectIn(BaseModel):
    model_config = _Strict
    note: str = Field(min_length=1, max_length=1000)


class CaptionIn(BaseModel):
    model_config = _Strict
    caption: str = Field(max_length=5000)


class ResolveIn(BaseModel):
    model_config = _Strict
    published: bool
    media_id: str | None = Field(default=None, max_length=200)


class PostIn(BaseModel):
    model_config = _Strict
    handle: str = Field(max_length=30)
    at: str = Field(
        max_length=60,
        description="'YYYY-MM-DD HH:MM' in the influencer's zone, 'now', '+30m' or ISO 8601.",
    )
    character: str | None = Field(default=None, max_length=100)
    scene: str = Field(default="", max_length=64)
    environment: str = Field(default="", max_length=64)
    outfit: str = _Text
    prompt: str = _Text
    caption: str = Field(default="", max_length=5000)
    hashtags: list[str] = Field(default_factory=list, max_length=60)
    formats: list[str] = Field(default_factory=lambda: ["feed_portrait"], max_length=4)
    lead_minutes: int = Field(default=30, ge=0, le=1440)
    images: int = Field(default=1, ge=1, le=10)


class InfluencerIn(BaseModel):
    model_config = _Strict
    handle: str = Field(max_length=30)
    display_name: str = Field(min_length=1, max_length=100)
    timezone: str = Field(max_length=64)
    persona: str = _Text
    voice: str = _Text
    caption_template: str = Field(default="{text}", max_length=2200)
    hashtags: list[str] = Field(default_factory=list, max_length=30)
    approval_required: bool = False


class InfluencerOut(BaseModel):
    id: int
    handle: str
    display_name: str
    timezone: str
    approval_required: bool
    active: bool
    hashtags: list[str]


class CharacterIn(BaseModel):
    model_config = _Strict
    name: str = Field(min_length=1, max_length=100)
    identity_prompt: str = _Text
    age: str = Field(default="", max_length=40)
    ethnicity: str = Field(default="", max_length=80)
    hair: str = Field(default="", max_length=120)
    eyes: str = Field(default="", max_length=80)
    body: str = Field(default="", max_length=120)
    features: str = _Text
    default_outfit: str = _Text
    negative_prompt: str = _Text
    trigger_word: str = Field(default="", max_length=64)
    lora_path: str | None = Field(default=None, max_length=1000)
    lora_scale: float = Field(default=1.0, ge=0, le=2)
    seed_policy: SeedPolicy = SeedPolicy.FIXED
    seed: int = Field(default=0, ge=0, lt=2**31)


class CharacterOut(BaseModel):
    id: int
    handle: str
    name: str
    seed_policy: SeedPolicy
    seed: int
    lora_path: str | None
    lora: str = Field(description="none | found | missing: whether this machine has the file.")


class _RuleFields(BaseModel):
    """A slot rule as given (days + times, or an RRULE) and the calendar's settings; a field left
    out keeps its value on an edit, or its default."""

    model_config = _Strict
    days: str | None = Field(default=None, max_length=100)
    times: str | None = Field(default=None, max_length=200)
    rrule: str | None = Field(default=None, max_length=500)
    start: str | None = Field(default=None, max_length=20)
    scenes: list[str] | None = Field(default=None, max_length=50)
    environments: list[str] | None = Field(default=None, max_length=50)
    outfits: list[str] | None = Field(default=None, max_length=50)
    caption_templates: list[str] | None = Field(default=None, max_length=50)
    caption: str | None = Field(default=None, max_length=2200)
    hashtags: list[str] | None = Field(default=None, max_length=30)
    formats: list[str] | None = Field(default=None, max_length=4)
    lead_minutes: int | None = Field(default=None, ge=-100_000, le=100_000)
    horizon_days: int | None = Field(default=None, ge=-100_000, le=100_000)


class CalendarIn(_RuleFields):
    """A new calendar (or another rule for an existing one) with its slot rule and settings."""

    handle: str = Field(max_length=30)
    name: str = Field(min_length=1, max_length=100)
    character: str | None = Field(default=None, max_length=100)


class CalendarPatch(_RuleFields):
    """Only the fields given change; ``rule`` picks the rule when the calendar has several."""

    rule: int | None = Field(default=None, ge=1, lt=2**31)


class CalendarOut(BaseModel):
    handle: str
    name: str
    state: str
    rules: list[str]
    planned: int
    next_post: str


class HoldOut(BaseModel):
    changed: bool
    held: int = 0
    returned: int = 0
    missed: int = 0
    late: int = 0
    cancelled: int = 0


class ImportOut(BaseModel):
    posts: int
    rules: int
    calendars: int


class TargetOut(BaseModel):
    name: str
    kind: TargetKind
    handle: str | None
    needs_reauth: bool
    token_expires_at: str | None


class SecretsIn(BaseModel):
    """New secrets for a target: ``access_token`` (Instagram) or ``url`` + ``signing_key``."""

    model_config = _Strict
    access_token: str | None = Field(default=None, max_length=2000)
    url: str | None = Field(default=None, max_length=2000)
    signing_key: str | None = Field(default=None, max_length=500)


class TargetCheckOut(BaseModel):
    name: str
    ok: bool
    detail: str
    quota_left: int | None = None


class StatusOut(BaseModel):
    by_state: dict[str, int]
    needs_person: int
    next_up: list[PostOut]
    generator: str | None
    generator_preview: bool | None
    generator_setting: str
    targets_needing_reauth: int
    queues: dict[str, int | None]
    workers: list[str]
