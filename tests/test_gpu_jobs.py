"""`gpu_jobs` (auto | always | never): validated by the schema, decided without torch."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from iadbench.config import gpu_decision, gpu_request, validate_schema
from iadbench.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]
SCHEMA = REPO / "config/schema.yaml"
BASE = {
    "datasets": {"d": {"root": "r", "categories": ["a"]}},
    "backbones": {"b": {"model": "efficientnet_lite0"}},
    "methods": {"m": {"kind": "patchcore", "backbone": "b"}},
}


def never_probed():
    raise AssertionError("the device probe should not be needed here")


@pytest.mark.parametrize(
    ("gpu_jobs", "device", "present", "expected"),
    [
        ("always", "auto", False, 1),
        ("always", "cpu", False, 1),
        ("never", "auto", True, 0),
        ("never", "cuda", True, 0),
        ("auto", "auto", True, 1),
        ("auto", "auto", False, 0),
        ("auto", "cpu", True, 0),
        ("auto", "cuda", False, 1),
        ("auto", "cuda:1", False, 1),
    ],
)
def test_gpu_request_follows_gpu_jobs_device_and_probe(gpu_jobs, device, present, expected):
    probe = (lambda: present) if (gpu_jobs, device) == ("auto", "auto") else never_probed
    assert gpu_request({"gpu_jobs": gpu_jobs, "device": device}, probe=probe) == expected


def test_defaults_are_auto_and_the_reason_is_one_line():
    assert gpu_decision({}, probe=lambda: False) == (
        0,
        "gpu_jobs: auto, no NVIDIA device (/dev/nvidia0, /proc/driver/nvidia, nvidia-smi)",
    )
    assert gpu_decision({}, probe=lambda: True)[0] == 1


def test_schema_fills_auto_and_rejects_other_values():
    config = {**BASE}
    validate_schema(config, SCHEMA, ["c.yaml"])
    assert config["gpu_jobs"] == "auto"
    for value in ("always", "never"):
        validate_schema({**BASE, "gpu_jobs": value}, SCHEMA, ["c.yaml"])
    with pytest.raises(ConfigError, match=r"c\.yaml: gpu_jobs: 'sometimes' is not one of"):
        validate_schema({**BASE, "gpu_jobs": "sometimes"}, SCHEMA, ["c.yaml"])
    with pytest.raises(ConfigError, match="gpu_jobs"):
        gpu_request({"gpu_jobs": "sometimes"})


def test_the_default_probe_imports_no_torch():
    code = (
        "import sys; from iadbench.config import gpu_request; gpu_request({}); "
        "print(sorted(m for m in ('torch', 'pynvml') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
