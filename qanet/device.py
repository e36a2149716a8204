"""Where and how the model runs: the device `train.device` names, torch.compile, bf16 autocast and the attention
kernels training may use (how much memory it took: qanet.memory)."""

from __future__ import annotations

import torch
from torch.nn.attention import SDPBackend, sdpa_kernel

from qanet.config import ConfigError, RunConfig
from qanet.layers import EncoderBlock


def resolve_device(name: str) -> torch.device:
    """The device `train.device` names ("auto": a GPU if there is one), or a ConfigError when this
    machine does not have it, so that a study refuses before anything runs."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    missing = why_missing(device)
    if missing:
        raise ConfigError(f"train.device = {name!r}: {missing}; use cpu or auto")
    return device


def why_missing(device: torch.device) -> str | None:
    """Why this machine cannot run on `device` ("this machine has no cuda device (torch ...)"), or None."""
    if device.type == "cpu":
        return None
    backend = getattr(torch, device.type, None)
    available = getattr(backend, "device_count", lambda: 1)() if backend and backend.is_available() else 0
    if (device.index or 0) < available:
        return None
    have = f"{available} {device.type} device(s)" if available else f"no {device.type} device"
    return f"this machine has {have} (torch {torch.__version__})"


def compiled(model: torch.nn.Module, mode: str, scope: str):
    """`model` under torch.compile: Inductor in one of its modes, or "cudagraphs" (the eager kernels replayed
    as CUDA graphs). fullgraph: a graph break (a Python branch on a tensor) fails loudly instead of splitting
    the step.

    `scope` (train.compile_scope) "model": one graph of the whole model per batch shape, in which the encoder
    blocks' 23 calls (at the paper's size: 7 blocks x 3 passes, the embedding block x 2) are traced and compiled
    one by one. "blocks": regional compilation, each EncoderBlock compiled in place, the rest eager; a block's
    graph serves all its calls at one width, so a shape takes 9 block graphs (the embedding block's at the
    context and at the question width). Blocks share no graph: each bakes its own stochastic-depth rates in as
    constants, and keeps its graphs apart (below). The model itself is returned and stays compiled: its eager
    uses belong under torch.compiler.set_stance("force_eager"), forward and backward (a block recomputed in
    backward must run as it ran forward)."""
    backend = {"backend": "cudagraphs"} if mode == "cudagraphs" else {"mode": mode}
    if scope == "model":
        return torch.compile(model, **backend, dynamic=False, fullgraph=True)
    if scope != "blocks":
        raise ConfigError(f"train.compile_scope = {scope!r}: expected 'model' or 'blocks'")
    for block in model.modules():
        if isinstance(block, EncoderBlock):
            # Every module compiled in place keeps its graphs on one code object (nn.Module._call_impl), which
            # dynamo's recompile_limit counts as a whole: isolated, each block counts only its own graphs, one
            # per width it meets, and a model of 7 blocks fits the limit.
            block.compile(**backend, dynamic=False, fullgraph=True, isolate_recompiles=True)
    return model


def training_path(config: RunConfig, device: torch.device) -> tuple[str | None, int]:
    """How training runs on `device`: the torch.compile mode (None: eagerly) and the padding multiple. For
    `train.compile = "auto"` it is the fastest path the GPU evidence clears (docs/gpu.md): on CUDA, CUDA graphs of
    the eager kernels with every batch padded to the length limits, so one shape is captured once (Inductor is
    faster, but its runs went wrong and it is not cleared); on a CPU, eagerly, where compilation costs more
    than it saves on a short run."""
    train = config.train
    if train.compile == "auto":
        if device.type == "cuda":
            return "cudagraphs", max(config.data.context_len, config.data.question_len)
        return None, train.pad_multiple
    return (train.compile_mode if train.compile else None), train.pad_multiple


def describe_path(config: RunConfig, device: torch.device) -> str:
    """`training_path` in words, as the execution context records it: "eager", or e.g. "cudagraphs of the
    model, batches padded to multiples of 400"."""
    mode, pad_multiple = training_path(config, device)
    if mode is None:
        return "eager"
    return f"{mode} of the {config.train.compile_scope}, batches padded to multiples of {pad_multiple}"


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
