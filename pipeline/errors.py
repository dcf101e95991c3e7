"""Every error the pipeline raises on purpose, in one tree; each message is one line a person
can act on (what was wrong, with which value, what to do).

RylaError
├── InputError              a person's input is wrong: CLI exit 2, API 422; nothing is written;
│   │                       ``field`` names the input field when one is to blame
│   ├── ScheduleError       a zone, day, time or recurrence rule
│   ├── SettingsError       a RYLA_ setting the pipeline cannot run with
│   ├── PlanError           a feed plan asked for the impossible
│   └── ImportRejected      an import file's rows (``planning.imports``): every error, by row
├── RuleBroken              a stored slot rule cannot be expanded: its calendar is marked broken
├── PermanentError          another try cannot fix it: the post fails at once with the message
│   ├── PromptError         a prompt names a preset that does not exist
│   ├── CaptionError        a caption breaks Instagram's limits or its template cannot be filled
│   ├── RenderError         the image or format cannot be rendered
│   ├── StorageError        a storage key is malformed or escapes the storage root
│   ├── MediaUrlError       a media URL is malformed, expired or not ours
│   ├── SecretsError        secrets cannot be opened with the configured key
│   └── GenerationError     the generator failed
│       └── WeightsMissing  real weights were asked for and are not on this machine
├── PublishError            publishing did not complete (``publishers``)
│   ├── TransientPublishError   retry later, same attempt (network, 5xx)
│   │   └── Throttled           the target asks us to slow down: rescheduled, no try spent
│   ├── PermanentPublishError   the post is wrong for the target (also a PermanentError)
│   ├── AuthExpired             the target needs re-authorisation; its posts wait
│   ├── QuotaExceeded           the target's window is full; retried at ``retry_at``
│   ├── OutcomeUnknown          it may or may not be out there: a person decides
│   ├── PreviewHeld             placeholder images, a target that takes none: the post waits
│   └── TargetUnusable          nothing was sent: the target needs a person
├── NotifyError             a notification could not be delivered (``notify``)
│   ├── NotDelivered        it surely did not arrive; ``retry`` says whether another try may
│   └── DeliveryUnknown     it may have arrived (the answer was lost): never sent again
├── Unreachable             the database went away mid-step: nothing settled, no try spent;
│                           the task resumes the claims it names once the database is back
└── LeaseLost / InvalidTransition   internal: a run lost its claim / a bug asked for a bad move

Instagram's own subclasses (``GraphThrottled``, ``AnswerLost`` …) live in
``publishers.graph_errors``. The builtin bases (``ValueError``, ``RuntimeError``) are kept so
that callers catching those still do.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

__all__ = [
    "AuthExpired",
    "CaptionError",
    "DeliveryUnknown",
    "GenerationError",
    "InputError",
    "InvalidTransition",
    "LeaseLost",
    "MediaUrlError",
    "NotDelivered",
    "NotFound",
    "NotifyError",
    "OutcomeUnknown",
    "PermanentError",
    "PermanentPublishError",
    "PlanError",
    "PreviewHeld",
    "PromptError",
    "PublishError",
    "QuotaExceeded",
    "RenderError",
    "RuleBroken",
    "RylaError",
    "ScheduleError",
    "SecretsError",
    "SettingsError",
    "StorageError",
    "TargetUnusable",
    "Throttled",
    "TransientPublishError",
    "Unreachable",
    "WeightsMissing",
]


class RylaError(Exception):
    """The root: anything the pipeline raises on purpose."""


# --- input ----------------------------------------------------------------------------------


class InputError(RylaError, ValueError):
    """Input a person gave is wrong; the message names the field, the value and the fix.

    ``field`` is the name of the input field to blame (as the input dataclasses spell it), for
    doors that point at it (the API's 422 body); ``None`` when no single field is.
    """

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class NotFound(InputError):
    """What the input names does not exist (an influencer, a post, a target …): the API answers
    404 when the name is in the URL's path, 422 when it is a value in the body or query."""


class ScheduleError(InputError):
    """A zone, day, time or recurrence rule in a schedule is not valid."""


class SettingsError(InputError):
    """A setting has a value the pipeline cannot run with."""


class PlanError(InputError):
    """The plan cannot be made for these arguments (unknown influencer, bad window)."""


class RuleBroken(RylaError, RuntimeError):
    """A stored slot rule cannot be expanded (written before today's checks, or by hand).

    The beat marks its calendar broken with ``reason`` and plans the others; an edit that
    fixes the rule clears the mark.
    """

    def __init__(self, rule_id: int | None, reason: str) -> None:
        # rule_id None: the calendar's own settings (its formats) are what cannot be planned.
        whole = reason if rule_id is None else f"rule {rule_id} cannot be planned: {reason}"
        super().__init__(whole)
        self.rule_id = rule_id
        self.reason = reason


# --- permanent: the post fails at once ------------------------------------------------------


class PermanentError(RylaError):
    """Another try cannot fix this; the post fails with the message."""


class PromptError(PermanentError, ValueError):
    """A prompt part names a preset that does not exist."""


class CaptionError(PermanentError, ValueError):
    """A caption breaks a limit or its template cannot be filled."""


class RenderError(PermanentError, ValueError):
    """The source image or the requested format cannot be rendered; the message says what to do."""


class StorageError(PermanentError, ValueError):
    """A storage key is malformed or points outside the storage root."""


class MediaUrlError(PermanentError, ValueError):
    """A media URL is malformed, expired or not signed by us."""


class SecretsError(PermanentError, ValueError):
    """Secrets cannot be encrypted or decrypted with the configured key."""


class GenerationError(PermanentError, RuntimeError):
    """Generation failed; the message says why in one line a person can act on."""


class WeightsMissing(GenerationError):
    """Real weights were asked for and are not on this machine."""


# --- publishing -----------------------------------------------------------------------------


class PublishError(RylaError, RuntimeError):
    """Publishing did not complete."""


class TransientPublishError(PublishError):
    """Worth retrying later with the same attempt."""


class Throttled(TransientPublishError):
    """The target asks us to slow down; ``retry_after`` seconds when it says how long."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class PermanentPublishError(PublishError, PermanentError):
    """Retrying will not help: the post itself must change."""


class AuthExpired(PublishError):
    """The target's credentials are no longer accepted."""


class QuotaExceeded(PublishError):
    """The target's publishing window is full until ``retry_at``."""

    def __init__(self, message: str, retry_at: datetime | None = None) -> None:
        super().__init__(message)
        self.retry_at = retry_at


class OutcomeUnknown(PublishError):
    """The external effect cannot be verified; never repeat it automatically."""


class PreviewHeld(PublishError):
    """The images are the preview generator's placeholders and the target takes none."""


class TargetUnusable(PublishError):
    """Nothing was sent: the target needs a person (settings, secrets, a new token)."""


# --- notifications --------------------------------------------------------------------------


class NotifyError(RylaError, RuntimeError):
    """A notification could not be delivered."""


class NotDelivered(NotifyError):
    """It surely did not arrive (refused, or no connection); ``retry``: another try may work."""

    def __init__(self, message: str, *, retry: bool) -> None:
        super().__init__(message)
        self.retry = retry


class DeliveryUnknown(NotifyError):
    """It may have arrived and the answer was lost: sending again could tell a person twice."""


# --- outages -------------------------------------------------------------------------------


class Unreachable(RylaError, RuntimeError):
    """The database went away while a step ran: nothing could be settled, and nothing should be
    (the work only waited), so no try is spent. ``resume`` maps each interrupted post to the
    lease owner to resume under once the database answers again."""

    def __init__(self, resume: Mapping[int, str]) -> None:
        super().__init__(f"database unreachable: posts {sorted(resume)} resume once it is back")
        self.resume = dict(resume)


# --- internal -------------------------------------------------------------------------------


class LeaseLost(RylaError, RuntimeError):
    """The lease moved on (expired and reassigned) while this run worked: its result is dropped."""


class InvalidTransition(RylaError, RuntimeError):
    """Code asked for a move the state machine does not allow: a bug, never input."""
