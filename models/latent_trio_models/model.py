"""MusicVAE (Roberts et al. 2018), the flat 2-bar variant.

Encoder: token embedding -> bidirectional LSTM -> final states of both
directions -> mu and sigma (softplus). Decoder: z -> initial LSTM state (tanh
of a linear layer); every step's input is concat(embedding(previous token), z),
so z conditions each step. An embedding input replaces MusicVAE's one-hot: the
same function, much cheaper over 512 drum tokens.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn
from torch.nn import functional as F


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

    def as_dict(self) -> dict:
        return asdict(self)


class MusicVAE(nn.Module):
    def __init__(self, size: ModelSize):
        super().__init__()
        self.size = size
        self.encoder_embedding = nn.Embedding(size.vocab, size.embedding)
        self.encoder = nn.LSTM(size.embedding, size.encoder_hidden, batch_first=True, bidirectional=True)
        self.to_mu = nn.Linear(2 * size.encoder_hidden, size.latent)
        self.to_sigma = nn.Linear(2 * size.encoder_hidden, size.latent)
        # One extra row: the start token (= vocab) fed before the first step.
        self.decoder_embedding = nn.Embedding(size.vocab + 1, size.embedding)
        self.to_state = nn.Linear(size.latent, 2 * size.decoder_layers * size.decoder_hidden)
        self.decoder = nn.LSTM(
            size.embedding + size.latent, size.decoder_hidden, num_layers=size.decoder_layers, batch_first=True
        )
        self.to_logits = nn.Linear(size.decoder_hidden, size.vocab)

    @property
    def start_token(self) -> int:
        return self.size.vocab

    def encode(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """tokens [batch, steps] -> mu, sigma [batch, latent]."""
        _, (h, _) = self.encoder(self.encoder_embedding(tokens))
        final = torch.cat([h[0], h[1]], dim=-1)
        return self.to_mu(final), F.softplus(self.to_sigma(final)) + 1e-5

    def initial_state(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """z [batch, latent] -> h, c [layers, batch, hidden]."""
        layers, hidden = self.size.decoder_layers, self.size.decoder_hidden
        state = torch.tanh(self.to_state(z)).view(z.shape[0], 2, layers, hidden)
        h = state[:, 0].transpose(0, 1).contiguous()
        c = state[:, 1].transpose(0, 1).contiguous()
        return h, c

    def decode_inputs(self, previous: torch.Tensor, z: torch.Tensor, state) -> tuple[torch.Tensor, tuple]:
        """Runs the decoder over `previous` tokens [batch, steps] given z;
        returns logits [batch, steps, vocab] and the final state."""
        embedded = self.decoder_embedding(previous)
        conditioning = z.unsqueeze(1).expand(-1, previous.shape[1], -1)
        output, state = self.decoder(torch.cat([embedded, conditioning], dim=-1), state)
        return self.to_logits(output), state

    def shifted(self, tokens: torch.Tensor) -> torch.Tensor:
        """Decoder inputs for teacher forcing: the start token, then tokens[:-1]."""
        start = torch.full_like(tokens[:, :1], self.start_token)
        return torch.cat([start, tokens[:, :-1]], dim=1)

    def teacher_forced_logits(self, tokens: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        logits, _ = self.decode_inputs(self.shifted(tokens), z, self.initial_state(z))
        return logits

    @torch.no_grad()
    def sample(self, z: torch.Tensor, temperature: float = 1.0, generator: torch.Generator | None = None) -> torch.Tensor:
        """Decodes step by step; temperature <= 0 picks the argmax."""
        state = self.initial_state(z)
        token = torch.full((z.shape[0], 1), self.start_token, dtype=torch.long)
        out = []
        for _ in range(self.size.steps):
            logits, state = self.decode_inputs(token, z, state)
            logits = logits[:, -1]
            if temperature <= 0:
                token = logits.argmax(-1, keepdim=True)
            else:
                probabilities = F.softmax(logits / temperature, dim=-1)
                token = torch.multinomial(probabilities, 1, generator=generator)
            out.append(token)
        return torch.cat(out, dim=1)


def kl_divergence(mu: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, sigma) || N(0, 1)) per example, summed over latent dims."""
    return 0.5 * (mu.pow(2) + sigma.pow(2) - 1.0 - 2.0 * torch.log(sigma)).sum(-1)
