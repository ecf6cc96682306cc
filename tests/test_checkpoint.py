"""Checkpoints: exact round trips, atomic writes, safe loading, clear errors, RNG resume."""

from __future__ import annotations

import os
import pickle
import random
import struct
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

import hrm_rl
from hrm_rl.checkpoint import (
    CHECKPOINT_FORMAT,
    CheckpointError,
    capture_rng_state,
    load_checkpoint,
    restore_rng_state,
    save_checkpoint,
)


def assert_same(actual: Any, expected: Any, where: str = "state") -> None:
    """Assert two checkpoint trees are equal: same types, same keys, bit-equal tensors."""
    assert type(actual) is type(expected), f"{where}: {type(actual)} != {type(expected)}"
    if isinstance(expected, torch.Tensor):
        assert actual.dtype == expected.dtype and torch.equal(actual, expected), where
    elif isinstance(expected, dict):
        assert list(actual) == list(expected), where
        for key in expected:
            assert_same(actual[key], expected[key], f"{where}[{key!r}]")
    elif isinstance(expected, (list, tuple)):
        assert len(actual) == len(expected), where
        for index, (a, e) in enumerate(zip(actual, expected, strict=True)):
            assert_same(a, e, f"{where}[{index}]")
    else:
        assert actual == expected, where


def trained_state() -> dict:
    """A state like a run's: model, AdamW after one step, EMA, counters, nested config."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.1)
    model(torch.randn(3, 4)).square().sum().backward()
    optimizer.step()
    return {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "ema": {name: p.detach().clone() * 0.5 for name, p in model.named_parameters()},
        "step": 1,
        "env_steps": 12_345,
        "best_solve_rate": 0.25,
        "config": {"name": "sudoku", "lr": 1e-3, "layers": [2, 2], "betas": (0.9, 0.95)},
        "history": [{"loss": 1.5, "note": None}, {"loss": 1.25, "done": True}],
    }


def test_round_trip_restores_every_value_and_adds_format(tmp_path: Path) -> None:
    state = trained_state()
    assert state["optimizer"]["state"], "AdamW should hold moments after one step"

    written = save_checkpoint(tmp_path / "runs" / "a" / "last.pt", state)
    loaded = load_checkpoint(written)

    assert written == tmp_path / "runs" / "a" / "last.pt"
    assert loaded.pop("format") == CHECKPOINT_FORMAT
    assert loaded.pop("hrm_rl_version") == hrm_rl.__version__
    assert_same(loaded, state)
    assert "format" not in state, "save_checkpoint must not change the caller's dict"

    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    model.load_state_dict(loaded["model"])
    optimizer = torch.optim.AdamW(model.parameters())
    optimizer.load_state_dict(loaded["optimizer"])
    assert optimizer.param_groups[0]["weight_decay"] == 0.1


def test_failed_save_keeps_previous_checkpoint_and_leaves_no_temporary_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "last.pt"
    save_checkpoint(path, {"step": 1, "weights": torch.arange(1000.0)})
    real_save = torch.save

    def save_half_then_fail(obj: Any, file: Any, *args: Any, **kwargs: Any) -> None:
        real_save(obj, tmp_path / "scratch")
        data = (tmp_path / "scratch").read_bytes()
        (tmp_path / "scratch").unlink()
        file.write(data[: len(data) // 2])
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", save_half_then_fail)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(path, {"step": 2, "weights": torch.zeros(1000)})
    monkeypatch.undo()

    loaded = load_checkpoint(path)
    assert loaded["step"] == 1
    assert torch.equal(loaded["weights"], torch.arange(1000.0))
    assert sorted(os.listdir(tmp_path)) == ["last.pt"]


def test_truncated_checkpoint_names_path_and_says_truncated(tmp_path: Path) -> None:
    whole = save_checkpoint(tmp_path / "whole.pt", trained_state())
    data = whole.read_bytes()
    cut = tmp_path / "cut.pt"
    cut.write_bytes(data[: len(data) // 2])

    with pytest.raises(CheckpointError, match="truncated or corrupt") as caught:
        load_checkpoint(cut)
    assert str(cut) in str(caught.value)
    assert caught.value.__cause__ is not None


def test_flipped_weight_bytes_are_reported_as_corrupt(tmp_path: Path) -> None:
    path = save_checkpoint(tmp_path / "last.pt", {"weights": torch.ones(64)})
    with zipfile.ZipFile(path) as archive:
        member = next(i for i in archive.infolist() if i.filename.endswith("/data/0"))
    data = bytearray(path.read_bytes())
    header = member.header_offset  # local header: 30 bytes, then name and extra field
    name_length, extra_length = struct.unpack("<HH", data[header + 26 : header + 30])
    data[header + 30 + name_length + extra_length] ^= 0xFF  # first byte of the tensor's storage
    path.write_bytes(bytes(data))

    with pytest.raises(CheckpointError, match="truncated or corrupt: CRC mismatch"):
        load_checkpoint(path)


def _write_marker(path: str) -> None:
    """What a crafted checkpoint tries to run on unpickling."""
    Path(path).write_text("code ran")


class RunsCodeOnUnpickling:
    """An object whose unpickling calls :func:`_write_marker`."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return (_write_marker, (str(self.marker),))


@pytest.mark.parametrize("writer", ["torch.save", "pickle.dump"])
def test_crafted_checkpoint_is_refused_and_its_code_never_runs(tmp_path: Path, writer: str) -> None:
    marker = tmp_path / "marker.txt"
    path = tmp_path / "evil.pt"
    crafted = {"format": CHECKPOINT_FORMAT, "model": RunsCodeOnUnpickling(marker)}
    if writer == "torch.save":
        torch.save(crafted, path)
    else:
        with open(path, "wb") as file:
            pickle.dump(crafted, file, protocol=2)

    with pytest.raises(CheckpointError, match="refused") as caught:
        load_checkpoint(path)
    assert str(path) in str(caught.value)
    assert "weights_only=True" in str(caught.value)
    assert not marker.exists(), "load_checkpoint ran code from the file"

    # The file really is malicious: unsafe loading runs its code.
    if writer == "torch.save":
        torch.load(path, weights_only=False)
    else:
        with open(path, "rb") as file:
            pickle.load(file)
    assert marker.read_text() == "code ran"


@pytest.mark.parametrize(
    ("state", "where", "hint"),
    [
        ({"config": {"lr": np.float64(1e-3)}}, "state['config']['lr']", "numpy.float64"),
        (
            {"config": {"schedule": [1, lambda step: step]}},
            "state['config']['schedule'][1]",
            "<lambda>",
        ),
        ({"obs": np.zeros(3)}, "state['obs']", "torch.from_numpy"),
        ({"model": nn.Linear(2, 2)}, "state['model']", "state_dict()"),
    ],
)
def test_unloadable_values_are_rejected_with_their_key_path(
    tmp_path: Path, state: dict, where: str, hint: str
) -> None:
    path = tmp_path / "last.pt"
    with pytest.raises(TypeError) as caught:
        save_checkpoint(path, state)
    message = str(caught.value)
    assert message.startswith(f"{where}: "), message
    assert hint in message
    assert not path.exists()


def test_numpy_scalar_message_says_what_to_convert_to(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match=r"convert to a Python float"):
        save_checkpoint(tmp_path / "last.pt", {"lr": np.float64(1e-3)})


def test_file_without_format_or_with_newer_format_is_rejected(tmp_path: Path) -> None:
    plain = tmp_path / "plain.pt"
    torch.save({"model": {}}, plain)
    with pytest.raises(CheckpointError, match="no 'format'"):
        load_checkpoint(plain)

    newer = tmp_path / "newer.pt"
    torch.save({"format": CHECKPOINT_FORMAT + 1, "hrm_rl_version": "9.0.0"}, newer)
    with pytest.raises(CheckpointError, match=f"format {CHECKPOINT_FORMAT + 1}.*newer"):
        load_checkpoint(newer)


def test_missing_file_names_the_path(tmp_path: Path) -> None:
    path = tmp_path / "nowhere" / "last.pt"
    with pytest.raises(FileNotFoundError, match="last.pt") as caught:
        load_checkpoint(path)
    assert str(path) in str(caught.value)


def draw_all(generators: dict[str, Any]) -> list:
    """A few numbers from every random source a run uses."""
    draws: list = [torch.rand(4).tolist(), random.random(), random.gauss(0.0, 1.0)]
    for name in sorted(generators):
        generator = generators[name]
        if isinstance(generator, torch.Generator):
            draws.append(torch.rand(4, generator=generator).tolist())
        else:
            draws.append(generator.random(4).tolist())
            draws.append(generator.integers(0, 2**63, size=2).tolist())
    return draws


def make_generators() -> dict[str, Any]:
    """Named generators of every kind, already advanced from their seeds."""
    generators = {
        "sampler": torch.Generator().manual_seed(1),
        "env": np.random.default_rng(2),  # PCG64: 128-bit ints in its state
        "legacy": np.random.Generator(np.random.MT19937(3)),  # a uint32 array in its state
        "counter": np.random.Generator(np.random.Philox(4)),  # uint64 arrays in its state
    }
    random.seed(0)
    draw_all(generators)  # one random.gauss after seeding caches its second normal
    assert random.getstate()[2] is not None, "random.gauss should have cached its second normal"
    return generators


@pytest.mark.parametrize("through_file", [False, True], ids=["in_memory", "saved_and_loaded"])
def test_restored_rng_state_repeats_every_draw(tmp_path: Path, through_file: bool) -> None:
    generators = make_generators()
    rng_state = capture_rng_state(generators)
    if through_file:
        save_checkpoint(tmp_path / "last.pt", {"rng": rng_state})
        rng_state = load_checkpoint(tmp_path / "last.pt")["rng"]
    first = draw_all(generators)

    restore_rng_state(rng_state, generators)
    again = draw_all(generators)

    assert again == first
    assert draw_all(generators) != first, "draws should move on after the repeat"


def test_restore_into_fresh_generators_continues_the_run(tmp_path: Path) -> None:
    generators = make_generators()
    save_checkpoint(tmp_path / "last.pt", {"rng": capture_rng_state(generators)})
    expected = draw_all(generators)

    resumed = {
        "sampler": torch.Generator(),
        "env": np.random.default_rng(),
        "legacy": np.random.Generator(np.random.MT19937()),
        "counter": np.random.Generator(np.random.Philox()),
    }
    torch.manual_seed(99)
    random.seed(99)
    restore_rng_state(load_checkpoint(tmp_path / "last.pt")["rng"], resumed)

    assert draw_all(resumed) == expected


def test_restore_names_a_generator_missing_from_the_state() -> None:
    rng_state = capture_rng_state({"sampler": torch.Generator().manual_seed(0)})
    torch.rand(3)
    before = torch.get_rng_state()
    with pytest.raises(KeyError, match="'env'"):
        restore_rng_state(rng_state, {"env": np.random.default_rng(0)})
    assert torch.equal(torch.get_rng_state(), before), "a failed restore must change nothing"


def test_restore_rejects_a_numpy_generator_with_another_bit_generator() -> None:
    rng_state = capture_rng_state({"env": np.random.default_rng(0)})
    with pytest.raises(ValueError, match="PCG64.*MT19937"):
        restore_rng_state(rng_state, {"env": np.random.Generator(np.random.MT19937(0))})
