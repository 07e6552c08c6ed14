"""Transformer VAE (Jiang et al., ICASSP 2020) for melody: one latent per bar,
and masked self-attention over the bars for the phrase's structure.

Encoder: the local encoder (the hierarchical model's bidirectional LSTM over
each bar, with the chord of every step) turns bar i into h_i; a stack of
attention layers with an upper-triangular mask turns h_1..h_i into g_i, so bar
i is read in the context of the bars before it; mu_i and sigma_i come from
g_i. A bar that repeats an earlier one can then be stored as "as bar k" rather
than as its notes again: the KL on every bar's latent (beta 1, as the paper)
makes the reference the cheaper code.

Decoder: the bar latents go through a second masked attention stack (bar i
sees z_1..z_i), which writes one embedding per bar, and the hierarchical
model's bar decoder writes each bar from its embedding over its chords, every
bar from the start token. Unlike the paper's decoder, the attention reads the
latents only, not the bars already decoded: every bar decodes at once, as the
16-bar model's do, and the plugin's step graph is the one it has. A repeat
still copies: bar 5's embedding attends to z_1 when z_5 says so.

Context transfer (the paper's section 3.4) decodes one phrase's latents with
some of them taken from, or moved by, another phrase's, so that the first
phrase's material is repeated and varied where the second repeats and varies
its own (see `follow`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from . import vocab
from .model import HierarchicalVAE, ModelSize, MusicVAE

# A bar "varies" an earlier one when they agree on at least this share of steps.
VARIATION_AGREEMENT = 0.75
# Ways of following a structure phrase (see `follow`).
TRANSFER_METHODS = ("swap_bar_one", "structure_latents", "follow")


@dataclass
class TransformerSize(ModelSize):
    """ModelSize plus the bar latents' and attention stacks' sizes. `latent`
    stays the bar embedding the bar decoder reads (as the 16-bar model's)."""

    bar_latent: int = 64
    attention_width: int = 256
    heads: int = 4
    attention_layers: int = 2
    feed_forward: int = 512

    @property
    def z_size(self) -> int:
        return self.bars * self.bar_latent

    @property
    def hierarchical(self) -> bool:
        """One embedding per bar, as the hierarchical model's conductor gives."""
        return True


class MaskedAttention(nn.Module):
    """Multi-head self-attention over bars where bar i sees bars 1..i; also
    returns the weights (how much each bar draws on each earlier one)."""

    def __init__(self, width: int, heads: int):
        super().__init__()
        self.heads = heads
        self.head_width = width // heads
        self.scale = 1.0 / math.sqrt(self.head_width)
        self.to_qkv = nn.Linear(width, 3 * width)
        self.out = nn.Linear(width, width)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        bars = x.shape[1]
        qkv = self.to_qkv(x).unflatten(-1, (3, self.heads, self.head_width))
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)
        scores = (q @ k.transpose(-1, -2)) * self.scale
        later = torch.ones(bars, bars, dtype=torch.bool, device=x.device).triu(1)
        weights = F.softmax(scores.masked_fill(later, float("-inf")), dim=-1)
        mixed = (weights @ v).transpose(1, 2).flatten(2)
        return self.out(mixed), weights


class AttentionLayer(nn.Module):
    """Pre-norm transformer layer: masked attention, then a feed-forward block."""

    def __init__(self, width: int, heads: int, feed_forward: int):
        super().__init__()
        self.attention_norm = nn.LayerNorm(width)
        self.attention = MaskedAttention(width, heads)
        self.feed_forward_norm = nn.LayerNorm(width)
        self.feed_forward = nn.Sequential(nn.Linear(width, feed_forward), nn.GELU(), nn.Linear(feed_forward, width))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        attended, weights = self.attention(self.attention_norm(x))
        x = x + attended
        return x + self.feed_forward(self.feed_forward_norm(x)), weights


def bar_positions(bars: int, width: int) -> torch.Tensor:
    """Sinusoidal encodings of bar indices 0..bars-1: [bars, width]."""
    position = torch.arange(bars, dtype=torch.float32)[:, None]
    frequency = torch.exp(torch.arange(0, width, 2, dtype=torch.float32) * (-math.log(10000.0) / width))
    table = torch.zeros(bars, width)
    table[:, 0::2] = torch.sin(position * frequency)
    table[:, 1::2] = torch.cos(position * frequency)
    return table


class AttentionStack(nn.Module):
    """Bar positions added, then masked attention layers; returns the output
    [batch, bars, width] and every layer's weights [batch, layers, heads, bars, bars]."""

    def __init__(self, size: TransformerSize):
        super().__init__()
        self.width = size.attention_width
        self.layers = nn.ModuleList(
            AttentionLayer(size.attention_width, size.heads, size.feed_forward) for _ in range(size.attention_layers)
        )
        self.norm = nn.LayerNorm(size.attention_width)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = x + bar_positions(x.shape[1], self.width).to(x)
        weights = []
        for layer in self.layers:
            x, layer_weights = layer(x)
            weights.append(layer_weights)
        return self.norm(x), torch.stack(weights, dim=1)


class TransformerVAE(HierarchicalVAE):
    """See the module doc. z is the bar latents one after another
    ([batch, bars * bar_latent]), as `encode` gives it and every decode takes it."""

    def __init__(self, size: TransformerSize):
        # The flat model's encoder and bar decoder, without the hierarchical
        # model's conductor: the attention stacks take its place.
        MusicVAE.__init__(self, size)
        width = size.attention_width
        self.bar_summary = nn.Linear(2 * size.encoder_hidden, width)
        self.context_encoder = AttentionStack(size)
        self.to_mu = nn.Linear(width, size.bar_latent)
        self.to_sigma = nn.Linear(width, size.bar_latent)
        self.latent_summary = nn.Linear(size.bar_latent, width)
        self.structure_decoder = AttentionStack(size)
        self.to_bar_embedding = nn.Linear(width, size.latent)

    def bar_states(self, tokens: torch.Tensor, chords: torch.Tensor | None) -> torch.Tensor:
        """The local encoder: each bar on its own -> h [batch, bars, width]."""
        inputs = torch.cat([self.encoder_embedding(tokens), *self.chord_inputs(chords, tokens)], dim=-1)
        _, (h, _) = self.encoder(self.by_bar(inputs))
        return self.bar_summary(torch.cat([h[0], h[1]], dim=-1).view(tokens.shape[0], self.size.bars, -1))

    def encode_with_attention(
        self, tokens: torch.Tensor, chords: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """mu, sigma per bar [batch, bars, bar_latent] and the encoder's
        attention weights [batch, layers, heads, bars, bars]."""
        context, weights = self.context_encoder(self.bar_states(tokens, chords))
        return self.to_mu(context), F.softplus(self.to_sigma(context)) + 1e-5, weights

    def encode(self, tokens: torch.Tensor, chords: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """mu, sigma [batch, bars * bar_latent]: the bar latents one after
        another, so that z is one vector as every other model's."""
        mu, sigma, _ = self.encode_with_attention(tokens, chords)
        return mu.flatten(1), sigma.flatten(1)

    def structure_with_attention(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """z [batch, bars * bar_latent] -> bar embeddings [batch, bars,
        latent] and the decoder's attention weights."""
        per_bar = z.view(z.shape[0], self.size.bars, self.size.bar_latent)
        structure, weights = self.structure_decoder(self.latent_summary(per_bar))
        return self.to_bar_embedding(structure), weights

    def bar_embeddings(self, z: torch.Tensor) -> torch.Tensor:
        return self.structure_with_attention(z)[0]


def own_material(bar: np.ndarray) -> np.ndarray:
    """A bar's tokens as its own material: a note-off before its first
    note-on only ends what the bar before left sounding, so it counts as a
    rest (a bar repeated after a held note is still a repeat)."""
    onsets = np.flatnonzero(bar >= 2)
    first = onsets[0] if len(onsets) else len(bar)
    out = bar.copy()
    leading = out[:first]
    leading[leading == vocab.NOTE_OFF] = vocab.NO_EVENT
    return out


def references(tokens: np.ndarray) -> dict[int, tuple[int, float]]:
    """Bar -> (the earlier bar it repeats or varies, their step agreement):
    for every bar with a note-on, the earlier bar that agrees with it on the
    most steps (the first of equals), where that is VARIATION_AGREEMENT or more."""
    bars = np.stack([own_material(bar) for bar in tokens.reshape(-1, vocab.STEPS_PER_BAR)])
    found = {}
    for bar in range(1, len(bars)):
        if not (bars[bar] >= 2).any():
            continue
        agreement = (bars[:bar] == bars[bar]).mean(-1)
        earlier = int(np.argmax(agreement))
        if agreement[earlier] >= VARIATION_AGREEMENT:
            found[bar] = (earlier, float(agreement[earlier]))
    return found


def follow(z_content: torch.Tensor, z_structure: torch.Tensor, structure: np.ndarray, how: str) -> tuple[torch.Tensor, np.ndarray]:
    """Latents [z_size] and bar sources [bars] of a content phrase following
    a structure phrase (tokens `structure`), one of TRANSFER_METHODS:
    `swap_bar_one`, the paper's (bar 1's latent from the content, the rest
    from the structure phrase); `structure_latents` (the structure phrase's
    latents on the bars that repeat or vary an earlier one); `follow`, what
    the plugin plays: on those bars the content's latent of the earlier bar
    moved as the structure phrase moves from its earlier bar to this one, and
    an exact repeat played from the earlier bar's embedding (`sources`)."""
    bars = len(structure) // vocab.STEPS_PER_BAR
    content, clip = z_content.view(bars, -1), z_structure.view(bars, -1)
    out, sources = content.clone(), np.arange(bars)
    if how == "swap_bar_one":
        out[1:] = clip[1:]
        return out.flatten(), sources
    for bar, (earlier, agreement) in references(structure).items():
        if how == "structure_latents":
            out[bar] = clip[bar]
        else:  # follow: the clip's variation of the earlier bar, on the content's
            out[bar] = out[earlier] + clip[bar] - clip[earlier]
            if agreement == 1.0:
                sources[bar] = sources[earlier]
    return out.flatten(), sources
