"""QANet's building blocks (Yu et al. 2018), in the order the model uses them.

Tensors are (batch, length, channels) between blocks: in the shapes below B is the batch, L a
sequence's length (Lc a context's, Lq a question's), W a word's characters and d the hidden
size (model.hidden). Masks are bool, True at real tokens. Every convolution sees padding
positions zeroed, attention masks keys, and masked logits use the dtype's own minimum, so
padding never changes a real position and nothing overflows in half precision.

QANet's blocks take the ModelConfig and read their sizes from it; the generic pieces they are
made of (Dropout, Highway, DepthwiseSeparableConv) take their sizes.
"""

from __future__ import annotations

import functools
import math

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from qanet.config import ModelConfig
from qanet.data.vocab import OOV


def mask_logits(logits: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return logits.masked_fill(~mask, torch.finfo(logits.dtype).min)


def keep_mask(shape: torch.Size, p: float, device: torch.device) -> torch.Tensor:
    """Bernoulli(1 - p) booleans from 16 random bits each (p is rounded to a multiple of 1/65536).

    torch's own dropout samples one Bernoulli at a time on a single CPU thread, which took a
    fifth of a CPU training step; cutting 64-bit words from the same generator into 16-bit
    pieces costs a third of that. `random_` fills int64 with 63 random bits, so the top
    piece of each word is skipped.
    """
    count = shape.numel()
    words = torch.empty((count + 2) // 3, dtype=torch.int64, device=device).random_()
    pieces = words.view(torch.int16).view(-1, 4)[:, :3].reshape(-1)[:count]
    return (pieces >= round(p * 65536) - 32768).view(shape)


def apply_dropout(x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """Inverted dropout: eagerly on the CPU with `keep_mask`; on a GPU, or compiled, with torch's own
    (a fused kernel there; torch.compile cannot trace `random_`)."""
    if not training or p == 0:
        return x
    if x.device.type != "cpu" or torch.compiler.is_compiling():
        return F.dropout(x, p, training=True)
    return x * keep_mask(x.shape, p, x.device) * (1 / (1 - p))


class Dropout(nn.Module):
    def __init__(self, p: float) -> None:
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x of any shape -> the same shape, each element zeroed with probability p while training."""
        return apply_dropout(x, self.p, self.training)


class Highway(nn.Module):
    """x <- g * relu(H(x)) + (1 - g) * x, with g = sigmoid(G(x))."""

    def __init__(self, dim: int, layers: int, dropout: float) -> None:
        super().__init__()
        self.transforms = nn.ModuleList(nn.Linear(dim, dim) for _ in range(layers))
        self.gates = nn.ModuleList(nn.Linear(dim, dim) for _ in range(layers))
        self.dropout = Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, L, dim) -> (B, L, dim)."""
        for transform, gate in zip(self.transforms, self.gates, strict=True):
            g = torch.sigmoid(gate(x))
            x = g * self.dropout(F.relu(transform(x))) + (1 - g) * x
        return x


class DepthwiseSeparableConv(nn.Module):
    """A per-channel convolution along the sequence, then a 1x1 mixing of channels.

    Works on (batch, channels, length): callers transpose once around a run of convolutions.
    """

    def __init__(self, dim_in: int, dim_out: int, kernel: int) -> None:
        super().__init__()
        self.depthwise = nn.Conv1d(dim_in, dim_in, kernel, padding=kernel // 2, groups=dim_in, bias=False)
        self.pointwise = nn.Conv1d(dim_in, dim_out, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, dim_in, L) -> (B, dim_out, L)."""
        return self.pointwise(self.depthwise(x))


class CharEncoder(nn.Module):
    """Characters of each word -> one vector per word: convolution, ReLU, max over characters.

    `conv2d` is the paper's dense convolution over the (word, character) grid with a
    1 x kernel window; `depthwise1d` is a depthwise-separable convolution over each
    word's characters, far cheaper in multiply-adds and parameters.
    """

    def __init__(self, config: ModelConfig, chars: int) -> None:  # chars: the size of the character vocabulary
        super().__init__()
        self.kind = config.char_encoder
        dim, kernel = config.char_dim, config.char_kernel
        self.embedding = nn.Embedding(chars, dim, padding_idx=0)
        nn.init.normal_(self.embedding.weight, std=0.1)  # the ports' N(0, 0.1)
        self.embedding.weight.data[0].zero_()
        self.dropout = Dropout(config.char_dropout)
        if self.kind == "conv2d":
            self.conv = nn.Conv2d(dim, dim, (1, kernel), padding=(0, kernel // 2))
        else:
            self.conv = DepthwiseSeparableConv(dim, dim, kernel)

    def forward(self, chars: torch.Tensor) -> torch.Tensor:
        """Character ids (B, L, W), 0 for padding -> (B, L, char_dim)."""
        batch, length, width = chars.shape
        x = self.dropout(self.embedding(chars))  # (B, L, W, D)
        if self.kind == "conv2d":
            x = self.conv(x.permute(0, 3, 1, 2))  # (B, D, L, W)
            return F.relu(x).amax(dim=3).transpose(1, 2)
        x = self.conv(x.reshape(batch * length, width, -1).transpose(1, 2))  # (B*L, D, W)
        return F.relu(x).amax(dim=2).reshape(batch, length, -1)


class Embedding(nn.Module):
    """Frozen word vectors (one trainable out-of-vocabulary row) + character encoder -> hidden -> highway."""

    def __init__(self, config: ModelConfig, word_vectors: torch.Tensor, chars: int) -> None:
        """word_vectors (vocabulary, word dim), row OOV the out-of-vocabulary word's; chars: the size of the
        character vocabulary."""
        super().__init__()
        self.register_buffer("word_vectors", word_vectors.float(), persistent=True)
        self.oov = nn.Parameter(torch.zeros(word_vectors.shape[1]))
        self.chars = CharEncoder(config, chars)
        self.word_dropout = Dropout(config.dropout)
        self.project = nn.Linear(word_vectors.shape[1] + config.char_dim, config.hidden, bias=False)
        self.highway = Highway(config.hidden, 2, config.dropout)

    def forward(self, words: torch.Tensor, chars: torch.Tensor) -> torch.Tensor:
        """Word ids (B, L) and their character ids (B, L, W) -> (B, L, d)."""
        vectors = F.embedding(words, self.word_vectors)
        vectors = torch.where((words == OOV).unsqueeze(-1), self.oov.to(vectors.dtype), vectors)
        x = torch.cat([self.word_dropout(vectors), self.chars(chars)], dim=-1)
        return self.highway(self.project(x))


def timing_signal(length: int, dim: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """Sinusoids with geometric wavelengths, sines in the first half of the channels and cosines of
    the same frequencies in the second (the tensor2tensor timing signal the reference code uses)."""
    half = dim // 2
    rates = torch.exp(torch.arange(half, device=device, dtype=torch.float32) * -(math.log(1e4) / max(half - 1, 1)))
    angles = torch.arange(length, device=device, dtype=torch.float32)[:, None] * rates[None, :]
    signal = torch.cat([angles.sin(), angles.cos()], dim=1)
    return F.pad(signal, (0, dim % 2)).to(dtype)


# Eagerly, each (length, width) is computed once; torch.compile traces `timing_signal` itself and folds
# it into the graph as a constant (it does not trust lru_cache).
positional_encoding = functools.lru_cache(maxsize=64)(timing_signal)


class SelfAttention(nn.Module):
    """Multi-head scaled dot-product self-attention over the real tokens (model.heads heads), with dropout on
    the attention probabilities at model.attention_dropout."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        dim = config.hidden
        self.heads = config.heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.out = nn.Linear(dim, dim)
        self.dropout = config.attention_dropout

    def project(self, x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Queries, keys, values (B, heads, L, d / heads) and the key mask (B, 1, 1, L) that SDPA is given."""
        batch, length, dim = x.shape
        q, k, v = self.qkv(x).view(batch, length, 3, self.heads, dim // self.heads).permute(2, 0, 3, 1, 4)
        return q, k, v, mask[:, None, None, :]  # every query attends to the real keys only

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """x (B, L, d), mask (B, L) True on real tokens -> (B, L, d)."""
        batch, length, dim = x.shape
        q, k, v, keys = self.project(x, mask)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=keys, dropout_p=self.dropout if self.training else 0.0)
        return self.out(y.transpose(1, 2).reshape(batch, length, dim))


class EncoderBlock(nn.Module):
    """Positional encoding, then [conv x N, self-attention, feed-forward], each sublayer as
    x + drop_out(f(norm(drop_in(x)))), and each skipped whole with probability 1 - survival
    during training (stochastic depth, not rescaled at test time).

    A skipped sublayer is still computed and then left out by a 0/1 gate drawn on the device for the
    whole batch: no Python branch on a random number, so the graph is the same every step
    (torch.compile, CUDA graphs) and no step waits for the GPU. Its weights then get zero
    gradients, as with NLPLearn's `tf.cond`, so Adam still decays their moments and steps.

    Where dropout goes follows `dropout_placement`: "nlplearn" drops the input of convolutions
    0, 2, ..., of attention and of the feed-forward, and drops a sublayer's output only at its
    stochastic-depth rate 1 - survival; "outputs" drops every output at `dropout` and no input.
    """

    def __init__(self, config: ModelConfig, convs: int, kernel: int, survival: list[float]) -> None:
        super().__init__()
        dim = config.hidden
        self.conv_norms = nn.ModuleList(nn.LayerNorm(dim) for _ in range(convs))
        self.convs = nn.ModuleList(DepthwiseSeparableConv(dim, dim, kernel) for _ in range(convs))
        self.conv_relu = config.conv_activation == "relu"
        self.attention_norm = nn.LayerNorm(dim)
        self.attention = SelfAttention(config)
        self.ffn_norm = nn.LayerNorm(dim)
        self.ffn = nn.Sequential(nn.Linear(dim, dim), nn.ReLU(), nn.Linear(dim, dim))
        self.survival = survival  # one probability per sublayer: convs, attention, feed-forward
        if config.dropout_placement == "nlplearn":
            inputs = [index % 2 == 0 for index in range(convs)] + [True, True]
            self.input_rates = [config.dropout if dropped else 0.0 for dropped in inputs]
            self.output_rates = [1 - s for s in survival]
        else:
            self.input_rates = [0.0] * len(survival)
            self.output_rates = [config.dropout] * len(survival)
        self.input_scale = math.sqrt(dim) if config.pos_scale == "all" else 1.0

    def add_position(self, x: torch.Tensor) -> torch.Tensor:
        signal = timing_signal if torch.compiler.is_compiling() else positional_encoding
        return x * self.input_scale + signal(x.shape[1], x.shape[2], x.device, x.dtype)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """x (B, L, d), mask (B, L) True on real tokens -> (B, L, d)."""
        x = self.add_position(x)
        keep = mask.unsqueeze(-1).to(x.dtype)
        for index in range(len(self.convs)):
            x = self._sublayer(index, x, functools.partial(self._convolve, index, keep))
        x = self._sublayer(len(self.convs), x, lambda y: self.attention(self.attention_norm(y), mask))
        return self._sublayer(len(self.convs) + 1, x, lambda y: self.ffn(self.ffn_norm(y)))

    def _convolve(self, index: int, keep: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        y = (self.conv_norms[index](x) * keep).transpose(1, 2)  # zero the padding: it must not leak into the window
        y = self.convs[index](y)
        return (F.relu(y) if self.conv_relu else y).transpose(1, 2)

    def _sublayer(self, index: int, x: torch.Tensor, f) -> torch.Tensor:
        y = f(apply_dropout(x, self.input_rates[index], self.training))
        y = apply_dropout(y, self.output_rates[index], self.training)
        if self.training and self.survival[index] < 1:  # stochastic depth
            y = torch.where(torch.rand((), device=x.device) < self.survival[index], y, 0)  # an inf y stays out
        return x + y


def survival_schedule(sublayers: int, survival_last: float) -> list[float]:
    """Sublayer l of L (1-based) survives with 1 - (l / L) * (1 - survival_last)."""
    return [1 - (layer / sublayers) * (1 - survival_last) for layer in range(1, sublayers + 1)]


class EncoderStack(nn.Module):
    """The embedding encoder (stage "embedding": one block of model.embedding_convs convolutions of width
    model.embedding_kernel) or the model encoder ("model": model.model_blocks blocks of model.model_convs of
    width model.model_kernel): blocks one after the other, their sublayers' survival falling linearly over
    the whole stack. While training, blocks 0, k, 2k, ... (k = `recompute_every`) keep no activations but
    their input and are recomputed in backward: less memory, more compute (0: none; see
    TrainConfig.recompute_every)."""

    def __init__(self, config: ModelConfig, stage: str, recompute_every: int = 0) -> None:
        super().__init__()
        if stage == "embedding":
            blocks, convs, kernel = 1, config.embedding_convs, config.embedding_kernel
        else:
            blocks, convs, kernel = config.model_blocks, config.model_convs, config.model_kernel
        per_block = convs + 2
        schedule = survival_schedule(blocks * per_block, config.survival_last)
        self.blocks = nn.ModuleList(
            EncoderBlock(config, convs, kernel, schedule[i * per_block:(i + 1) * per_block]) for i in range(blocks)
        )
        self.recompute_every = recompute_every

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """x (B, L, d), mask (B, L) True on real tokens -> (B, L, d)."""
        for index, block in enumerate(self.blocks):
            if self.training and self.recompute_every and index % self.recompute_every == 0:
                x = checkpoint(block, x, mask, use_reentrant=False)  # its input kept, the block recomputed
            else:
                x = block(x, mask)
        return x


class ContextQueryAttention(nn.Module):
    """Trilinear similarity S = w . [c; q; c * q], computed without the (B, Lc, Lq, 3d) tensor,
    then context-to-query A = softmax_q(S) Q and query-to-context B = softmax_q(S) softmax_c(S)^T C.
    Returns [c; a; c * a; c * b]. With dropout placement "nlplearn" only the similarity sees
    dropped-out c and q; with "outputs" they are dropped before everything."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        dim = config.hidden
        self.w_context = nn.Linear(dim, 1)
        self.w_query = nn.Linear(dim, 1, bias=False)
        self.w_product = nn.Parameter(torch.empty(dim).uniform_(-1 / math.sqrt(dim), 1 / math.sqrt(dim)))
        self.dropout = Dropout(config.dropout)
        self.drop_similarity_only = config.dropout_placement == "nlplearn"

    def forward(self, c: torch.Tensor, q: torch.Tensor, c_mask: torch.Tensor, q_mask: torch.Tensor) -> torch.Tensor:
        """Context c (B, Lc, d) and question q (B, Lq, d) with their masks (B, Lc), (B, Lq) -> (B, Lc, 4d)."""
        c_in, q_in = self.dropout(c), self.dropout(q)
        if not self.drop_similarity_only:
            c, q = c_in, q_in
        similarity = (self.w_context(c_in) + self.w_query(q_in).transpose(1, 2)
                      + (c_in * self.w_product) @ q_in.transpose(1, 2))
        over_query = torch.softmax(mask_logits(similarity, q_mask[:, None, :]), dim=2)  # (B, Lc, Lq)
        over_context = torch.softmax(mask_logits(similarity, c_mask[:, :, None]), dim=1)  # (B, Lc, Lq)
        a = over_query @ q
        b = over_query @ (over_context.transpose(1, 2) @ c)  # (Lq, d) first: cheaper than (Lc, Lc)
        return torch.cat([c, a, c * a, c * b], dim=2)


class Pointer(nn.Module):
    """Start logits from [M0; M1], end logits from [M0; M2], padding masked out, always in fp32:
    under bf16 autocast logits of size ~10 are spaced 0.06 apart, and ties would pick the earliest span."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.start = nn.Linear(2 * config.hidden, 1)
        self.end = nn.Linear(2 * config.hidden, 1)

    def forward(self, m0: torch.Tensor, m1: torch.Tensor, m2: torch.Tensor, mask: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """The model encoder's three passes M0, M1, M2 (B, Lc, d), the context mask (B, Lc) -> start and end
        logits (B, Lc) in fp32."""
        with torch.autocast(m0.device.type, enabled=False):
            m0, m1, m2 = m0.float(), m1.float(), m2.float()
            start = self.start(torch.cat([m0, m1], dim=2)).squeeze(2)
            end = self.end(torch.cat([m0, m2], dim=2)).squeeze(2)
        return mask_logits(start, mask), mask_logits(end, mask)
