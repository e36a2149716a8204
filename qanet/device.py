"""Where and how the model runs: the device `train.device` names, torch.compile, bf16 autocast and the attention
kernels training may use (how much memory it took: qanet.memory)."""

from __future__ import annotations

import torch
from torch.nn.attention import SDPBackend, sdpa_kernel

from qanet.config import ConfigError, RunConfig


def resolve_device(name: str) -> torch.device:
    """The device `train.device` names ("auto": a GPU if there is one), or a ConfigError when this
    machine does not have it, so that a study refuses before anything runs."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cpu":
        return device
    backend = getattr(torch, device.type, None)
    available = getattr(backend, "device_count", lambda: 1)() if backend and backend.is_available() else 0
    if (device.index or 0) >= available:
        have = f"{available} {device.type} device(s)" if available else f"no {device.type} device"
        raise ConfigError(f"train.device = {name!r}: this machine has {have} (torch {torch.__version__}); "
                          f"use cpu or auto")
    return device


def compiled(model: torch.nn.Module, mode: str):
    """`model` under torch.compile: Inductor in one of its modes, or "cudagraphs" (the eager kernels replayed
    as CUDA graphs). fullgraph: a graph break (a Python branch on a tensor) fails loudly instead of splitting
    the step."""
    if mode == "cudagraphs":
        return torch.compile(model, backend="cudagraphs", dynamic=False, fullgraph=True)
    return torch.compile(model, mode=mode, dynamic=False, fullgraph=True)


def autocast(device: torch.device, bf16: bool) -> torch.autocast:
    """bf16 autocast on CUDA when `bf16` (train.bf16); a no-op elsewhere: the CPU always runs fp32."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda" and bf16)


# scaled_dot_product_attention's kernels by the names `train.attention_kernels` uses
ATTENTION_KERNELS = {"math": SDPBackend.MATH, "flash": SDPBackend.FLASH_ATTENTION,
                     "efficient": SDPBackend.EFFICIENT_ATTENTION, "cudnn": SDPBackend.CUDNN_ATTENTION}


def training_attention_kernels(setting: str, device: torch.device) -> list[SDPBackend]:
    """The SDPA kernels training may use: the one `setting` names, or for "auto" every kernel but cuDNN's on
    CUDA (see TrainConfig.attention_kernels)."""
    if setting != "auto":
        return [ATTENTION_KERNELS[setting]]
    return [kernel for name, kernel in ATTENTION_KERNELS.items() if not (device.type == "cuda" and name == "cudnn")]


def attention_kernel_in_use(config: RunConfig, device: torch.device) -> str:
    """The kernel SDPA picks for training's self-attention on `device` under `train.attention_kernels` (the
    paper-size query: the context limit, the model's heads, the training dtype, a key-padding mask), or a
    ConfigError in one line when the setting leaves it none."""
    model, train = config.model, config.train
    dtype = torch.bfloat16 if device.type == "cuda" and train.bf16 else torch.float32
    length = config.data.context_len
    query = torch.zeros(2, model.heads, length, model.hidden // model.heads, device=device, dtype=dtype,
                        requires_grad=True)
    mask = torch.ones(2, 1, 1, length, dtype=torch.bool, device=device)
    names = {int(kernel.value): name for name, kernel in ATTENTION_KERNELS.items()}
    if not hasattr(torch, "_fused_sdp_choice"):  # a private function: a torch without it cannot say
        return "unknown"
    try:
        with sdpa_kernel(training_attention_kernels(train.attention_kernels, device)):
            return names[torch._fused_sdp_choice(query, query, query, mask, model.attention_dropout, False)]
    except (RuntimeError, KeyError):
        raise ConfigError(f"train.attention_kernels = {train.attention_kernels!r}: no such attention kernel runs "
                          f"here ({device.type}, {str(dtype).removeprefix('torch.')}, head dim "
                          f"{model.hidden // model.heads}, attention dropout {model.attention_dropout}); try auto"
                          ) from None
