"""Publishers: where a ready post goes (outbox folder, signed webhook, Instagram Graph API)."""
