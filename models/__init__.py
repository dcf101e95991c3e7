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
from models.notify import (
    Alert,
    ChannelKind,
    Notification,
    NotificationStatus,
    NotifyChannel,
    ScanCursor,
)
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
from models.worker import WorkerHeartbeat

__all__ = [
    "IN_PROGRESS",
    "TRANSITIONS",
    "Alert",
    "ApiToken",
    "Asset",
    "AssetKind",
    "AttemptStatus",
    "Base",
    "ChannelKind",
    "Character",
    "ContentCalendar",
    "IdempotentRequest",
    "Influencer",
    "LoginAttempt",
    "MediaType",
    "Notification",
    "NotificationStatus",
    "NotifyChannel",
    "Post",
    "PostEvent",
    "PostStatus",
    "PublishAttempt",
    "PublishTarget",
    "Role",
    "ScanCursor",
    "SeedPolicy",
    "SlotRule",
    "StudioSession",
    "TargetKind",
    "TokenScope",
    "UTCDateTime",
    "User",
    "WorkerHeartbeat",
    "can_move",
    "utcnow",
]
