"""The song prior: a denoising diffusion model over sequences of 32 2-bar
latents (64 bars), after Mittal et al., "Symbolic Music Generation with
Diffusion Models" (ISMIR 2021).

The denoiser is a transformer over the 32 slots: the latents are projected
to the model width, sinusoidal positions are added, and every layer norm is
modulated (FiLM) by an encoding of the noise level; after the transformer
layers, noise-conditioned residual fully connected layers, then a projection
back to the latent size. Unlike the paper's, it predicts the clean latents
(as DALL-E 2's diffusion prior does) and the noise is derived from them: a
model narrower than the latents (128 against bass and melody's 256) cannot
pass 256 independent noise values through, while the clean latents lie in
fewer directions (128 principal components hold 99 % of their variance).
Predicting the noise directly, it never got below half the noise's
variance at any level, and DDIM diverged. The schedule is the paper's:
linear betas from 1e-6 to 0.01 over 1,000 steps. Sampling uses DDIM (a few
deterministic steps from seeded noise).

Harmony: a bass or melody prior also reads the chords each slot will be
played over (per slot, the share of its steps each pitch class sounds in the
chord, and the share with no chord), so that it writes a song for its
progression: where a song's chords repeat or change, its sections tend to.
On the held-out songs the melody prior's error is 0.156 with their own
chords against 0.186 with another song's (0.163 for the same prior trained
without chords). The key itself is the 2-bar decoder's: it follows the
chords it is given, whatever the latent.

Infilling: the denoiser also reads the slots to keep (their clean latents
and a flag per slot) and is trained on random masks (none, the ends of a
span, a beginning, scattered slots), so the slots it writes agree with the
kept ones; the sampler also puts the kept slots back, diffused to each
step's noise level. The paper's replacement alone (an unconditioned model)
writes a middle that sits beside the kept ends rather than continuing them:
drum infilling's class Consistency 0.958 against interpolation's 0.980.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

SCHEDULE_STEPS = 1000
BETA_START = 1e-6
BETA_END = 0.01
# The noise encoding's frequencies are scaled so that levels in [0, 1] spread
# over the sinusoids as positions 0-5000 would (the paper's factor).
NOISE_SCALE = 5000.0


@dataclass
class DenoiserSize:
    """Layer sizes; stored in checkpoints and manifests."""

    latent: int
    slots: int = 32
    width: int = 128
    layers: int = 6
    heads: int = 8
    feed_forward: int = 512
    head_width: int = 1024
    head_layers: int = 2
    # Bound of the predicted clean latents in the scaled space (1 for priors
    # trained with the range scaling, whose latents all lie in [-1, 1]).
    clean_limit: float = 1.0
    # Values a slot's harmony input holds (0: a prior that hears no chords).
    harmony: int = 0

    def as_dict(self) -> dict:
        return asdict(self)


def sinusoids(values: torch.Tensor, width: int) -> torch.Tensor:
    """[...] -> [..., width]: sines and cosines of `values` at geometric frequencies."""
    half = width // 2
    frequencies = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float32) / half)
    angles = values.unsqueeze(-1).float() * frequencies
    return torch.cat([torch.sin(angles), torch.cos(angles)], dim=-1)


def alpha_bars() -> torch.Tensor:
    """Cumulative signal share at each of the schedule's steps (1-based: index t-1)."""
    betas = torch.linspace(BETA_START, BETA_END, SCHEDULE_STEPS, dtype=torch.float64)
    return torch.cumprod(1.0 - betas, dim=0)


class FiLMNorm(nn.Module):
    """Layer norm whose output is scaled and shifted by the noise encoding."""

    def __init__(self, width: int, noise_width: int):
        super().__init__()
        self.norm = nn.LayerNorm(width)
        self.film = nn.Linear(noise_width, 2 * width)
        # Start as a plain layer norm.
        nn.init.zeros_(self.film.weight)
        nn.init.zeros_(self.film.bias)

    def forward(self, x: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        scale, shift = self.film(noise).unsqueeze(1).chunk(2, dim=-1)
        return self.norm(x) * (1.0 + scale) + shift


class Layer(nn.Module):
    """Pre-norm transformer encoder layer with FiLM on both norms."""

    def __init__(self, size: DenoiserSize):
        super().__init__()
        self.heads = size.heads
        self.scale = 1.0 / math.sqrt(size.width // size.heads)
        self.attention_norm = FiLMNorm(size.width, size.width)
        self.qkv = nn.Linear(size.width, 3 * size.width)
        self.out = nn.Linear(size.width, size.width)
        self.feed_forward_norm = FiLMNorm(size.width, size.width)
        self.feed_forward = nn.Sequential(
            nn.Linear(size.width, size.feed_forward), nn.GELU(), nn.Linear(size.feed_forward, size.width)
        )

    def forward(self, x: torch.Tensor, noise: torch.Tensor, padding: torch.Tensor | None) -> torch.Tensor:
        batch, slots, width = x.shape
        q, k, v = self.qkv(self.attention_norm(x, noise)).chunk(3, dim=-1)

        def heads(t: torch.Tensor) -> torch.Tensor:
            return t.reshape(batch, slots, self.heads, width // self.heads).transpose(1, 2)

        scores = heads(q) @ heads(k).transpose(-1, -2) * self.scale
        if padding is not None:
            scores = scores.masked_fill(padding[:, None, None, :], float("-inf"))
        mixed = (scores.softmax(-1) @ heads(v)).transpose(1, 2).reshape(batch, slots, width)
        x = x + self.out(mixed)
        return x + self.feed_forward(self.feed_forward_norm(x, noise))


class ResidualHead(nn.Module):
    """A noise-conditioned residual fully connected layer."""

    def __init__(self, size: DenoiserSize):
        super().__init__()
        self.norm = FiLMNorm(size.width, size.width)
        self.up = nn.Linear(size.width, size.head_width)
        self.down = nn.Linear(size.head_width, size.width)

    def forward(self, x: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        return x + self.down(F.gelu(self.up(self.norm(x, noise))))


class Denoiser(nn.Module):
    """Predicts the clean latent sequences [batch, slots, latent] (in the
    scaled [-1, 1] space) from noisy ones, given the noise level
    sqrt(alpha_bar) [batch]."""

    def __init__(self, size: DenoiserSize):
        super().__init__()
        self.size = size
        self.project = nn.Linear(size.latent, size.width)
        # The kept slots' clean latents and their flag; zero at first, so
        # training starts from a denoiser that ignores them.
        self.context = nn.Linear(size.latent + 1, size.width)
        nn.init.zeros_(self.context.weight)
        nn.init.zeros_(self.context.bias)
        self.harmony = nn.Linear(size.harmony, size.width) if size.harmony else None
        self.noise_mlp = nn.Sequential(nn.Linear(size.width, size.width), nn.SiLU(), nn.Linear(size.width, size.width))
        self.layers = nn.ModuleList(Layer(size) for _ in range(size.layers))
        self.heads = nn.ModuleList(ResidualHead(size) for _ in range(size.head_layers))
        self.final_norm = nn.LayerNorm(size.width)
        self.unproject = nn.Linear(size.width, size.latent)
        self.register_buffer("positions", sinusoids(torch.arange(size.slots), size.width), persistent=False)

    def forward(
        self,
        x: torch.Tensor,
        noise_level: torch.Tensor,
        padding: torch.Tensor | None = None,
        known: torch.Tensor | None = None,
        keep: torch.Tensor | None = None,
        harmony: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """`known` [batch, slots, latent] holds the clean latents of the
        slots flagged in `keep` [batch, slots] (float 0/1); both absent when
        nothing is kept. `harmony` [batch, slots, size.harmony]: the chords of
        every slot, for a prior that hears them."""
        noise = self.noise_mlp(sinusoids(noise_level * NOISE_SCALE, self.size.width))
        if known is None or keep is None:
            known = torch.zeros_like(x)
            keep = torch.zeros(x.shape[:2], dtype=x.dtype)
        context = torch.cat([known * keep[..., None], keep[..., None]], dim=-1)
        h = self.project(x) + self.context(context) + self.positions[: x.shape[1]]
        if self.harmony is not None:
            if harmony is None:
                raise ValueError("this song prior writes songs over chords: give it every slot's harmony")
            h = h + self.harmony(harmony)
        for layer in self.layers:
            h = layer(h, noise, padding)
        for head in self.heads:
            h = head(h, noise)
        limit = self.size.clean_limit
        return self.unproject(self.final_norm(h)).clamp(-limit, limit)

    def noise(
        self,
        x: torch.Tensor,
        noise_level: torch.Tensor,
        known: torch.Tensor | None = None,
        keep: torch.Tensor | None = None,
        harmony: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The noise in `x` the predicted clean latents imply (what the
        exported graph gives the plugin's sampler)."""
        level = noise_level[:, None, None]
        clean = self(x, noise_level, known=known, keep=keep, harmony=harmony)
        return (x - level * clean) / (1 - level**2).clamp(min=1e-12).sqrt()


# Widest standard deviation of a scaled latent dimension: at the noisiest
# level (sqrt(alpha_bar) 0.08) the noise still drowns it, so sampling may
# start from unit Gaussian noise. Uncapped, the melody's silent-or-not
# dimension spread 8 wide, and songs drawn from pure noise held a fifth of
# the data's silent slots.
MAX_SPREAD = 2.0


@dataclass
class Normaliser:
    """Per-dimension linear map of the latents: `low` goes to -1 and `high`
    to +1.

    Fitted, a dimension is centred on the training latents' mean and
    measured in units of the 2-bar model's own uncertainty there (its
    encoder's mean standard deviation), all dimensions by one common factor
    that would give the scaled latents unit variance on average (the cap
    below leaves the melody's 0.4). The denoiser's squared error then
    weighs an error by how much it changes what the decoder plays: of the
    melody model's 128 dimensions about 22 carry the
    music (standard deviation under 0.5) and the rest barely vary against
    their noise, which a per-dimension unit variance would have weighed as
    much. No dimension spreads wider than MAX_SPREAD. The paper maps each
    dimension's minimum and maximum to -1 and +1; on these latents that
    leaves a standard deviation near 0.19, so the signal outweighs the noise
    only in the first ~85 of the schedule's 1,000 steps, where training
    spent 8 % of its samples and a 50-step sampler 4 of its steps. (The
    shipped drum and bass priors keep the range scaling they were trained
    with: it is stored with each prior.)"""

    low: np.ndarray
    high: np.ndarray

    @classmethod
    def fit(cls, latents: np.ndarray, posterior_sd: np.ndarray) -> Normaliser:
        mean = latents.mean(0)
        relative = (latents - mean) / posterior_sd
        scale = np.maximum(posterior_sd * np.sqrt(np.mean(relative.var(0))), latents.std(0) / MAX_SPREAD)
        return cls((mean - scale).astype(np.float32), (mean + scale).astype(np.float32))

    def limit(self, latents: np.ndarray) -> float:
        """The largest scaled value of `latents`, rounded up: the bound of
        the denoiser's predicted clean latents."""
        return float(np.ceil(np.abs(self.forward(latents)).max()))

    def forward(self, latents: np.ndarray) -> np.ndarray:
        return (2.0 * (latents - self.low) / (self.high - self.low) - 1.0).astype(np.float32)

    def inverse(self, scaled: np.ndarray) -> np.ndarray:
        return ((scaled + 1.0) / 2.0 * (self.high - self.low) + self.low).astype(np.float32)


# Shares of training rows by what they keep: nothing, the ends around a
# span, a beginning, scattered slots (the plugin's re-rolled section, song
# so far, locked slots).
KEEP_KINDS = (0.4, 0.3, 0.1, 0.2)


def infill_masks(padding: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Slots to keep [batch, slots] (bool) for a training batch: each row
    one of KEEP_KINDS, never a padding slot, and at least one real slot left
    to write."""
    batch, slots = padding.shape
    keep = torch.zeros(batch, slots, dtype=torch.bool)
    kinds = torch.multinomial(torch.tensor(KEEP_KINDS), batch, replacement=True, generator=generator)
    lengths = (~padding).sum(1)
    for row in range(batch):
        length = int(lengths[row])
        if length < 2:
            continue
        draw = torch.randint(0, 1 << 30, (3,), generator=generator).tolist()
        kind = int(kinds[row])
        if kind == 1:
            start = draw[0] % length
            end = start + 1 + draw[1] % (length - start)
            keep[row, :length] = True
            keep[row, start:end] = False
        elif kind == 2:
            keep[row, : 1 + draw[0] % (length - 1)] = True
        elif kind == 3:
            share = 0.1 + 0.8 * (draw[0] % 1000) / 1000
            keep[row, :length] = torch.rand(length, generator=generator) < share
        if keep[row, :length].all():
            keep[row, draw[2] % length] = False
    return keep


def training_loss(
    model: Denoiser,
    x0: torch.Tensor,
    padding: torch.Tensor,
    generator: torch.Generator,
    harmony: torch.Tensor | None = None,
) -> torch.Tensor:
    """The mean squared error of the predicted clean latents of a batch of
    scaled sequences (over their slots' `harmony`, for a prior that hears
    it) noised as DDPM does (padding: slots past a short song's
    end, left out of attention and loss), over the slots not kept (see
    `infill_masks`). The noise level is drawn continuously between two
    neighbouring steps' (as the paper does), so any sampler's levels are
    seen."""
    bars = alpha_bars()
    batch = x0.shape[0]
    t = torch.randint(1, SCHEDULE_STEPS + 1, (batch,), generator=generator)
    previous = torch.where(t > 1, bars[(t - 2).clamp(min=0)], torch.ones_like(bars[t - 1]))
    high, low = previous.sqrt(), bars[t - 1].sqrt()
    level = (low + (high - low) * torch.rand(batch, generator=generator, dtype=torch.float64)).float()
    noise = torch.randn(x0.shape, generator=generator)
    noisy = level[:, None, None] * x0 + (1 - level[:, None, None] ** 2).sqrt() * noise
    keep = infill_masks(padding, generator)
    predicted = model(noisy, level, padding, known=x0, keep=keep.float(), harmony=harmony)
    errors = ((predicted - x0) ** 2).mean(-1)
    written = (~padding & ~keep).float()
    return (errors * written).sum() / written.sum()


def ddim_levels(steps: int) -> list[float]:
    """The noise levels sqrt(alpha_bar) a DDIM sampler of `steps` steps
    visits, from the noisiest; the last is 1 (clean)."""
    bars = alpha_bars()
    indices = np.linspace(SCHEDULE_STEPS - 1, 0, steps).round().astype(int)
    return [float(bars[i].sqrt()) for i in indices] + [1.0]


@torch.no_grad()
def sample(
    model: Denoiser,
    count: int,
    steps: int = 50,
    generator: torch.Generator | None = None,
    fixed: torch.Tensor | None = None,
    keep: torch.Tensor | None = None,
    resample: int = 1,
    harmony: torch.Tensor | None = None,
) -> torch.Tensor:
    """DDIM (deterministic) from Gaussian noise: [count, slots, latent] scaled
    latents (over `harmony` [count, slots, size.harmony], for a prior that
    hears the chords). With `fixed` [count, slots, latent] and `keep` [count, slots]
    (bool), the kept slots are the fixed ones, diffused to each step's noise
    level with one noise draw and given to the denoiser as they are, and
    the others are generated around them;
    `resample` > 1 takes each infilling step that many times, noising the
    result back between tries (RePaint's resampling), so the written slots
    agree with the kept ones rather than only sitting beside them."""
    size = model.size
    shape = (count, size.slots, size.latent)
    x = torch.randn(shape, generator=generator)
    fixed_noise = torch.randn(shape, generator=generator)
    levels = ddim_levels(steps)
    infilling = fixed is not None and keep is not None
    known = fixed if infilling else None
    keep_flags = keep.float() if infilling else None
    for level, next_level in zip(levels[:-1], levels[1:]):
        for attempt in range(resample if infilling else 1):
            if attempt > 0:
                # Back to this step's noise level with fresh noise.
                ratio = level / next_level
                x = ratio * x + math.sqrt(max(1 - ratio**2, 0.0)) * torch.randn(shape, generator=generator)
            if infilling:
                diffused = level * fixed + math.sqrt(1 - level**2) * fixed_noise
                x = torch.where(keep[..., None], diffused, x)
            x0 = model(x, torch.full((count,), level), known=known, keep=keep_flags, harmony=harmony)
            eps = (x - level * x0) / math.sqrt(1 - level**2)
            x = next_level * x0 + math.sqrt(max(1 - next_level**2, 0.0)) * eps
    if infilling:
        x = torch.where(keep[..., None], fixed, x)
    return x
