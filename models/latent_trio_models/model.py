"""MusicVAE (Roberts et al. 2018): the flat model (2 bars, and the flat
16-bar baseline) and the hierarchical 16-bar model.

Encoder: token embedding -> bidirectional LSTM -> final states of both
directions -> mu and sigma (softplus). Decoder: z -> initial LSTM state (tanh
of a linear layer); every step's input is concat(embedding(previous token), z),
so z conditions each step. An embedding input replaces MusicVAE's one-hot: the
same function, much cheaper over 512 drum tokens.

Longer models (16 bars) read their input in two levels: the bidirectional
LSTM reads each bar, and a second bidirectional LSTM reads the bars' final
states. It still reads the whole sequence both ways, as the paper's encoder
does, at a tenth of the CPU time of one LSTM over 256 steps (its backward pass
cannot batch across time), which is what makes these models trainable here.

Hierarchical (HierarchicalVAE, the paper's 16-bar model): a "conductor" LSTM turns z into one embedding per bar, and
the flat model's decoder, now the bar decoder, writes each bar from its
embedding (initial state and per-step conditioning) starting from the start
token. Bars are not autoregressive across bar lines: only the conductor
carries a bar into the next. That is the paper's choice of keeping the bar
decoder from ignoring z, and it is what lets the plugin re-decode a phrase
from any bar line on without touching the bars already heard.

Chord-conditioned (bass and melody, as MusicVAE's chord-conditioned models):
the chord sounding at each step (12 pitch classes and a no-chord flag, see
harmony.chroma) is part of every encoder and decoder input, so the latent
holds what the chords do not, and one progression can steer every part.

Refined latents (`MusicVAE.refine`): the encoder generalises to unseen music
worse than the decoder does (Cremer et al. 2018's amortisation gap). On 512
held-out drum windows the encoder mean reconstructs 0.796 of the steps
teacher-forced; the latent found by 30 Adam steps on the training loss from
that mean (reconstruction + 0.2 KL, the loss the encoder was trained to
minimise) reconstructs 0.931, at a KL of 47.8 nats against the encoder's
44.4. So a window's latent is the encoder mean refined that way; the plugin
does the same when it encodes a clip, through the exported latent gradient
graph.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn
from torch.nn import functional as F

# Adam steps and step size that refine an encoder mean (`MusicVAE.refine`),
# chosen on 768 validation drum windows (with the KL at full weight): 30 steps
# at 0.1 reach 0.882 of the 0.883 teacher-forced accuracy that 60 give (the
# encoder mean: 0.799).
REFINE_STEPS = 30
REFINE_LEARNING_RATE = 0.1


@dataclass
class ModelSize:
    """Layer sizes; stored in checkpoints and manifests."""

    vocab: int
    steps: int = 32
    latent: int = 128
    embedding: int = 64
    encoder_hidden: int = 256
    decoder_hidden: int = 256
    decoder_layers: int = 2
    # harmony.CHROMA_SIZE for chord-conditioned models, 0 without chords.
    chord_size: int = 0
    bars: int = 2
    # Width of the encoder's second level over bars; 0 reads all steps in one LSTM.
    bar_sequence_hidden: int = 0
    # Conductor LSTM width; 0 for a flat model (one decoder over all steps).
    conductor_hidden: int = 0
    conductor_layers: int = 2
    # Dropout on the encoder's and the decoder's step inputs while training
    # (0: none); a regulariser, with no weights of its own.
    dropout: float = 0.0

    @property
    def hierarchical(self) -> bool:
        return self.conductor_hidden > 0

    @property
    def steps_per_bar(self) -> int:
        return self.steps // self.bars

    @property
    def z_size(self) -> int:
        """Size of z (a Transformer VAE's is all its bar latents)."""
        return self.latent

    def as_dict(self) -> dict:
        return asdict(self)


class MusicVAE(nn.Module):
    def __init__(self, size: ModelSize):
        super().__init__()
        self.size = size
        self.encoder_embedding = nn.Embedding(size.vocab, size.embedding)
        self.encoder = nn.LSTM(size.embedding + size.chord_size, size.encoder_hidden, batch_first=True, bidirectional=True)
        summary = size.encoder_hidden
        if size.bar_sequence_hidden:
            self.bar_sequence_encoder = nn.LSTM(
                2 * size.encoder_hidden, size.bar_sequence_hidden, batch_first=True, bidirectional=True
            )
            summary = size.bar_sequence_hidden
        self.to_mu = nn.Linear(2 * summary, size.latent)
        self.to_sigma = nn.Linear(2 * summary, size.latent)
        # One extra row: the start token (= vocab) fed before the first step.
        self.decoder_embedding = nn.Embedding(size.vocab + 1, size.embedding)
        self.to_state = nn.Linear(size.latent, 2 * size.decoder_layers * size.decoder_hidden)
        self.decoder = nn.LSTM(
            size.embedding + size.latent + size.chord_size,
            size.decoder_hidden,
            num_layers=size.decoder_layers,
            batch_first=True,
        )
        self.to_logits = nn.Linear(size.decoder_hidden, size.vocab)
        self.input_dropout = nn.Dropout(size.dropout)

    @property
    def start_token(self) -> int:
        return self.size.vocab

    def by_bar(self, values: torch.Tensor) -> torch.Tensor:
        """[batch, steps, ...] -> [batch * bars, steps_per_bar, ...]."""
        return values.reshape(values.shape[0] * self.size.bars, self.size.steps_per_bar, *values.shape[2:])

    def chord_inputs(self, chords: torch.Tensor | None, tokens: torch.Tensor) -> list[torch.Tensor]:
        """The chord part of each step's input ([] for a model without chords;
        "no chord" where a chord-conditioned model is given none)."""
        if self.size.chord_size == 0:
            return []
        if chords is None:
            chords = torch.zeros(*tokens.shape[:2], self.size.chord_size)
            chords[..., -1] = 1.0
        return [chords]

    def encode(self, tokens: torch.Tensor, chords: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """tokens [batch, steps] (and chords [batch, steps, 13]) -> mu, sigma [batch, latent]."""
        inputs = torch.cat([self.input_dropout(self.encoder_embedding(tokens)), *self.chord_inputs(chords, tokens)], dim=-1)
        if self.size.bar_sequence_hidden:
            _, (h, _) = self.encoder(self.by_bar(inputs))
            bars = torch.cat([h[0], h[1]], dim=-1).view(tokens.shape[0], self.size.bars, -1)
            _, (h, _) = self.bar_sequence_encoder(bars)
        else:
            _, (h, _) = self.encoder(inputs)
        final = torch.cat([h[0], h[1]], dim=-1)
        return self.to_mu(final), F.softplus(self.to_sigma(final)) + 1e-5

    def initial_state(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """z [batch, latent] -> h, c [layers, batch, hidden]."""
        layers, hidden = self.size.decoder_layers, self.size.decoder_hidden
        state = torch.tanh(self.to_state(z)).view(z.shape[0], 2, layers, hidden)
        h = state[:, 0].transpose(0, 1).contiguous()
        c = state[:, 1].transpose(0, 1).contiguous()
        return h, c

    def decode_inputs(
        self, previous: torch.Tensor, z: torch.Tensor, state, chords: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, tuple]:
        """Runs the decoder over `previous` tokens [batch, steps] given z (and
        the chords of the steps being decoded); returns logits [batch, steps,
        vocab] and the final state."""
        embedded = self.input_dropout(self.decoder_embedding(previous))
        conditioning = z.unsqueeze(1).expand(-1, previous.shape[1], -1)
        inputs = torch.cat([embedded, conditioning, *self.chord_inputs(chords, previous)], dim=-1)
        output, state = self.decoder(inputs, state)
        return self.to_logits(output), state

    def shifted(self, tokens: torch.Tensor) -> torch.Tensor:
        """Decoder inputs for teacher forcing: the start token, then tokens[:-1]."""
        start = torch.full_like(tokens[:, :1], self.start_token)
        return torch.cat([start, tokens[:, :-1]], dim=1)

    def sequences(self, z: torch.Tensor, chords: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor | None, int]:
        """What the decoder writes for z [batch, latent]: one sequence per
        example, from z, over its chords, all steps long. Returns the
        sequences' latents, their chords and their length in steps."""
        return z, chords, self.size.steps

    def decoder_logits(self, inputs: torch.Tensor, z: torch.Tensor, chords: torch.Tensor | None = None) -> torch.Tensor:
        """Logits [batch, steps, vocab] for given decoder inputs (as made by
        `shifted`, possibly with some replaced by samples)."""
        latents, sequence_chords, steps = self.sequences(z, chords)
        rows = inputs.reshape(len(latents), steps)
        logits, _ = self.decode_inputs(rows, latents, self.initial_state(latents), sequence_chords)
        return logits.reshape(*inputs.shape, -1)

    def teacher_forced_logits(self, tokens: torch.Tensor, z: torch.Tensor, chords: torch.Tensor | None = None) -> torch.Tensor:
        return self.decoder_logits(self.shifted(tokens), z, chords)

    def negative_elbo(
        self,
        tokens: torch.Tensor,
        z: torch.Tensor,
        sigma: torch.Tensor,
        chords: torch.Tensor | None = None,
        kl_weight: float = 1.0,
    ) -> torch.Tensor:
        """Per window, in nats: the teacher-forced reconstruction's NLL
        decoding z, plus `kl_weight` times the KL of N(z, sigma) from the
        prior (weight 1: the negative ELBO)."""
        return window_loss(self.teacher_forced_logits(tokens, z, chords), tokens, z, sigma, kl_weight)

    def refine(
        self,
        tokens: torch.Tensor,
        chords: torch.Tensor | None,
        kl_weight: float,
        steps: int = REFINE_STEPS,
        learning_rate: float = REFINE_LEARNING_RATE,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The latent that explains each window best: the encoder mean, then
        `steps` Adam steps on the window's training loss (reconstruction +
        `kl_weight` KL, the encoder's sigma kept). Returns the latents and
        sigma; windows refine independently."""
        with torch.no_grad():
            mu, sigma = self.encode(tokens, chords)
        z = mu.clone().requires_grad_(True)
        optimizer = torch.optim.Adam([z], lr=learning_rate)
        with torch.enable_grad():
            for _ in range(steps):
                loss = self.negative_elbo(tokens, z, sigma, chords, kl_weight).sum()
                (z.grad,) = torch.autograd.grad(loss, [z])
                optimizer.step()
        return z.detach(), sigma

    @torch.no_grad()
    def sample(
        self,
        z: torch.Tensor,
        temperature: float = 1.0,
        generator: torch.Generator | None = None,
        chords: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Decodes step by step (a hierarchical model all bars at once, each
        from its embedding); temperature <= 0 picks the argmax."""
        latents, sequence_chords, steps = self.sequences(z, chords)
        tokens = self.sample_steps(latents, steps, temperature, generator, sequence_chords)
        return tokens.reshape(z.shape[0], self.size.steps)

    def sample_steps(
        self,
        z: torch.Tensor,
        steps: int,
        temperature: float,
        generator: torch.Generator | None,
        chords: torch.Tensor | None,
    ) -> torch.Tensor:
        """`steps` tokens decoded from z, from the start token on."""
        state = self.initial_state(z)
        token = torch.full((z.shape[0], 1), self.start_token, dtype=torch.long)
        out = []
        for step in range(steps):
            step_chords = None if chords is None else chords[:, step : step + 1]
            logits, state = self.decode_inputs(token, z, state, step_chords)
            logits = logits[:, -1]
            if temperature <= 0:
                token = logits.argmax(-1, keepdim=True)
            else:
                probabilities = F.softmax(logits / temperature, dim=-1)
                token = torch.multinomial(probabilities, 1, generator=generator)
            out.append(token)
        return torch.cat(out, dim=1)


class HierarchicalVAE(MusicVAE):
    """MusicVAE's hierarchical decoder over `size.bars` bars (see the module
    doc). `size.latent` is both z's size and each bar embedding's, so the bar
    decoder has exactly the flat model's shapes (and the plugin's step graph)."""

    def __init__(self, size: ModelSize):
        super().__init__(size)
        layers, hidden = size.conductor_layers, size.conductor_hidden
        self.to_conductor_state = nn.Linear(size.latent, 2 * layers * hidden)
        # The conductor's input is constant (zeros): it runs on its state alone.
        self.conductor = nn.LSTM(1, hidden, num_layers=layers, batch_first=True)
        self.to_bar_embedding = nn.Linear(hidden, size.latent)

    def bar_embeddings(self, z: torch.Tensor) -> torch.Tensor:
        """z [batch, latent] -> one embedding per bar [batch, bars, latent]."""
        layers, hidden = self.size.conductor_layers, self.size.conductor_hidden
        state = torch.tanh(self.to_conductor_state(z)).view(z.shape[0], 2, layers, hidden)
        h = state[:, 0].transpose(0, 1).contiguous()
        c = state[:, 1].transpose(0, 1).contiguous()
        output, _ = self.conductor(z.new_zeros(z.shape[0], self.size.bars, 1), (h, c))
        return self.to_bar_embedding(output)

    def shifted(self, tokens: torch.Tensor) -> torch.Tensor:
        """Each bar starts from the start token (no autoregression across bar lines)."""
        return super().shifted(self.by_bar(tokens)).reshape(tokens.shape)

    def sequences(self, z: torch.Tensor, chords: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor | None, int]:
        """One sequence per bar, from the bar's embedding, over its chords."""
        embeddings = self.bar_embeddings(z).reshape(-1, self.size.latent)
        bar_chords = None if chords is None else self.by_bar(chords)
        return embeddings, bar_chords, self.size.steps_per_bar


def build(size: ModelSize) -> MusicVAE:
    """The model a size describes: hierarchical when it has a conductor."""
    return HierarchicalVAE(size) if size.hierarchical else MusicVAE(size)


def warm_start(model: MusicVAE, state: dict) -> list[str]:
    """Loads every weight of a shorter model's state whose name and shape
    match (encoder and decoder from a 2-bar model); returns the names left
    to training (the conductor)."""
    own = model.state_dict()
    matched = {name: value for name, value in state.items() if name in own and own[name].shape == value.shape}
    model.load_state_dict(matched, strict=False)
    return sorted(set(own) - set(matched))


def with_chord_inputs(model: MusicVAE, chord_size: int) -> MusicVAE:
    """A chord-conditioned copy of a trained model that, to start with, plays
    exactly as it did: the new chord inputs get zero weights, and training
    teaches them what the chords mean (a warm start, not training anew)."""
    size = ModelSize(**{**model.size.as_dict(), "chord_size": chord_size})
    conditioned = MusicVAE(size)
    state = model.state_dict()
    for name, value in conditioned.state_dict().items():
        old = state[name]
        if old.shape != value.shape:  # the LSTMs' first-layer input weights
            padded = torch.zeros_like(value)
            padded[:, : old.shape[1]] = old
            state[name] = padded
    conditioned.load_state_dict(state)
    return conditioned


def window_loss(logits: torch.Tensor, tokens: torch.Tensor, z: torch.Tensor, sigma: torch.Tensor, kl_weight: float) -> torch.Tensor:
    """Per window: the NLL of `tokens` under teacher-forced `logits`, plus
    `kl_weight` times the KL of N(z, sigma) from the prior."""
    reconstruction = F.cross_entropy(logits.transpose(1, 2), tokens, reduction="none").sum(-1)
    return reconstruction + kl_weight * kl_divergence(z, sigma)


def kl_divergence(mu: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, sigma) || N(0, 1)) per example, summed over latent dims."""
    return 0.5 * (mu.pow(2) + sigma.pow(2) - 1.0 - 2.0 * torch.log(sigma)).sum(-1)
