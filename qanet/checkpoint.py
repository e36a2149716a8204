"""Checkpoints: the file a run saves to continue exactly (CHECKPOINT in its checkpoint folder), written
atomically and read safely (tensors and plain values only). What it holds is the Trainer's state_dict."""

from __future__ import annotations

import io
import pickle
import re
from pathlib import Path

import torch

from qanet.files import replace_atomically

CHECKPOINT = "checkpoint.pt"


class CheckpointError(ValueError):
    """A checkpoint that cannot be used: missing, damaged, or not one that qanet-bench wrote."""


# what every checkpoint holds (see Trainer.state_dict)
_CHECKPOINT_KEYS = ("step", "config", "model", "vocabulary", "fingerprint")


def read_checkpoint(path: Path, map_location: str | torch.device = "cpu") -> dict:
    """A checkpoint's state, loaded with `weights_only` (tensors and plain values: a file that would run
    code when unpickled is refused), or a CheckpointError in one line naming the file."""
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(f"{path}: no such checkpoint") from None
    except (MemoryError, OSError):  # this machine's trouble, not the file's: never mistaken for damage
        raise
    except pickle.UnpicklingError as error:
        called = re.search(r"Unsupported global: GLOBAL (\S+)", str(error))
        if called:
            raise CheckpointError(f"{path}: refused: loading it would call {called.group(1)}, and a checkpoint holds "
                                  f"only tensors and plain values (torch.load weights_only)") from None
        raise CheckpointError(f"{path}: not a readable checkpoint, damaged or not a torch file") from None
    except Exception as error:  # noqa: BLE001 - arbitrary bytes make the unpickler fail in arbitrary ways
        raise CheckpointError(f"{path}: not a readable checkpoint, damaged or truncated ({_first_line(error)}); "
                              f"delete it to start its run again") from None
    missing = [key for key in _CHECKPOINT_KEYS if key not in state] if isinstance(state, dict) else _CHECKPOINT_KEYS
    if missing:
        raise CheckpointError(f"{path}: not a qanet-bench checkpoint (no {', '.join(missing)})")
    return state


def _first_line(error: BaseException) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0]


def write_checkpoint(directory: Path, state: dict) -> Path:
    """`state` (what Trainer.state_dict holds) as CHECKPOINT in `directory`, written to a temporary file and
    renamed: a full disk keeps the last one."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / CHECKPOINT
    # serialised in memory, then written as bytes: torch.save writing to a full disk fails with an internal
    # RuntimeError ("unexpected pos"); a plain write fails with ENOSPC, naming the file (qanet.files.naming)
    replace_atomically(path, lambda staging: staging.write_bytes(_serialised(state)))
    return path


def _serialised(state: dict) -> memoryview:
    buffer = io.BytesIO()
    torch.save(state, buffer)
    return buffer.getbuffer()
