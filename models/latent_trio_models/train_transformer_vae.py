"""Trains the melody Transformer VAE (transformer_vae.py) on 16-bar windows,
resumably.

Loss = reconstruction cross-entropy (summed over steps) + beta * the KL of
every bar's latent, beta ramping to 1 as in the paper (no free bits: a bar
that repeats an earlier one should cost the few nats of a reference). Teacher
forcing throughout, as MusicVAE's 16-bar configs; windows transposed at
random with their chords. The local encoder and the bar decoder start from the
16-bar hierarchical melody model (melody_16bar); the attention stacks and
the per-bar latent heads start fresh.

Run: python -m latent_trio_models.train_transformer_vae --steps 6000 --resume
     (--resume continues from models/work/checkpoints/melody_transformer.pt or
     the committed models/weights/melody_transformer.pt)
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

from . import evaluate, harmony, vocab
from .data import LONG_WINDOW_BARS, load_windows
from .model import kl_divergence, warm_start
from .train import checkpoint_path, committed_weights_path, learning_rate, random_shifts, teacher_forced_accuracy, transpose
from .transformer_vae import TransformerSize, TransformerVAE

NAME = "melody_transformer"
WARM_START = "melody_16bar"


def model_size() -> TransformerSize:
    """The shipped Transformer VAE's sizes: the 16-bar melody model's local
    encoder and bar decoder, 64 latent dimensions per bar (the paper's)."""
    bars = LONG_WINDOW_BARS
    return TransformerSize(
        vocab=vocab.MELODIC_VOCAB, steps=bars * vocab.STEPS_PER_BAR, bars=bars, chord_size=harmony.CHROMA_SIZE
    )


def load(path: Path) -> tuple[TransformerVAE, dict]:
    """A trained Transformer VAE and its training state, from a checkpoint
    or committed weights."""
    saved = torch.load(path, weights_only=True)
    model = TransformerVAE(TransformerSize(**saved["state"]["size"]))
    model.load_state_dict(saved["model"])
    return model.eval(), saved["state"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path("models/work/data"))
    parser.add_argument("--steps", type=int, default=6000, help="total optimizer steps (including resumed ones)")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--min-lr", type=float, default=1e-5)
    parser.add_argument("--max-beta", type=float, default=1.0)
    parser.add_argument("--beta-steps", type=int, default=2000)
    parser.add_argument("--validate-every", type=int, default=500)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--checkpoint-minutes", type=float, default=3.0)
    parser.add_argument("--resume", action="store_true")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    windows = load_windows(args.data, "melody")
    train = windows["train_16bar"].astype(np.int64)
    train_chords = windows["train_16bar_chord"]
    validation = evaluate.Windows(windows["validation_16bar"].astype(np.int64), windows["validation_16bar_chord"])
    size = model_size()
    model = TransformerVAE(size)
    path = checkpoint_path(NAME)
    path.parent.mkdir(parents=True, exist_ok=True)
    state: dict = {"step": 0, "wall_time_s": 0.0, "history": []}
    saved = None
    source = next((p for p in (path, committed_weights_path(NAME)) if p.exists()), None) if args.resume else None
    if source is not None:
        saved = torch.load(source, weights_only=True)
        state = saved["state"]
        model.load_state_dict(saved["model"])
        print(f"resumed at step {state['step']} from {source}", flush=True)
    else:
        warm = next(p for p in (checkpoint_path(WARM_START), committed_weights_path(WARM_START)) if p.exists())
        fresh = warm_start(model, torch.load(warm, weights_only=True)["model"])
        state["warm_start"] = f"{warm} (all but {', '.join(sorted({n.split('.')[0] for n in fresh}))})"
        print(f"warm start: {state['warm_start']}", flush=True)
    rng = np.random.default_rng(state["step"])
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    if saved is not None and "optimizer" in saved:
        optimizer.load_state_dict(saved["optimizer"])

    def save() -> None:
        state["config"] = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
        state["size"] = size.as_dict()
        state["hardware"] = f"{platform.processor() or platform.machine()}, {args.threads} torch thread(s), CPU"
        state["train_windows"] = int(len(train))
        torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(), "state": state}, path)

    last_save = time.time()
    started = time.time() - state["wall_time_s"]
    model.train()
    while state["step"] < args.steps:
        step = state["step"]
        lr = learning_rate(step, args.lr, args.min_lr)
        for group in optimizer.param_groups:
            group["lr"] = lr
        rows = rng.integers(0, len(train), args.batch)
        tokens, chords = transpose(train[rows], random_shifts(train[rows], "melody", rng), train_chords[rows])
        batch, chord_inputs = torch.as_tensor(tokens), evaluate.chord_inputs(chords)
        mu, sigma = model.encode(batch, chord_inputs)
        z = mu + sigma * torch.randn_like(sigma)
        logits = model.teacher_forced_logits(batch, z, chord_inputs)
        reconstruction = F.cross_entropy(logits.transpose(1, 2), batch, reduction="none").sum(-1).mean()
        kl = kl_divergence(mu, sigma)
        beta = args.max_beta * min(1.0, step / args.beta_steps)
        loss = reconstruction + beta * kl.mean()
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        state["step"] = step + 1
        state["wall_time_s"] = time.time() - started
        if state["step"] % 100 == 0:
            record = {
                "step": state["step"],
                "loss": round(loss.item(), 3),
                "reconstruction": round(reconstruction.item(), 3),
                "kl_per_bar": round(kl.mean().item() / size.bars, 2),
                "beta": round(beta, 3),
                "train_accuracy": round((logits.argmax(-1) == batch).float().mean().item(), 4),
                "lr": round(lr, 7),
                "s_per_step": round(state["wall_time_s"] / state["step"], 3),
            }
            if state["step"] % args.validate_every == 0:
                record["validation_tf_accuracy"] = round(teacher_forced_accuracy(model, validation), 4)
            state["history"].append(record)
            print(json.dumps(record), flush=True)
        if time.time() - last_save > args.checkpoint_minutes * 60:
            save()
            last_save = time.time()
    save()
    print(f"done: {state['step']} steps in {state['wall_time_s']:.0f} s -> {path}", flush=True)


if __name__ == "__main__":
    main()
