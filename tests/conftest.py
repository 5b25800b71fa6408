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


SYNTHETIC_LABEL = "tiny-vit_tiny_clip"  # sa2va_st.testing.build.FEATURES_LABEL


@pytest.fixture(scope="session")
def synthetic_build(tmp_path_factory) -> dict:
    """The synthetic world built as far as the manifests (`sa2va_st.testing.build`); read-only for tests:
    copy before changing anything."""
    from sa2va_st.testing.build import FEATURES_LABEL, build_synthetic_manifests

    assert FEATURES_LABEL == SYNTHETIC_LABEL
    return build_synthetic_manifests(tmp_path_factory.mktemp("synthetic_build"), seed=0)
