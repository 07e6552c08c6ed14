"""Trains one humanize model (see humanize.py), resumably.

Loss: mean absolute error of the velocity (in 1/127) and of the offset (in
16ths, drums) over every hit or note-on, the measure the evaluation reports;
Adam with the VAEs' exponential decay from 1e-3. Bass and melody windows are
transposed at random, as for the VAEs. The model fits its training players
long after it stops improving on new ones, so the checkpoint also keeps the
weights that scored best on the validation split (`best`), which the
exporter ships.

Run: python -m latent_trio_models.train_humanize --part drums --steps 6000
     (--resume continues from models/work/checkpoints/<part>_humanize.pt, or
     from the committed models/weights/<part>_humanize.pt)
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
import torch

from . import evaluate_humanize
from .humanize import HumanizeSize, Humanizer, drum_hits, note_ons
from .train import checkpoint_path, committed_weights_path, learning_rate, random_shifts, transpose


def model_name(part: str) -> str:
    return f"{part}_humanize"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--part", choices=["drums", "bass", "melody"], required=True)
    parser.add_argument("--data", type=Path, default=Path("models/work/data"))
    parser.add_argument("--groove", type=Path, default=Path("../shared/data/groove"))
    parser.add_argument("--steps", type=int, default=6000, help="total optimizer steps (including resumed ones)")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--min-lr", type=float, default=1e-5)
    parser.add_argument("--validate-every", type=int, default=500)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--checkpoint-minutes", type=float, default=4.0)
    parser.add_argument("--resume", action="store_true")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    train = evaluate_humanize.performances(args.data, args.part, "train")
    validation = evaluate_humanize.performances(args.data, args.part, "validation", args.groove)
    drums = args.part == "drums"
    size = HumanizeSize(part=args.part)
    model = Humanizer(size)
    name = model_name(args.part)
    path = checkpoint_path(name)
    path.parent.mkdir(parents=True, exist_ok=True)
    state: dict = {"step": 0, "wall_time_s": 0.0, "history": []}
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    source = next((s for s in (path, committed_weights_path(name)) if s.exists()), None) if args.resume else None
    if source is not None:
        saved = torch.load(source, weights_only=True)
        model.load_state_dict(saved["model"])
        state = saved["state"]
        if "optimizer" in saved:
            optimizer.load_state_dict(saved["optimizer"])
        rng = np.random.default_rng(state["step"])
        print(f"resumed at step {state['step']} from {source}", flush=True)

    best = saved_best = None
    if source is not None and "best" in saved:
        saved_best = saved["best"]

    def save() -> None:
        state["config"] = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
        state["size"] = size.as_dict()
        state["hardware"] = f"{platform.processor() or platform.machine()}, {args.threads} torch thread(s), CPU"
        state["train_windows"] = int(len(train.tokens))
        torch.save(
            {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "state": state, "best": best or saved_best},
            path,
        )

    last_save = time.time()
    started = time.time() - state["wall_time_s"]
    while state["step"] < args.steps:
        step = state["step"]
        lr = learning_rate(step, args.lr, args.min_lr)
        for group in optimizer.param_groups:
            group["lr"] = lr
        model.train()
        rows = rng.integers(0, len(train.tokens), args.batch)
        tokens = train.tokens[rows]
        if not drums:
            tokens, _ = transpose(tokens, random_shifts(tokens, args.part, rng))
        tokens = torch.as_tensor(tokens)
        target_velocity = torch.as_tensor(train.velocities[rows].astype(np.float32))
        if drums:
            velocity, offset = model(drum_hits(tokens))
            onsets = target_velocity > 0
            target_offset = torch.as_tensor(train.offsets[rows])
            velocity_loss = ((velocity - target_velocity).abs() / 127.0)[onsets].mean()
            offset_loss = (offset - target_offset).abs()[onsets].mean()
            loss = velocity_loss + offset_loss
        else:
            velocity, _ = model(tokens)
            onsets = note_ons(tokens)
            velocity_loss = ((velocity - target_velocity).abs() / 127.0)[onsets].mean()
            offset_loss = torch.zeros(())
            loss = velocity_loss
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        state["step"] = step + 1
        state["wall_time_s"] = time.time() - started
        if state["step"] % 100 == 0:
            record = {
                "step": state["step"],
                "velocity_mae": round(velocity_loss.item() * 127.0, 2),
                "offset_mae_16ths": round(offset_loss.item(), 4),
                "lr": round(lr, 7),
                "s_per_step": round(state["wall_time_s"] / state["step"], 4),
            }
            if state["step"] % args.validate_every == 0:
                scores = evaluate_humanize.errors(validation, *evaluate_humanize.predict(model, validation))
                record["validation"] = scores
                # Velocity in 1/127 and timing in 16ths, as the loss weighs them.
                score = scores["velocity_mae"] / 127.0 + scores.get("timing_mae_16ths", 0.0)
                known = (best or saved_best or {}).get("score")
                if known is None or score < known:
                    best = {
                        "score": score,
                        "step": state["step"],
                        "validation": scores,
                        "model": {k: v.clone() for k, v in model.state_dict().items()},
                    }
            state["history"].append(record)
            print(json.dumps(record), flush=True)
        if time.time() - last_save > args.checkpoint_minutes * 60:
            save()
            last_save = time.time()
    save()
    print(f"done: {state['step']} steps in {state['wall_time_s']:.0f} s -> {path}", flush=True)


if __name__ == "__main__":
    main()
