"""Scores the melody Transformer VAE beside the 2-bar flat and 16-bar
hierarchical MusicVAE on the same held-out 16-bar phrases (every distinct
held-out window of the data pipeline, over its own chords).

- `reconstruction`: teacher-forced, greedy and sampled (T=1) accuracy from the
  encoder means, over the phrase and per bar; the 2-bar model reads and
  writes the phrase as its 8 2-bar slices.
- `attention`: in phrases where a bar repeats an earlier one note for note
  (and has notes), how often the repeat's strongest attention goes to the
  bar's first occurrence, among the bars before it, per layer of the encoder
  (reading the phrase) and of the decoder (writing it from the encoder
  means), for the mean of the heads and for the best head; chance is the
  mean of 1 / (bars before it).
- `context_transfer`: pairs of held-out phrases, content A and structure B
  (B has a repeated bar), by each of `transformer_vae.TRANSFER_METHODS`:
  `swap_bar_one` (the paper's: A's latent on bar 1, B's on the rest),
  `structure_latents` (B's latents on B's bars that repeat or vary an
  earlier one, A's elsewhere) and `follow` (what the plugin plays; see
  `transformer_vae.follow`). Decoded greedily over A's chords. Scores: the
  distance between the output's bar-to-bar self-similarity matrix and B's
  (against A's own reconstruction's: what no transfer gives), the share of
  B's repeats that the output repeats note for note, and how close the
  output's notes are to A's and to B's (pitch-class histogram overlap; step
  agreement with the source's same steps).
- `four_bar_repeat`: as the engine test: B's bars 1-4 played 4 times over
  16 bars; how often the output's bars 5-8 repeat its bars 1-4 note for note
  (all four; each bar; each bar whose chords repeat too).

Run: python -m latent_trio_models.evaluate_transformer_vae
     (about 3 minutes on one thread)
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from . import evaluate, vocab
from .export import load_checkpoint
from .model import MusicVAE
from .train_transformer_vae import NAME, load
from .transformer_vae import TRANSFER_METHODS, TransformerVAE, follow, references

TRANSFER_PAIRS = 256



def heldout_phrases(data_dir: Path) -> evaluate.Windows:
    """Every distinct held-out 16-bar melody window, with chords and keys
    (the 16-bar models' held-out set)."""
    return evaluate.heldout_windows("melody", data_dir, bars=16)


def as_slices(phrases: evaluate.Windows, bars: int) -> evaluate.Windows:
    """Each phrase as consecutive windows of `bars` bars."""
    steps = bars * vocab.STEPS_PER_BAR
    cut = lambda values: None if values is None else values.reshape(-1, steps)  # noqa: E731
    return evaluate.Windows(cut(phrases.tokens), cut(phrases.chords), cut(phrases.keys))


def reconstruction(model: MusicVAE, phrases: evaluate.Windows) -> dict:
    """Accuracies over the phrase and per bar of 16 (see the module doc)."""
    slice_bars = model.size.bars
    windows = as_slices(phrases, slice_bars)
    correct = {name: np.zeros(16) for name in ("teacher_forced_accuracy", "greedy_accuracy", "sampled_accuracy_t1")}
    for x, decoded, _ in evaluate.reconstructions(model, windows):
        for name, tokens in decoded.items():
            per_bar = (tokens == x).view(len(x), slice_bars, -1).sum(-1).numpy()
            correct[name] += per_bar.reshape(-1, 16 // slice_bars, slice_bars).sum(0).reshape(16) if slice_bars < 16 else per_bar.sum(0)
    steps_per_bar_position = len(phrases) * vocab.STEPS_PER_BAR
    report = {name: round(float(count.sum() / (16 * steps_per_bar_position)), 4) for name, count in correct.items()}
    report["per_bar"] = {name: (count / steps_per_bar_position).round(4).tolist() for name, count in correct.items()}
    return report


def first_occurrences(tokens: np.ndarray) -> list[tuple[int, int]]:
    """(bar, the earlier bar it first repeats) for every bar of a phrase
    [steps] that repeats an earlier one note for note and has a note-on."""
    return [(bar, earlier) for bar, (earlier, agreement) in references(tokens).items() if agreement == 1.0]


def attention_check(model: TransformerVAE, phrases: evaluate.Windows) -> dict:
    """See the module doc; by layer of the encoder and of the decoder (over
    the encoder means), for the heads' mean and for the best single head."""
    hits: dict[str, list[np.ndarray]] = {}
    chance = []
    with torch.no_grad():
        for x, chords in evaluate.batches(phrases, model):
            mu, _, encoder = model.encode_with_attention(x, chords)
            _, decoder = model.structure_with_attention(mu.flatten(1))
            for stack, weights in (("encoder", encoder), ("decoder", decoder)):
                # [batch, layers, heads + 1 (their mean), bars, bars]
                weights = torch.cat([weights, weights.mean(2, keepdim=True)], dim=2).numpy()
                for row, tokens in enumerate(x.numpy()):
                    for bar, earlier in first_occurrences(tokens):
                        if stack == "encoder":
                            chance.append(1.0 / bar)
                        strongest = weights[row, :, :, bar, :bar].argmax(-1)  # [layers, heads + 1]
                        hits.setdefault(stack, []).append(strongest == earlier)
    report: dict = {"repeats": len(chance), "chance": round(float(np.mean(chance)), 4) if chance else None}
    for stack, found in hits.items():
        share = np.mean(found, axis=0)  # [layers, heads + 1]
        report[stack] = {
            "heads_mean_by_layer": share[:, -1].round(4).tolist(),
            "best_head_by_layer": share[:, :-1].max(-1).round(4).tolist(),
        }
    return report


def pitch_class_overlap(a: np.ndarray, b: np.ndarray) -> float:
    """1 - total variation distance between two phrases' note-on pitch-class histograms."""

    def histogram(tokens: np.ndarray) -> np.ndarray:
        counts = np.bincount((tokens[tokens >= 2] - 2 + vocab.MIN_PITCH) % 12, minlength=12).astype(float)
        return counts / max(counts.sum(), 1.0)

    return float(1.0 - 0.5 * np.abs(histogram(a) - histogram(b)).sum())


def repeats_kept(output: np.ndarray, structure: np.ndarray) -> list[bool]:
    """For each of `structure`'s repeats, whether `output` repeats the same bars."""
    bars = output.reshape(-1, vocab.STEPS_PER_BAR)
    return [bool((bars[bar] == bars[earlier]).all()) for bar, earlier in first_occurrences(structure)]


def decode(model: TransformerVAE, z: torch.Tensor, chords: np.ndarray, sources: np.ndarray | None = None) -> np.ndarray:
    """Greedy decode of z [batch, z_size] over chords; with `sources`
    [batch, bars], bar b plays the embedding of bar sources[b] (over its own
    chords), as the plugin plays a followed structure's exact repeats."""
    with torch.no_grad():
        embeddings = model.bar_embeddings(z)
        if sources is not None:
            embeddings = torch.stack([row[torch.as_tensor(index)] for row, index in zip(embeddings, sources)])
        bar_chords = model.by_bar(evaluate.chord_inputs(chords))
        tokens = model.sample_steps(embeddings.reshape(-1, model.size.latent), vocab.STEPS_PER_BAR, 0.0, None, bar_chords)
    return tokens.reshape(len(z), -1).numpy()


def transfer_scores(model: TransformerVAE, content: evaluate.Windows, structure: np.ndarray, how: str) -> dict:
    """Context transfer of each content phrase into the matching structure
    phrase's flow (see the module doc)."""
    with torch.no_grad():
        z_content, _ = model.encode(torch.as_tensor(content.tokens), evaluate.chord_inputs(content.chords))
        z_structure, _ = model.encode(torch.as_tensor(structure), evaluate.chord_inputs(content.chords))
    followed = [follow(z_content[row], z_structure[row], structure[row], how) for row in range(len(structure))]
    output = decode(model, torch.stack([z for z, _ in followed]), content.chords, np.stack([s for _, s in followed]))
    reconstructions = decode(model, z_content, content.chords)
    upper = np.triu_indices(model.size.bars, 1)
    similarity = lambda t: evaluate.bar_similarity(t)[:, upper[0], upper[1]]  # noqa: E731
    distance = lambda a, b: float(np.abs(similarity(a) - similarity(b)).mean())  # noqa: E731
    kept = [k for row in range(len(structure)) for k in repeats_kept(output[row], structure[row])]
    kept_without = [k for row in range(len(structure)) for k in repeats_kept(reconstructions[row], structure[row])]
    agreement = lambda a, b: float((a == b).mean())  # noqa: E731
    return {
        "structure_matrix_distance": round(distance(output, structure), 4),
        "structure_matrix_distance_without_transfer": round(distance(reconstructions, structure), 4),
        "structure_repeats_kept": round(float(np.mean(kept)), 4),
        "structure_repeats_kept_without_transfer": round(float(np.mean(kept_without)), 4),
        "pitch_class_overlap_with_content": round(float(np.mean([pitch_class_overlap(o, c) for o, c in zip(output, content.tokens)])), 4),
        "pitch_class_overlap_with_structure": round(float(np.mean([pitch_class_overlap(o, s) for o, s in zip(output, structure)])), 4),
        "step_agreement_with_content": round(agreement(output, content.tokens), 4),
        "step_agreement_with_structure": round(agreement(output, structure), 4),
    }


def four_bar_repeat(model: TransformerVAE, content: evaluate.Windows, structure: np.ndarray, how: str) -> dict:
    """Structure sources whose bars 1-4 come again as 5-8 (and 1-8 as 9-16):
    how often the transferred melody's bars 5-8 repeat its bars 1-4."""
    first = structure.reshape(len(structure), -1, vocab.STEPS_PER_BAR)[:, :4]
    repeated = np.concatenate([first] * 4, axis=1).reshape(len(structure), -1)
    with torch.no_grad():
        z_content, _ = model.encode(torch.as_tensor(content.tokens), evaluate.chord_inputs(content.chords))
        z_structure, _ = model.encode(torch.as_tensor(repeated), evaluate.chord_inputs(content.chords))
    followed = [follow(z_content[row], z_structure[row], repeated[row], how) for row in range(len(repeated))]
    output = decode(model, torch.stack([z for z, _ in followed]), content.chords, np.stack([s for _, s in followed]))
    out_bars = output.reshape(len(output), -1, vocab.STEPS_PER_BAR)
    identical = (out_bars[:, 4:8] == out_bars[:, :4]).all(-1)
    chords = content.chords.reshape(len(output), -1, vocab.STEPS_PER_BAR)
    same_chords = (chords[:, 4:8] == chords[:, :4]).all(-1)
    return {
        "bars_5_to_8_repeat_1_to_4_note_for_note": round(float(identical.all(-1).mean()), 4),
        "bars_repeated_note_for_note": round(float(identical.mean()), 4),
        "bars_repeated_note_for_note_where_the_chords_repeat": round(float(identical[same_chords].mean()), 4) if same_chords.any() else None,
        "step_agreement_bars_5_to_8_with_1_to_4": round(float((out_bars[:, 4:8] == out_bars[:, :4]).mean()), 4),
        "bars_1_to_4_step_agreement_with_content": round(float((out_bars[:, :4] == content.tokens.reshape(len(output), -1, 16)[:, :4]).mean()), 4),
    }


def score(model: TransformerVAE, baselines: dict[str, MusicVAE], phrases: evaluate.Windows, seed: int = 0) -> dict:
    """Every score of the module doc."""
    report: dict = {"heldout_phrases": len(phrases), "reconstruction": {NAME: reconstruction(model, phrases)}}
    for name, baseline in baselines.items():
        report["reconstruction"][name] = reconstruction(baseline, phrases)
    report["attention"] = attention_check(model, phrases)
    rng = np.random.default_rng(seed)
    with_repeats = np.array([row for row, tokens in enumerate(phrases.tokens) if first_occurrences(tokens)])
    structure_rows = rng.choice(with_repeats, TRANSFER_PAIRS)
    content_rows = rng.choice(len(phrases), TRANSFER_PAIRS)
    content = evaluate.Windows(phrases.tokens[content_rows], phrases.chords[content_rows], phrases.keys[content_rows])
    structure = phrases.tokens[structure_rows]
    report["context_transfer"] = {"pairs": TRANSFER_PAIRS}
    report["four_bar_repeat"] = {"phrases": TRANSFER_PAIRS}
    for how in TRANSFER_METHODS:
        report["context_transfer"][how] = transfer_scores(model, content, structure, how)
        report["four_bar_repeat"][how] = four_bar_repeat(model, content, structure, how)
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    parser.add_argument("--weights", type=Path, default=Path("models/weights"))
    parser.add_argument("--limit", type=int, help="score the first N held-out phrases only (a quick look)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    phrases = heldout_phrases(args.data)
    if args.limit:
        phrases = phrases.head(args.limit)
    model, _ = load(args.weights / f"{NAME}.pt")
    baselines = {name: load_checkpoint(args.weights / f"{name}.pt")[0] for name in ("melody_2bar", "melody_16bar")}
    print(json.dumps(score(model, baselines, phrases), indent=1))


if __name__ == "__main__":
    main()
