"""The pipeline's tables as typed SQLAlchemy 2 models, and the post state machine.

Importing this package registers every table on ``Base.metadata`` (what Alembic compares).
"""

from models.access import (
    ApiToken,
    IdempotentRequest,
    LoginAttempt,
    Role,
    StudioSession,
    TokenScope,
    User,
)
from models.asset import Asset, AssetKind
from models.base import Base, UTCDateTime, utcnow
from models.calendar import ContentCalendar, SlotRule
from models.influencer import Character, Influencer, SeedPolicy
from models.post import (
    IN_PROGRESS,
    TRANSITIONS,
    MediaType,
    Post,
    PostEvent,
    PostStatus,
    can_move,
)
from models.publishing import AttemptStatus, PublishAttempt, PublishTarget, TargetKind

__all__ = [
    "IN_PROGRESS",
    "TRANSITIONS",
    "ApiToken",
    "Asset",
    "AssetKind",
    "AttemptStatus",
    "Base",
    "Character",
    "ContentCalendar",
    "IdempotentRequest",
    "Influencer",
    "LoginAttempt",
    "MediaType",
    "Post",
    "PostEvent",
    "PostStatus",
    "PublishAttempt",
    "PublishTarget",
    "Role",
    "SeedPolicy",
    "SlotRule",
    "StudioSession",
    "TargetKind",
    "TokenScope",
    "UTCDateTime",
    "User",
    "can_move",
    "utcnow",
]
