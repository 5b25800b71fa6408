"""Fixtures shared by several test files."""

from __future__ import annotations

import socket

import pytest


@pytest.fixture()
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """No network at all: huggingface_hub offline, and any socket connection fails the test."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")

    def refuse(*args, **kwargs):
        raise AssertionError("a network connection was attempted")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
