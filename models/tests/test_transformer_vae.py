"""The melody Transformer VAE: bar latents that only look back, repeats and
variations found as the plugin finds them, context transfer that keeps,
moves and replays the bars it should, and graphs that give what PyTorch
gives."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from latent_trio_models import export, harmony
from latent_trio_models.evaluate_transformer_vae import first_occurrences
from latent_trio_models.transformer_vae import TransformerSize, TransformerVAE, follow, references


def small_model(seed: int = 3) -> TransformerVAE:
    torch.manual_seed(seed)
    size = TransformerSize(
        vocab=90, steps=64, bars=4, latent=16, embedding=8, encoder_hidden=24, decoder_hidden=32,
        chord_size=harmony.CHROMA_SIZE, bar_latent=6, attention_width=16, heads=2, feed_forward=24,
    )
    return TransformerVAE(size).eval()


def test_a_bar_is_encoded_and_decoded_from_itself_and_the_bars_before_it_only():
    model = small_model()
    tokens = torch.randint(0, 90, (2, 64))
    changed = tokens.clone()
    changed[:, 48:] = torch.randint(0, 90, (2, 16))  # bar 4 only
    with torch.no_grad():
        (before, _), (after, _) = model.encode(tokens), model.encode(changed)
        bars = lambda z: z.view(2, 4, -1)  # noqa: E731
        assert torch.equal(bars(before)[:, :3], bars(after)[:, :3]), "bars 1-3 do not hear bar 4"
        assert not torch.allclose(bars(before)[:, 3], bars(after)[:, 3])
        z = torch.randn(2, model.size.z_size)
        later = z.clone()
        later[:, 18:] = torch.randn(2, 6)  # bar 4's latent
        first, second = model.bar_embeddings(z), model.bar_embeddings(later)
        assert torch.allclose(first[:, :3], second[:, :3], atol=1e-6)
        assert not torch.allclose(first[:, 3], second[:, 3])


def phrase_of(*bars: list[int]) -> np.ndarray:
    return np.array([token for bar in bars for token in bar])


def bar(pitch: int, ending: int = 0) -> list[int]:
    """A bar of one note of `pitch` ended after 3 steps, and `ending` on its last step."""
    return [pitch, 1, 1, 0] + [1] * 11 + [ending or 1]


def busy_bar(pitch: int) -> list[int]:
    """A bar of eight notes from `pitch`: another rhythm than `bar`'s."""
    return [token for step in range(8) for token in (pitch + step, 0)]


REST = [1] * 16


def test_repeats_and_variations_point_at_the_earlier_bar_and_silence_at_none():
    phrase = phrase_of(bar(40), busy_bar(45), bar(40), REST, REST, busy_bar(45), bar(40, ending=50), busy_bar(60))
    assert first_occurrences(phrase) == [(2, 0), (5, 1)]
    found = references(phrase)
    assert found[2] == (0, 1.0) and found[5] == (1, 1.0)
    assert found[6][0] == 0 and 0.75 <= found[6][1] < 1.0, "bar 7 varies bar 1"
    assert 3 not in found and 4 not in found and 7 not in found
    # A repeat after a held note (a note-off opening the bar) is still a repeat.
    late = [1, 1, 40, 1, 0] + [1] * 11
    held = phrase_of(late, [0] + late[1:])
    assert references(held) == {1: (0, 1.0)}


def test_following_a_structure_keeps_new_bars_moves_variations_and_replays_repeats():
    structure = phrase_of(bar(40), busy_bar(45), bar(40), bar(40, ending=50))
    content, clip = torch.randn(24), torch.randn(24)
    z, sources = follow(content, clip, structure, "follow")
    per_bar, own, theirs = z.view(4, 6), content.view(4, 6), clip.view(4, 6)
    assert torch.equal(per_bar[:2], own[:2]), "new bars keep the content's latents"
    assert torch.allclose(per_bar[2], own[0] + theirs[2] - theirs[0])
    assert torch.allclose(per_bar[3], own[0] + theirs[3] - theirs[0])
    assert sources.tolist() == [0, 1, 0, 3], "only the exact repeat replays its bar"
    swapped, _ = follow(content, clip, structure, "swap_bar_one")
    assert torch.equal(swapped.view(4, 6)[0], own[0]) and torch.equal(swapped.view(4, 6)[1:], theirs[1:])


def test_the_exported_transformer_vae_graphs_give_the_pytorch_encoding_embeddings_and_logits(tmp_path: Path):
    model = small_model()
    graphs = export.export_graphs(model, tmp_path)
    assert graphs["encoder"]["outputs"][0]["shape"] == ["batch", 24], "z is the 4 bar latents of 6"
    assert graphs["conductor"]["inputs"][0]["shape"] == ["batch", 24]
    assert graphs["conductor"]["outputs"][0]["shape"] == ["batch", 4, 16]
    assert graphs["decoder_init"]["inputs"][0]["shape"] == ["batch", 16]
    assert export.parity(model, tmp_path, graphs) < export.PARITY_TOLERANCE
    assert export.parity(small_model(seed=4), tmp_path, graphs) > export.PARITY_TOLERANCE
