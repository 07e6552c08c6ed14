"""Trains one MusicVAE (2 bars; or 16 bars, hierarchical or the flat
baseline), resumably.

Loss = reconstruction cross-entropy (summed over steps) + beta * max(KL - free
bits, 0), as in Magenta's MusicVAE: free bits are bits (48 bits = 33.3 nats of
KL per window go free); beta ramps up linearly; the learning rate decays
exponentially from 1e-3 towards 1e-5; scheduled sampling feeds the model's own
samples back as decoder inputs with a probability that rises on an inverse
sigmoid schedule until decoding is fully free-running (done in parallel: one
no-grad teacher-forced pass chooses the sampled inputs, a second pass learns
from them). `--max-sampling` lowers that ceiling: the shipped drums and
melody ended their training with it at 0.5 and then 0 (teacher forcing),
which raised their teacher-forced validation accuracy without lowering the
sampled one (models/README.md).

Run: python -m latent_trio_models.train --part drums --steps 4000
     (--resume continues from models/work/checkpoints/<part>_2bar.pt, or, on a
     fresh machine, from the committed weights in models/weights/ with a fresh
     optimizer, so training is never lost between sessions)
     python -m latent_trio_models.train --part melody --bars 16 [--flat] --resume
     (a 16-bar model starts from the part's 2-bar weights: its encoder reads
     each bar with the 2-bar encoder and its bar decoder is the 2-bar decoder;
     the conductor and the encoder's level over bars start fresh)
     python -m latent_trio_models.train --part drums --variant fb128 --free-bits 128 \
         --resume --start-from drums_2bar --steps 14000
     (an ablation: drums_2bar_fb128 continues from the shipped weights)
     python -m latent_trio_models.train --part drums --variant kit --kit-variations 0.5 \
         --resume --start-from drums_2bar --steps 16648
     python -m latent_trio_models.train --part drums --variant ghost --kit-variations 0.5 \
         --without-ghost-notes 0.25 --resume --start-from drums_2bar_kit --steps 36660
     python -m latent_trio_models.train --part drums --variant ss50 --max-sampling 0.5 \
         --kit-variations 0.5 --without-ghost-notes 0.25 --resume --start-from drums_2bar_ghost --steps 47190
     python -m latent_trio_models.train --part drums --variant ss0 --max-sampling 0 \
         --kit-variations 0.5 --without-ghost-notes 0.25 --resume --start-from drums_2bar_ss50 --steps 56396
     (how the shipped drums were trained on from step 10,712: kit and
     ghost-note variations, then less and less of their own samples fed back)
     python -m latent_trio_models.train --part melody --variant restart --restart-schedule \
         --lr 3e-4 --resume --start-from melody_2bar --steps 61993
     python -m latent_trio_models.train --part melody --variant restart2 --restart-schedule \
         --lr 2e-4 --resume --start-from melody_2bar_restart --steps 88376
     python -m latent_trio_models.train --part melody --variant restart3kf25 --key-free-share 0.25 \
         --restart-schedule --lr 2e-4 --resume --start-from melody_2bar_restart2 --steps 96630
     python -m latent_trio_models.train --part melody --variant kf25ss50 --key-free-share 0.25 \
         --max-sampling 0.5 --lr 2e-4 --resume --start-from melody_2bar_restart3kf25 --steps 106822
     python -m latent_trio_models.train --part melody --variant kf25ss0 --key-free-share 0.25 \
         --max-sampling 0 --lr 2e-4 --resume --start-from melody_2bar_kf25ss50 --steps 112943
     (how the shipped melody was trained on from step 38,146: three warm
     restarts, the learning rate decaying anew from 3e-4, then 2e-4 twice;
     in the third, a quarter of the windows key-free instead of half, and
     less and less of its own samples fed back)
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import time
import dataclasses
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

from . import evaluate, harmony, vocab
from .data import load_windows
from .model import ModelSize, MusicVAE, build, kl_divergence, warm_start, with_chord_inputs

TRANSPOSE = range(-5, 7)


def random_shifts(tokens: np.ndarray, part: str, rng: np.random.Generator) -> np.ndarray:
    """A random transposition per melodic window that keeps it in range (the
    bass also in its register); 0 for drums."""
    shifts = np.zeros(len(tokens), dtype=np.int64)
    if part == "drums":
        return shifts
    low, high = (vocab.BASS_MIN_PITCH, vocab.BASS_MAX_PITCH) if part == "bass" else (vocab.MIN_PITCH, vocab.MAX_PITCH)
    for index, row in enumerate(tokens):
        notes = row >= 2
        if not notes.any():
            continue
        pitches = row[notes] - 2 + vocab.MIN_PITCH
        choices = [k for k in TRANSPOSE if pitches.min() + k >= low and pitches.max() + k <= high]
        shifts[index] = int(rng.choice(choices)) if choices else 0
    return shifts


# Kit classes a drummer plays the same part on: the time on the closed hi-hat
# or the ride; a fill on any of the toms.
TIMEKEEPERS = (vocab.drum_class("closed_hat"), vocab.drum_class("ride"))
TOMS = tuple(vocab.drum_class(name) for name in ("low_tom", "mid_tom", "high_tom"))


def kit_variations(tokens: np.ndarray, share: float, rng: np.random.Generator) -> np.ndarray:
    """Drum windows, a `share` of them played on another kit: the closed
    hi-hat and the ride swapped, and the toms in another order (each change
    half the time). The groove is the same; GMD's drummers each favour their
    own kit, and held-out drummers play theirs."""
    out = tokens.copy()
    for index in np.flatnonzero(rng.random(len(tokens)) < share):
        moves = list(range(len(vocab.DRUM_CLASSES)))
        if rng.random() < 0.5:
            moves[TIMEKEEPERS[0]], moves[TIMEKEEPERS[1]] = TIMEKEEPERS[1], TIMEKEEPERS[0]
        if rng.random() < 0.5:
            for source, target in zip(TOMS, rng.permutation(TOMS)):
                moves[source] = int(target)
        hits = vocab.drum_hits(out[index])
        moved = np.zeros_like(hits)
        moved[..., moves] = hits
        out[index] = vocab.drum_tokens(moved)
    return out


GHOST_VELOCITY = 40


def without_ghost_notes(tokens: np.ndarray, velocities: np.ndarray, share: float, rng: np.random.Generator) -> np.ndarray:
    """Drum windows, a `share` of them played without their ghost notes
    (every hit under GHOST_VELOCITY left out): the same groove as a plainer
    drummer plays it. Velocities are [window, step, class]."""
    out = tokens.copy()
    rows = rng.random(len(tokens)) < share
    out[rows] &= ~vocab.drum_tokens(velocities[rows] < GHOST_VELOCITY)
    return out


def transpose(
    tokens: np.ndarray, shifts: np.ndarray, chords: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray | None]:
    """Each window's notes moved by its shift, its chords with them."""
    out = np.where(tokens >= 2, tokens + shifts[:, None], tokens)
    if chords is None:
        return out, None
    moved = np.stack([harmony.transpose_chords(row, int(shift)) for row, shift in zip(chords, shifts)])
    return out, moved


def teacher_forced_accuracy(model: MusicVAE, windows: evaluate.Windows) -> float:
    """Share of steps whose argmax matches the data, decoding from the encoder mean."""
    model.eval()
    correct = 0
    with torch.no_grad():
        for x, chords in evaluate.batches(windows, model):
            mu, _ = model.encode(x, chords)
            correct += (model.teacher_forced_logits(x, mu, chords).argmax(-1) == x).sum().item()
    model.train()
    return correct / windows.tokens.size


def model_name(part: str, bars: int = 2, flat: bool = False) -> str:
    """drums_2bar, melody_16bar, melody_16bar_flat ..."""
    return f"{part}_{bars}bar" + ("_flat" if flat and bars > 2 else "")


def model_size(part: str, bars: int, flat: bool) -> ModelSize:
    """The layer sizes of a part's model of `bars` bars."""
    long = bars > 2
    return ModelSize(
        vocab=vocab.vocab_size(part),
        steps=bars * vocab.STEPS_PER_BAR,
        bars=bars,
        chord_size=harmony.CHROMA_SIZE if part != "drums" else 0,
        bar_sequence_hidden=256 if long else 0,
        conductor_hidden=256 if long and not flat else 0,
    )


def checkpoint_path(name: str) -> Path:
    return Path("models/work/checkpoints") / f"{name}.pt"


def committed_weights_path(name: str) -> Path:
    return Path("models/weights") / f"{name}.pt"


def learning_rate(step: int, start: float, end: float, decay: float = 0.9999) -> float:
    """Magenta's schedule: (start - end) * decay^step + end."""
    return (start - end) * decay**step + end


def sampling_probability(step: int, rate: float, ceiling: float) -> float:
    """Chance of feeding the model its own sample instead of the true token:
    1 - k / (k + exp(step / k)), scaled to reach `ceiling` (1.0 = free-running,
    0 = teacher forcing throughout)."""
    return ceiling * (1 - rate / (rate + math.exp(min(step / rate, 700.0))))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--part", choices=["drums", "bass", "melody"], required=True)
    parser.add_argument("--bars", type=int, choices=[2, 16], default=2)
    parser.add_argument("--flat", action="store_true", help="16 bars: the flat decoder baseline instead of the conductor")
    parser.add_argument("--data", type=Path, default=Path("models/work/data"))
    parser.add_argument("--steps", type=int, default=4000, help="total optimizer steps (including resumed ones)")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--min-lr", type=float, default=1e-5)
    parser.add_argument("--free-bits", type=float, help="KL allowed for free, in bits (default 48 for 2 bars, 256 for 16, as Magenta's)")
    parser.add_argument("--max-beta", type=float, default=0.2)
    parser.add_argument("--beta-steps", type=int, default=2000, help="steps to ramp beta to its maximum")
    parser.add_argument("--sampling-rate", type=float, default=1000.0, help="inverse sigmoid schedule rate")
    parser.add_argument("--max-sampling", type=float, default=1.0, help="highest scheduled sampling probability")
    parser.add_argument("--validate-every", type=int, default=1000, help="steps between full validation scores")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--checkpoint-minutes", type=float, default=4.0)
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--dropout", type=float, default=0.0, help="dropout on the step inputs (an ablation)")
    parser.add_argument(
        "--variant",
        default="",
        help="an ablation: trains <name>_<variant> (its own checkpoint and weights) instead of the shipped model",
    )
    parser.add_argument(
        "--start-from",
        help="with --resume, a model name whose weights start a variant that has none yet (e.g. drums_2bar)",
    )
    parser.add_argument(
        "--kit-variations",
        type=float,
        default=0.0,
        help="drums: share of training windows played on another kit (hi-hat and ride swapped, toms reordered)",
    )
    parser.add_argument(
        "--without-ghost-notes",
        type=float,
        default=0.0,
        help="drums: share of training windows played without their ghost notes (hits under velocity 40)",
    )
    parser.add_argument(
        "--restart-schedule",
        action="store_true",
        help="with --resume, the learning rate decays anew from --lr, counted from the resumed step (a warm restart)",
    )
    parser.add_argument(
        "--average-every",
        type=int,
        default=0,
        help="from the resumed step on, keep a running average of the weights taken every N steps "
        "(stochastic weight averaging): validation scores it too, and export uses it",
    )
    parser.add_argument(
        "--key-free-share",
        type=float,
        default=0.5,
        help="share of bass and melody windows the encoder hears in another key than the decoder plays",
    )
    args = parser.parse_args()
    if args.part != "drums" and (args.kit_variations or args.without_ghost_notes):
        parser.error("--kit-variations and --without-ghost-notes vary drum kits and ghost notes: drums only")
    if args.free_bits is None:
        args.free_bits = 48.0 if args.bars == 2 else 256.0

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    # Bass and melody follow the chord of every step; drums take none.
    chords = args.part != "drums"
    windows = load_windows(args.data, args.part)
    train = windows[f"train_{args.bars}bar"].astype(np.int64)
    train_chords = windows[f"train_{args.bars}bar_chord"] if chords else None
    train_velocities = windows.get(f"train_{args.bars}bar_velocity")
    validation = evaluate.Windows(
        windows[f"validation_{args.bars}bar"].astype(np.int64), windows.get(f"validation_{args.bars}bar_chord")
    )
    size = dataclasses.replace(model_size(args.part, args.bars, args.flat), dropout=args.dropout)
    model = build(size)
    name = model_name(args.part, args.bars, args.flat) + (f"_{args.variant}" if args.variant else "")
    path = checkpoint_path(name)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {"step": 0, "wall_time_s": 0.0, "history": []}
    saved = None
    sources = [path, committed_weights_path(name)]
    if args.start_from:
        sources += [checkpoint_path(args.start_from), committed_weights_path(args.start_from)]
    source = next((source for source in sources if source.exists()), None) if args.resume else None
    short = model_name(args.part)
    short_source = next((p for p in (checkpoint_path(short), committed_weights_path(short)) if p.exists()), None)
    if source is None and args.bars > 2 and short_source is not None:
        fresh = warm_start(model, torch.load(short_source, weights_only=True)["model"])
        state["warm_start"] = f"{short_source} (all but {', '.join(sorted({n.split('.')[0] for n in fresh}))})"
        print(f"warm start from {short_source}; trained from scratch: {state['warm_start']}", flush=True)
    elif source is not None:
        saved = torch.load(source, weights_only=True)
        state = saved["state"]
        if ModelSize(**state["size"]).chord_size != size.chord_size:
            # Warm start: the unconditioned model, with chord inputs that start at zero.
            plain = MusicVAE(ModelSize(**state["size"]))
            plain.load_state_dict(saved["model"])
            model = with_chord_inputs(plain, size.chord_size)
            state["warm_start"] = f"{source} at step {state['step']}"
            saved.pop("optimizer", None)
        else:
            model.load_state_dict(saved["model"])
        rng = np.random.default_rng(state["step"])
        print(f"resumed at step {state['step']} from {source}", flush=True)
    if args.restart_schedule:
        state["schedule_from_step"] = state["step"]
    if chords:
        # When training began to hide the key from the latent (see the loop).
        state.setdefault("key_free_latent_from_step", state["step"])
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    if saved is not None and "optimizer" in saved:
        optimizer.load_state_dict(saved["optimizer"])
    free_nats = args.free_bits * math.log(2.0)
    # Stochastic weight averaging (Izmailov et al. 2018): the mean of the
    # weights visited at a steady learning rate sits in a wider optimum than
    # any one of them, which held-out drummers reward.
    averaged = None
    if args.average_every:
        if saved is not None and "averaged" in saved:
            averaged = saved["averaged"]
        else:
            averaged = {name: value.detach().clone() for name, value in model.state_dict().items()}
            state["averaged_count"] = 1
            state["averaged_from_step"] = state["step"]
    averaged_model = build(size) if averaged is not None else None

    def save() -> None:
        state["config"] = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
        state["size"] = size.as_dict()
        state["hardware"] = f"{platform.processor() or platform.machine()}, {args.threads} torch thread(s), CPU"
        state["train_windows"] = int(len(train))
        saving = {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "state": state}
        if averaged is not None:
            saving["averaged"] = averaged
        torch.save(saving, path)

    last_save = time.time()
    started = time.time() - state["wall_time_s"]
    while state["step"] < args.steps:
        step = state["step"]
        lr = learning_rate(step - state.get("schedule_from_step", 0), args.lr, args.min_lr)
        for group in optimizer.param_groups:
            group["lr"] = lr
        rows = rng.integers(0, len(train), args.batch)
        window_chords = None if train_chords is None else train_chords[rows]
        train_rows = train[rows]
        if args.without_ghost_notes:
            train_rows = without_ghost_notes(train_rows, train_velocities[rows], args.without_ghost_notes, rng)
        if args.kit_variations:
            train_rows = kit_variations(train_rows, args.kit_variations, rng)
        # For a share of the windows the encoder hears the music in one key
        # and the decoder must play it in another, given only that key's
        # chords: where the latent's key and the chords disagree, the decoder
        # learns to follow the chords, so a latent from anywhere (a seed)
        # plays in the progression's key; where they agree (an encoded clip)
        # the latent keeps every note.
        shifts = random_shifts(train_rows, args.part, rng)
        other = np.where(rng.random(len(rows)) < args.key_free_share, random_shifts(train_rows, args.part, rng), shifts)
        heard, heard_chords = transpose(train_rows, other, window_chords)
        tokens, step_chords = transpose(train_rows, shifts, window_chords)
        batch, chords = torch.as_tensor(tokens), evaluate.chord_inputs(step_chords)
        mu, sigma = model.encode(torch.as_tensor(heard), evaluate.chord_inputs(heard_chords))
        z = mu + sigma * torch.randn_like(sigma)
        inputs = model.shifted(batch)
        sampling = sampling_probability(step, args.sampling_rate, args.max_sampling)
        if sampling > 0:
            with torch.no_grad():
                guesses = model.decoder_logits(inputs, z, chords)
                sampled = torch.distributions.Categorical(logits=guesses).sample()
            # A bar's first input stays the start token.
            replace = (torch.rand(batch.shape) < sampling) & (inputs != model.start_token)
            inputs = torch.where(replace, model.shifted(sampled), inputs)
        logits = model.decoder_logits(inputs, z, chords)
        reconstruction = F.cross_entropy(logits.transpose(1, 2), batch, reduction="none").sum(-1).mean()
        kl = kl_divergence(mu, sigma)
        beta = args.max_beta * min(1.0, step / args.beta_steps)
        loss = reconstruction + beta * torch.clamp(kl - free_nats, min=0).mean()
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        state["step"] = step + 1
        state["wall_time_s"] = time.time() - started
        if averaged is not None and state["step"] % args.average_every == 0:
            state["averaged_count"] += 1
            with torch.no_grad():
                for name, value in model.state_dict().items():
                    if value.is_floating_point():
                        averaged[name] += (value - averaged[name]) / state["averaged_count"]
        if state["step"] % 100 == 0:
            accuracy = (logits.argmax(-1) == batch).float().mean().item()
            record = {
                "step": state["step"],
                "loss": round(loss.item(), 3),
                "reconstruction": round(reconstruction.item(), 3),
                "kl": round(kl.mean().item(), 2),
                "beta": round(beta, 3),
                "sampling": round(sampling, 3),
                "train_accuracy": round(accuracy, 4),
                "lr": round(lr, 7),
                "s_per_step": round(state["wall_time_s"] / state["step"], 3),
            }
            if state["step"] % args.validate_every == 0:
                # Every validation window: a prefix is one drummer / a few songs.
                record["validation_tf_accuracy"] = round(teacher_forced_accuracy(model, validation), 4)
                if averaged_model is not None:
                    averaged_model.load_state_dict(averaged)
                    record["averaged_validation_tf_accuracy"] = round(teacher_forced_accuracy(averaged_model, validation), 4)
                    record["averaged_count"] = state["averaged_count"]
            state["history"].append(record)
            print(json.dumps(record), flush=True)
        if time.time() - last_save > args.checkpoint_minutes * 60:
            save()
            last_save = time.time()
    save()
    print(f"done: {state['step']} steps in {state['wall_time_s']:.0f} s -> {path}", flush=True)


if __name__ == "__main__":
    main()
