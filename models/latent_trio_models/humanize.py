"""Humanize: a quantised 2-bar pattern in, a performance out (GrooVAE's
Humanize task, Gillick et al. 2019, as a sequence model rather than a VAE).

Drums: the hits of each of the 9 classes at each 16th step in; for every
hit, the velocity a drummer of the Groove MIDI Dataset would give it and its
timing offset from the grid (in 16ths, within half a step) out. Bass and
melody: the tokens in; the velocity of every note-on out (POP909's pianists).

A bidirectional LSTM reads the whole window, so a hit's dynamics and feel
depend on what comes before and after it (a snare before a fill, the last
hat of a bar). It predicts the median performance (trained on absolute
error, the measure the evaluation uses); the plugin's Humanize knob scales
how far the notes move from the grid and the fixed velocities towards it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

from . import vocab

#: Position-in-bar features: one flag per 16th of a 4/4 bar.
POSITIONS = vocab.STEPS_PER_BAR
#: Offsets stay within this many 16ths of the grid (the data's bound).
MAX_OFFSET = 0.5


@dataclass
class HumanizeSize:
    """Layer sizes; stored in checkpoints and manifests."""

    part: str
    steps: int = 32
    hidden: int = 96
    layers: int = 2
    embedding: int = 16

    def as_dict(self) -> dict:
        return asdict(self)


class Humanizer(nn.Module):
    """Drums: `forward(hits [b, steps, 9] float)` -> (velocity [b, steps, 9]
    in MIDI units, offset [b, steps, 9] in 16ths). Bass and melody:
    `forward(tokens [b, steps] int64)` -> (velocity [b, steps], None)."""

    def __init__(self, size: HumanizeSize):
        super().__init__()
        self.size = size
        self.drums = size.part == "drums"
        classes = len(vocab.DRUM_CLASSES)
        if self.drums:
            features = classes
        else:
            self.embedding = nn.Embedding(vocab.vocab_size(size.part), size.embedding)
            features = size.embedding
        positions = torch.zeros(size.steps, POSITIONS)
        positions[torch.arange(size.steps), torch.arange(size.steps) % POSITIONS] = 1.0
        self.register_buffer("positions", positions, persistent=False)
        self.rnn = nn.LSTM(
            features + POSITIONS, size.hidden, num_layers=size.layers, batch_first=True, bidirectional=True
        )
        outputs = 2 * classes if self.drums else 1
        self.head = nn.Linear(2 * size.hidden, outputs)

    def forward(self, pattern: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        inputs = pattern if self.drums else self.embedding(pattern)
        positions = self.positions.unsqueeze(0).expand(inputs.shape[0], -1, -1)
        hidden, _ = self.rnn(torch.cat([inputs, positions], dim=-1))
        out = self.head(hidden)
        if self.drums:
            classes = len(vocab.DRUM_CLASSES)
            velocity = 1.0 + 126.0 * torch.sigmoid(out[..., :classes])
            offset = MAX_OFFSET * torch.tanh(out[..., classes:])
            return velocity, offset
        return 1.0 + 126.0 * torch.sigmoid(out[..., 0]), None


def drum_hits(tokens: torch.Tensor) -> torch.Tensor:
    """Drum tokens [b, steps] -> hit flags [b, steps, 9] (bit k = class k)."""
    bits = torch.arange(len(vocab.DRUM_CLASSES), device=tokens.device)
    return ((tokens.unsqueeze(-1) >> bits) & 1).float()


def note_ons(tokens: torch.Tensor) -> torch.Tensor:
    """Where a melodic token starts a note."""
    return tokens > vocab.NO_EVENT
