"""Trains the song prior (see `diffusion.py`) on sequences of 2-bar latents
(see `song_latents.py`), resumably.

Each batch row is 32 consecutive slots of one song from a random start (a
shorter song is padded, and its padding is left out of attention and loss),
with the harmony of its slots for a bass or melody prior.
Adam, learning rate 1e-3 decayed by 0.98 every 4,000 steps (the paper's),
gradient clipping 1.0. The validation loss (the held-out songs' noise MSE at
fixed noise draws) is logged every `--validate-every` steps.

Run: python -m latent_trio_models.train_diffusion --group melody --steps 10000 --resume
     (writes models/work/checkpoints/song_<group>.pt, with the optimizer, at
     every checkpoint, and models/weights/song_<group>.pt, the weights alone,
     whenever the validation loss is the best so far: the drum prior, on
     little data, starts to overfit after a few thousand steps)
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
import torch

from . import song_latents
from .diffusion import Denoiser, DenoiserSize, Normaliser, training_loss


def windows(
    latents: np.ndarray,
    starts: np.ndarray,
    lengths: np.ndarray,
    slots: int,
    rng: np.random.Generator,
    count: int,
    harmony: np.ndarray | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """`count` random windows of `slots` slots: [count, slots, latent], their
    padding mask [count, slots] (True past a song's end) and, given the
    slots' `harmony`, theirs [count, slots, 13]."""
    songs = rng.integers(0, len(starts), count)
    x = np.zeros((count, slots, latents.shape[1]), dtype=np.float32)
    padding = np.ones((count, slots), dtype=bool)
    chords = None if harmony is None else np.zeros((count, slots, harmony.shape[1]), dtype=np.float32)
    for row, song in enumerate(songs):
        length = int(lengths[song])
        offset = int(rng.integers(0, max(length - slots, 0) + 1))
        take = min(length, slots)
        first = starts[song] + offset
        x[row, :take] = latents[first : first + take]
        padding[row, :take] = False
        if chords is not None:
            chords[row, :take] = harmony[first : first + take]
    return torch.as_tensor(x), torch.as_tensor(padding), None if chords is None else torch.as_tensor(chords)


def model_name(group: str) -> str:
    return f"song_{group}"


def validation_loss(model: Denoiser, data: dict, group: str, normaliser: Normaliser, batches: int = 8) -> float:
    """Mean noise MSE on held-out windows, with the same draws every time."""
    rng = np.random.default_rng(1)
    generator = torch.Generator().manual_seed(1)
    latents = normaliser.forward(data[f"{group}_validation"])
    model.eval()
    total = 0.0
    with torch.no_grad():
        for _ in range(batches):
            x, padding, harmony = windows(
                latents,
                data[f"{group}_validation_start"],
                data[f"{group}_validation_length"],
                model.size.slots,
                rng,
                64,
                data[f"{group}_validation_harmony"] if model.size.harmony else None,
            )
            total += training_loss(model, x, padding, generator, harmony).item()
    model.train()
    return total / batches


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--group", choices=list(song_latents.GROUPS), required=True)
    parser.add_argument("--latents", type=Path, default=Path("models/work/data/song_latents.npz"))
    parser.add_argument("--steps", type=int, default=20000, help="total optimizer steps (including resumed ones)")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--validate-every", type=int, default=500)
    parser.add_argument("--checkpoint-minutes", type=float, default=4.0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--layers", type=int, default=6, help="transformer layers (a new model only)")
    parser.add_argument("--head-width", type=int, default=1024, help="width of the residual head layers (a new model only)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    data = song_latents.load(args.latents)
    train = data[f"{args.group}_train"]
    name = model_name(args.group)
    checkpoint = Path("models/work/checkpoints") / f"{name}.pt"
    weights = Path("models/weights") / f"{name}.pt"
    normaliser = Normaliser.fit(train, data[f"{args.group}_posterior_sd"])
    # A bass or melody prior hears the chords of every slot.
    harmony = data.get(f"{args.group}_train_harmony")
    size = DenoiserSize(
        latent=train.shape[1],
        layers=args.layers,
        head_width=args.head_width,
        clean_limit=normaliser.limit(train),
        harmony=0 if harmony is None else harmony.shape[1],
    )
    state: dict = {"step": 0, "wall_time_s": 0.0, "history": []}
    model = Denoiser(size)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    source = next((p for p in (checkpoint, weights) if p.exists()), None) if args.resume else None
    if source is not None:
        saved = torch.load(source, weights_only=True)
        size = DenoiserSize(**saved["state"]["size"])
        model = Denoiser(size)
        optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
        model.load_state_dict(saved["model"])
        state = saved["state"]
        normaliser = Normaliser(np.array(saved["normaliser"]["low"], np.float32), np.array(saved["normaliser"]["high"], np.float32))
        if "optimizer" in saved:
            optimizer.load_state_dict(saved["optimizer"])
        print(f"resumed at step {state['step']} from {source}", flush=True)
    rng = np.random.default_rng(state["step"])
    generator = torch.Generator().manual_seed(state["step"])
    latents = normaliser.forward(train)
    starts, lengths = data[f"{args.group}_train_start"], data[f"{args.group}_train_length"]

    def saved_state() -> dict:
        state["config"] = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
        state["size"] = size.as_dict()
        state["hardware"] = f"{platform.processor() or platform.machine()}, {args.threads} torch thread(s), CPU"
        state["train_sequences"] = int(len(starts))
        scaling = {"low": normaliser.low.tolist(), "high": normaliser.high.tolist()}
        return {"model": model.state_dict(), "state": state, "normaliser": scaling}

    def save() -> None:
        checkpoint.parent.mkdir(parents=True, exist_ok=True)
        torch.save({**saved_state(), "optimizer": optimizer.state_dict()}, checkpoint)

    started = time.time() - state["wall_time_s"]
    last_save = time.time()
    while state["step"] < args.steps:
        step = state["step"]
        for group in optimizer.param_groups:
            group["lr"] = args.lr * 0.98 ** (step // 4000)
        x, padding, chords = windows(latents, starts, lengths, size.slots, rng, args.batch, harmony if size.harmony else None)
        loss = training_loss(model, x, padding, generator, chords)
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        state["step"] = step + 1
        state["wall_time_s"] = time.time() - started
        if state["step"] % 100 == 0:
            record = {
                "step": state["step"],
                "loss": round(loss.item(), 4),
                "lr": args.lr * 0.98 ** (step // 4000),
                "s_per_step": round(state["wall_time_s"] / state["step"], 3),
            }
            if state["step"] % args.validate_every == 0:
                record["validation_loss"] = round(validation_loss(model, data, args.group, normaliser), 4)
                if record["validation_loss"] < state.get("best_validation_loss", float("inf")):
                    state["best_validation_loss"] = record["validation_loss"]
                    torch.save(saved_state(), weights)
            state["history"].append(record)
            print(json.dumps(record), flush=True)
        if time.time() - last_save > args.checkpoint_minutes * 60:
            save()
            last_save = time.time()
    save()
    print(f"done: {state['step']} steps in {state['wall_time_s']:.0f} s; best validation -> {weights}", flush=True)


if __name__ == "__main__":
    main()
