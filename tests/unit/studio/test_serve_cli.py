"""``ryla serve``: a port already taken is one ``error:`` line and exit code 2, not a trace."""

from __future__ import annotations

import socket

from tests.unit.conftest import Invoke


def test_a_port_in_use_is_one_error_line(ryla: Invoke) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        result = ryla("serve", "--port", str(port))
    assert result.exit_code == 2
    assert result.output.strip().startswith(f"error: cannot listen on 127.0.0.1:{port}")
