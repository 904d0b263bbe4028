"""Shared fixtures: the real-SDK samples in data/ and helpers to derive situations from them."""

from __future__ import annotations

import json
import os
import pathlib

import pytest

import mcptrace

ROOT = pathlib.Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "data" / "samples"
BARE = ROOT / "data" / "bare"
ARTIFACTS = ROOT / "test-artifacts"


def read_lines(path: pathlib.Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines()


def read_json_lines(path: pathlib.Path) -> list[dict]:
    return [json.loads(line) for line in read_lines(path) if line.strip()]


def write_lines(path: pathlib.Path, lines: list[str]) -> pathlib.Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def samples_ws():
    ws = mcptrace.load(SAMPLES)
    yield ws
    ws.close()


@pytest.fixture(scope="session")
def artifacts() -> pathlib.Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


@pytest.fixture
def stdio_lines() -> list[str]:
    return read_lines(SAMPLES / "agent_stdio.jsonl")


def first_index(lines: list[str], pred) -> int:
    for i, line in enumerate(lines):
        if pred(json.loads(line)):
            return i
    raise AssertionError("no line matches")


os.environ.setdefault("PYTHONHASHSEED", "0")
