"""Fakes of the outside world for tests: a Graph API and a media host, both on loopback."""
