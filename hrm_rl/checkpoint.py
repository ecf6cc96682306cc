"""Checkpoints that a run can resume from exactly, written atomically and loaded safely.

A checkpoint is one ``dict`` (model and optimizer ``state_dict``\\ s, EMA weights, RNG states,
counters, the resolved config) saved with :func:`torch.save`. Three promises:

- **Atomic.** :func:`save_checkpoint` writes a temporary file in the same folder, fsyncs it and
  ``os.replace``\\ s it onto the target, so a crash mid-write leaves the previous checkpoint intact.
- **Safe.** :func:`load_checkpoint` only ever calls ``torch.load(..., weights_only=True)``: a file
  crafted to run code on unpickling is refused, never executed.
- **Saved means loadable.** Before writing, the state is checked to hold only types that
  ``weights_only`` loading accepts; anything else is a ``TypeError`` naming its key path.

:func:`capture_rng_state` / :func:`restore_rng_state` turn every random source of a run (torch
CPU and CUDA, Python's ``random``, named ``torch.Generator``\\ s and numpy ``Generator``\\ s) into
such a checkpoint-safe dict and back.
"""

from __future__ import annotations

import logging
import os
import pickle
import random
import re
import secrets
import zipfile
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from hrm_rl import __version__

logger = logging.getLogger(__name__)

CHECKPOINT_FORMAT = 1
"""Layout version written into every checkpoint; bump it when the layout changes."""

# Leaf types that torch.load(weights_only=True) rebuilds. Exact types on purpose: numpy.float64
# subclasses float and IntEnum subclasses int, yet neither loads with weights_only.
_SAFE_LEAF_TYPES = (
    type(None),
    bool,
    int,
    float,
    complex,
    str,
    bytes,
    torch.dtype,
    torch.device,
    torch.Size,
)
_SAFE_TENSOR_TYPES = (torch.Tensor, torch.nn.Parameter)
_SAFE_KEY_TYPES = (type(None), bool, int, float, str, bytes)
# The weights_only unpickler reads ints through the LONG1 opcode only: at most 255 bytes.
_MAX_INT_BITS = 2000
# torch.load tells zip checkpoints from legacy ones by these first bytes.
_ZIP_MAGIC = b"PK\x03\x04"
# Lines of torch's weights_only error that say what the unpickler refused.
_REFUSAL_LINE = re.compile(r"GLOBAL|Unsupported|Can only|Trying to|must be imported|persistent")


class CheckpointError(ValueError):
    """A file that is not a complete, safe hrm_rl checkpoint."""


def save_checkpoint(path: str | os.PathLike, state: dict) -> Path:
    """Write ``state`` to ``path`` atomically and return ``path``.

    The file gets ``state`` plus ``"format"`` (:data:`CHECKPOINT_FORMAT`) and ``"hrm_rl_version"``,
    overwriting those two keys if ``state`` has them (e.g. a loaded checkpoint saved again). Parent
    folders are created. The bytes go to a temporary file in the same folder, which is flushed,
    fsynced and then renamed onto ``path``; on any failure the temporary file is removed and an
    existing ``path`` is left as it was.

    Raises:
        TypeError: ``state`` holds something ``torch.load(weights_only=True)`` cannot rebuild
            (the message names its key path, e.g. ``state['config']['lr']``).
    """
    if not isinstance(state, dict):
        raise TypeError(
            f"save_checkpoint: state must be a dict, got {_type_name(state)}; put the model, "
            "optimizer and counters into one dict"
        )
    _check_weights_only_safe(state, "state", on_path=set())
    payload = {**state, "format": CHECKPOINT_FORMAT, "hrm_rl_version": __version__}

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    # os.open with 0o666 lets the umask decide the mode, as for any file the run writes.
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as file:
            torch.save(payload, file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    _fsync_folder(path.parent)
    logger.debug("saved checkpoint %s", path)
    return path


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict:
    """Load a checkpoint written by :func:`save_checkpoint`, with ``weights_only=True`` only.

    Tensors are moved to ``map_location`` (CPU by default).

    Raises:
        FileNotFoundError: nothing exists at ``path``.
        CheckpointError: the file is truncated or corrupt, needs unpickling beyond
            ``weights_only`` (it is refused and none of its code runs), or is not an hrm_rl
            checkpoint of a format this version reads.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such checkpoint file; check the resume path")
    with open(path, "rb") as file:
        _check_zip_intact(path, file)
        try:
            state = torch.load(file, map_location=map_location, weights_only=True)
        except pickle.UnpicklingError as error:
            raise CheckpointError(
                f"{path}: refused: it needs unsafe unpickling ({_refusal_reason(error)}); "
                "hrm_rl only loads checkpoints with torch.load(weights_only=True)"
            ) from error
        except Exception as error:
            raise _incomplete(path, _error_reason(error)) from error

    if not isinstance(state, dict):
        raise CheckpointError(
            f"{path}: holds a {_type_name(state)}, not a checkpoint dict; it was not written by "
            "hrm_rl.checkpoint.save_checkpoint and cannot be resumed"
        )
    if "format" not in state:
        raise CheckpointError(
            f"{path}: has no 'format' entry; it was not written by "
            "hrm_rl.checkpoint.save_checkpoint and cannot be resumed"
        )
    checkpoint_format = state["format"]
    if type(checkpoint_format) is not int or checkpoint_format < 1:
        raise CheckpointError(
            f"{path}: invalid checkpoint format {checkpoint_format!r} (expected an int >= 1); "
            "the file is damaged or not an hrm_rl checkpoint"
        )
    if checkpoint_format > CHECKPOINT_FORMAT:
        raise CheckpointError(
            f"{path}: checkpoint format {checkpoint_format} (hrm_rl "
            f"{state.get('hrm_rl_version', '?')}) is newer than the format {CHECKPOINT_FORMAT} "
            f"this hrm_rl {__version__} reads; upgrade hrm_rl to resume it"
        )
    return state


def capture_rng_state(
    generators: dict[str, torch.Generator | np.random.Generator] | None = None,
) -> dict:
    """Snapshot every random source of a run as a dict that :func:`save_checkpoint` accepts.

    Holds torch's CPU RNG, every CUDA device's RNG (an empty list without CUDA), Python's
    ``random`` and each named generator in ``generators`` (``torch.Generator`` or numpy
    ``Generator``). numpy arrays inside a bit generator's state (MT19937, Philox) become byte
    tensors; its 128-bit ints (PCG64) stay Python ints, which ``weights_only`` loading reads.
    """
    version, internal, gauss_next = random.getstate()
    named: dict[str, dict[str, Any]] = {}
    for name, generator in _checked_generators(generators).items():
        if isinstance(generator, torch.Generator):
            named[name] = {"kind": "torch", "state": generator.get_state()}
        else:
            named[name] = {
                "kind": "numpy",
                "state": _numpy_to_safe(generator.bit_generator.state),
            }
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "python": {"version": version, "internal": list(internal), "gauss_next": gauss_next},
        "generators": named,
    }


def restore_rng_state(
    state: dict,
    generators: dict[str, torch.Generator | np.random.Generator] | None = None,
) -> None:
    """Put every random source back as :func:`capture_rng_state` found it.

    ``generators`` names the generators to restore in place; each must have been captured under
    the same name. Nothing is changed unless every requested generator can be restored.

    Raises:
        KeyError: a name in ``generators`` (or a part of the state) is missing from ``state``.
        TypeError: a generator is not of the kind (torch or numpy) that was captured.
        ValueError: a numpy generator uses another bit generator than the captured one.
    """
    for part in ("torch", "cuda", "python", "generators"):
        if part not in state:
            raise KeyError(
                f"RNG state has no {part!r} entry; pass the dict made by capture_rng_state"
            )
    generators = _checked_generators(generators)
    for name, generator in generators.items():
        _check_restorable(name, generator, state["generators"])

    torch.set_rng_state(state["torch"].cpu())
    _restore_cuda(state["cuda"])
    python = state["python"]
    random.setstate((python["version"], tuple(python["internal"]), python["gauss_next"]))
    for name, generator in generators.items():
        saved = state["generators"][name]["state"]
        if isinstance(generator, torch.Generator):
            generator.set_state(saved.cpu())
        else:
            generator.bit_generator.state = _numpy_from_safe(saved)


def _check_weights_only_safe(value: Any, where: str, on_path: set[int]) -> None:
    """Raise TypeError at the first part of ``value`` that weights_only loading cannot rebuild."""
    kind = type(value)
    if kind in _SAFE_TENSOR_TYPES:
        return
    if kind in _SAFE_LEAF_TYPES:
        if kind is int and value.bit_length() > _MAX_INT_BITS:
            raise TypeError(
                f"{where}: int of {value.bit_length()} bits is too large for "
                "torch.load(weights_only=True); store it as a string"
            )
        return
    if kind not in (dict, OrderedDict, list, tuple):
        raise TypeError(
            f"{where}: {_describe(value)} cannot be loaded with torch.load(weights_only=True); "
            f"{_conversion_hint(value)}"
        )
    if id(value) in on_path:
        raise TypeError(f"{where}: contains itself; a checkpoint must be a tree, not a cycle")
    on_path.add(id(value))
    if kind in (dict, OrderedDict):
        for key, item in value.items():
            if type(key) not in _SAFE_KEY_TYPES:
                raise TypeError(
                    f"{where}: key {key!r} is a {_type_name(key)}; use str or int keys "
                    "so that torch.load(weights_only=True) can rebuild the dict"
                )
            _check_weights_only_safe(item, f"{where}[{key!r}]", on_path)
    else:
        for index, item in enumerate(value):
            _check_weights_only_safe(item, f"{where}[{index}]", on_path)
    on_path.discard(id(value))


def _conversion_hint(value: Any) -> str:
    """Say how to turn ``value`` into something a weights_only checkpoint holds."""
    if isinstance(value, np.generic):
        return f"convert to a Python {type(value.item()).__name__} with .item()"
    if isinstance(value, np.ndarray):
        return "convert to a tensor with torch.from_numpy(...)"
    if isinstance(value, torch.Tensor):
        return "convert to a plain tensor with .as_subclass(torch.Tensor)"
    if isinstance(value, (torch.nn.Module, torch.optim.Optimizer)):
        return "store its .state_dict() instead"
    if isinstance(value, tuple):
        return "convert to a plain tuple or dict (a namedtuple's ._asdict())"
    if isinstance(value, dict):
        return "convert to a plain dict with dict(...)"
    if callable(value):
        return "store the name or settings that rebuild it, not the callable itself"
    return "store it as tensors, numbers, strings, bools, None, lists, tuples or dicts"


def _describe(value: Any) -> str:
    """Type of ``value``, with the name of a function or class (``function <lambda>``)."""
    name = getattr(value, "__qualname__", None)
    if callable(value) and isinstance(name, str):
        return f"{_type_name(value)} {name}"
    return _type_name(value)


def _type_name(value: Any) -> str:
    """``numpy.float64``-style name of ``value``'s type (builtins without module)."""
    kind = type(value)
    if kind.__module__ == "builtins":
        return kind.__qualname__
    return f"{kind.__module__}.{kind.__qualname__}"


def _fsync_folder(folder: Path) -> None:
    """Make a rename inside ``folder`` durable (POSIX only; Windows cannot open folders)."""
    if os.name != "posix":
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _check_zip_intact(path: Path, file: Any) -> None:
    """Raise CheckpointError if a zip checkpoint is cut short or fails its CRC checks.

    Checking first keeps damage from being reported as a refusal: a flipped byte in the pickle
    would otherwise read as an unknown opcode or global. Legacy (non-zip) files pass unchecked.
    """
    if file.read(len(_ZIP_MAGIC)) != _ZIP_MAGIC:
        file.seek(0)
        return
    file.seek(0)
    try:
        with zipfile.ZipFile(file) as archive:
            damaged = archive.testzip()
    except (zipfile.BadZipFile, OSError, EOFError) as error:
        raise _incomplete(path, f"incomplete zip archive: {_error_reason(error)}") from error
    if damaged is not None:
        raise _incomplete(path, f"CRC mismatch in {damaged}")
    file.seek(0)


def _incomplete(path: Path, reason: str) -> CheckpointError:
    """The error for a checkpoint that is truncated or corrupt."""
    return CheckpointError(
        f"{path}: not a complete hrm_rl checkpoint (truncated or corrupt: {reason}); "
        "it cannot be resumed"
    )


def _error_reason(error: BaseException) -> str:
    """Short one-line description of ``error``."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    if not lines:
        return _type_name(error)
    return f"{_type_name(error)}: {lines[0][:160]}"


def _refusal_reason(error: pickle.UnpicklingError) -> str:
    """The line of torch's long weights_only message that says what was refused."""
    for line in str(error).splitlines():
        line = line.strip().removeprefix("WeightsUnpickler error:").strip()
        if _REFUSAL_LINE.search(line) and not line.startswith("Weights only load failed"):
            return line.split(". ")[0].rstrip(".")[:160]
    return _error_reason(error)


def _checked_generators(
    generators: dict[str, torch.Generator | np.random.Generator] | None,
) -> dict[str, torch.Generator | np.random.Generator]:
    """``generators`` (or ``{}``) after checking names are strings and values are generators."""
    generators = {} if generators is None else generators
    for name, generator in generators.items():
        if not isinstance(name, str):
            raise TypeError(f"generators: name {name!r} must be a str")
        if not isinstance(generator, (torch.Generator, np.random.Generator)):
            raise TypeError(
                f"generators[{name!r}]: {_type_name(generator)} is not a torch.Generator or "
                "numpy.random.Generator; create it with torch.Generator() or "
                "numpy.random.default_rng(seed)"
            )
    return generators


def _check_restorable(
    name: str, generator: torch.Generator | np.random.Generator, saved: dict[str, Any]
) -> None:
    """Raise if the captured state ``saved[name]`` cannot be put into ``generator``."""
    if name not in saved:
        raise KeyError(
            f"RNG state has no generator {name!r} (it holds {sorted(saved)}); capture it with "
            f"capture_rng_state({{{name!r}: ...}})"
        )
    wanted = "torch" if isinstance(generator, torch.Generator) else "numpy"
    kind = saved[name]["kind"]
    if kind != wanted:
        raise TypeError(
            f"generator {name!r}: the RNG state holds a {kind} generator, got a {wanted} one"
        )
    if kind == "numpy":
        captured = saved[name]["state"]["bit_generator"]
        current = generator.bit_generator.state["bit_generator"]
        if captured != current:
            raise ValueError(
                f"generator {name!r}: the RNG state holds a {captured} bit generator, but the "
                f"given numpy Generator uses {current}; create it with the same bit generator"
            )


def _restore_cuda(cuda_states: list[torch.Tensor]) -> None:
    """Restore the CUDA RNGs of the devices present both now and at capture time."""
    if not cuda_states:
        return
    if not torch.cuda.is_available():
        logger.warning(
            "the RNG state holds %d CUDA generator(s) but CUDA is not available; "
            "CUDA random draws will not continue the saved sequence",
            len(cuda_states),
        )
        return
    count = torch.cuda.device_count()
    if count != len(cuda_states):
        logger.warning(
            "the RNG state holds %d CUDA generator(s) but %d device(s) are visible; "
            "restoring the first %d",
            len(cuda_states),
            count,
            min(count, len(cuda_states)),
        )
    for device, cuda_state in enumerate(cuda_states[:count]):
        torch.cuda.set_rng_state(cuda_state.cpu(), device)


_NDARRAY_TAG = "numpy.ndarray"


def _numpy_to_safe(value: Any) -> Any:
    """Turn a numpy bit generator state into weights_only-loadable types."""
    if isinstance(value, dict):
        return {key: _numpy_to_safe(item) for key, item in value.items()}
    if isinstance(value, np.ndarray):
        data = torch.from_numpy(np.frombuffer(value.tobytes(), dtype=np.uint8).copy())
        return {
            "type": _NDARRAY_TAG,
            "dtype": value.dtype.str,
            "shape": list(value.shape),
            "data": data,
        }
    if isinstance(value, np.generic):
        return value.item()
    return value


def _numpy_from_safe(value: Any) -> Any:
    """Inverse of :func:`_numpy_to_safe`."""
    if isinstance(value, dict):
        if value.get("type") == _NDARRAY_TAG:
            raw = value["data"].cpu().numpy().tobytes()
            return np.frombuffer(raw, dtype=np.dtype(value["dtype"])).reshape(value["shape"]).copy()
        return {key: _numpy_from_safe(item) for key, item in value.items()}
    return value


def load_weights(
    model: torch.nn.Module, weights: dict, source: str | os.PathLike, model_of: str | None = None
) -> None:
    """``model.load_state_dict(weights)``, or a :class:`CheckpointError` that says the weights of
    ``source`` do not fit the model, naming the first tensor that differs. ``model_of`` says
    which model that is (e.g. one built for another board); by default the model the
    checkpoint's own config builds today (an older hrm_rl's model had other shapes: before
    2026-12-06, ``model.move_features`` read one count per relation)."""
    try:
        model.load_state_dict(weights)
    except RuntimeError as error:
        if "size mismatch" not in str(error):
            raise
        first = next(line.strip() for line in str(error).splitlines() if "size mismatch" in line)
        if model_of is not None:
            raise CheckpointError(
                f"{source}: its weights do not fit the model {model_of}: {first}"
            ) from error
        raise CheckpointError(
            f"{source}: its weights do not fit the model its config builds with this hrm_rl "
            f"({__version__}): {first} It was saved by a version whose model had other shapes "
            "(e.g. model.move_features read one count per relation before 2026-12-06); "
            "evaluate or resume it with that version"
        ) from error
