"""Graph API errors land in the right branch of the publish error tree, as issue 5 lists them."""

from __future__ import annotations

import json
import logging

import pytest

from pipeline.errors import (
    AuthExpired,
    PermanentPublishError,
    PublishError,
    QuotaExceeded,
    TransientPublishError,
)
from pipeline.publishers.graph_errors import (
    AnswerLost,
    ContainerNotReady,
    GraphError,
    GraphThrottled,
    PublishingRestricted,
    classify_graph_error,
    install_log_scrubber,
    retry_after_from_headers,
    scrub,
)


def classify(
    code: int | None, subcode: int | None = None, *, transient: bool = False, http: int = 400
) -> PublishError:
    error = GraphError("Meta says no", code=code, subcode=subcode, is_transient=transient)
    return classify_graph_error(error, action="media_publish", http_status=http)


@pytest.mark.parametrize("code", [1, 2, 341])
def test_transient_codes_are_retried(code: int) -> None:
    assert type(classify(code)) is TransientPublishError


@pytest.mark.parametrize("code", [4, 17, 32, 613, 80002])
def test_rate_limit_codes_are_throttling(code: int) -> None:
    assert isinstance(classify(code), GraphThrottled)


@pytest.mark.parametrize("subcode", [2207001, 2207003, 2207008, 2207032])
def test_transient_subcodes_are_retried(subcode: int) -> None:
    assert type(classify(-1, subcode)) is TransientPublishError


def test_not_ready_keeps_polling() -> None:
    assert isinstance(classify(9007, 2207027), ContainerNotReady)


@pytest.mark.parametrize("subcode", [2207004, 2207005, 2207009, 2207010, 2207023, 2207028, 2207040])
def test_permanent_subcodes_fail_with_metas_message(subcode: int) -> None:
    error = classify(36000, subcode, transient=True)  # the subcode wins over is_transient
    assert type(error) is PermanentPublishError
    assert "Meta says no" in str(error) and str(subcode) in str(error)


@pytest.mark.parametrize("code", [190, 10, 200, 250, 299])
def test_auth_codes_need_reauthorisation(code: int) -> None:
    assert isinstance(classify(code), AuthExpired)


def test_quota_subcode_is_quota_exceeded() -> None:
    assert isinstance(classify(9, 2207042), QuotaExceeded)


def test_spam_is_permanent_even_though_its_code_reads_as_throttling() -> None:
    error = classify(4, 2207051)
    assert isinstance(error, PublishingRestricted) and isinstance(error, PermanentPublishError)


def test_is_transient_is_honoured_for_codes_not_listed() -> None:
    assert type(classify(9999, transient=True)) is TransientPublishError
    assert type(classify(9999, transient=False)) is PermanentPublishError


def test_server_errors_without_a_known_code_leave_the_outcome_open() -> None:
    assert isinstance(classify(9999, http=503), AnswerLost)


def test_error_body_is_read_with_user_message_and_trace_id() -> None:
    body = {
        "error": {
            "message": "The image size is too large.",
            "code": 36000,
            "error_subcode": 2207004,
            "is_transient": False,
            "error_user_msg": "It should be less than 8 MiB.",
            "fbtrace_id": "A6LJ",
        }
    }
    error = GraphError.from_body(body)
    assert error is not None
    assert error.describe() == (
        "The image size is too large. It should be less than 8 MiB. "
        "(code 36000, subcode 2207004, fbtrace_id A6LJ)"
    )
    assert GraphError.from_body({"data": []}) is None and GraphError.from_body("x") is None


def test_retry_after_comes_from_metas_usage_header() -> None:
    usage = {"1784": [{"type": "instagram", "estimated_time_to_regain_access": 7}]}
    assert retry_after_from_headers({"x-business-use-case-usage": json.dumps(usage)}) == 420
    assert retry_after_from_headers({"x-business-use-case-usage": "not json"}) is None
    assert retry_after_from_headers({}) is None


def test_tokens_are_scrubbed_from_text_and_httpx_logs(caplog: pytest.LogCaptureFixture) -> None:
    text = "GET /v24.0/1?fields=id&access_token=IGAAsecret&x=1 client_secret=abc"
    assert scrub(text) == "GET /v24.0/1?fields=id&access_token=***&x=1 client_secret=***"
    assert scrub("raw IGAAsecret here", ["IGAAsecret"]) == "raw *** here"
    install_log_scrubber()
    install_log_scrubber()  # idempotent
    with caplog.at_level(logging.INFO, logger="httpx"):
        logging.getLogger("httpx").info("HTTP Request: %s", "https://x/?access_token=IGAAsecret")
    assert "IGAAsecret" not in caplog.text and "access_token=***" in caplog.text
    assert len(logging.getLogger("httpx").filters) == 1
