"""The song prior: whole songs as slot sequences, and the diffusion model's
sampler, infilling and loss."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from latent_trio_models import data, song_latents, vocab
from latent_trio_models.diffusion import MAX_SPREAD, Denoiser, DenoiserSize, Normaliser, ddim_levels, infill_masks, sample, training_loss


def small_denoiser(latent: int = 8) -> Denoiser:
    torch.manual_seed(0)
    return Denoiser(DenoiserSize(latent=latent, width=32, layers=2, heads=4, feed_forward=64, head_width=64))


@pytest.fixture(scope="module")
def songs(data_dir) -> list[dict]:
    return song_latents.pop909_sequences(data_dir)


def test_a_song_is_its_2_bar_slots_in_order_with_its_4_4_runs_joined(data_dir, songs):
    by_id = {song["song"]: song for song in songs}
    joined = 0
    for folder in sorted((data_dir / "pop909").iterdir())[:40]:
        if not folder.name.isdigit():
            continue
        runs = data.pop909_songs(folder, data.Counts())
        if not runs:
            continue
        song = by_id[folder.name]
        expected = np.concatenate([song_latents.slots(run["melody"].tokens) for run in runs])
        assert np.array_equal(song["melody"], expected)
        assert song["melody"].shape == song["bass"].shape == song["chords"].shape
        # Slot 1 is bars 3-4 of the first run.
        first = runs[0]["melody"].tokens
        if len(first) >= 4 * vocab.STEPS_PER_BAR:
            assert np.array_equal(song["melody"][1], first[2 * vocab.STEPS_PER_BAR : 4 * vocab.STEPS_PER_BAR])
        joined += len(runs) > 1
    assert joined > 0, "some of the first songs have more than one run of 4/4 bars"


def test_every_key_a_training_song_is_encoded_in_keeps_its_notes_in_range(songs):
    songs = songs[:30]
    for song in songs:
        shifts = song_latents.key_shifts(song)
        assert len(set(shifts)) == len(shifts)
        for shift in shifts:
            for part, (low, high) in {
                "bass": (vocab.BASS_MIN_PITCH, vocab.BASS_MAX_PITCH),
                "melody": (vocab.MIN_PITCH, vocab.MAX_PITCH),
            }.items():
                notes = song[part][song[part] >= 2] - 2 + vocab.MIN_PITCH + shift
                if notes.size and len(shifts) > 1:
                    assert notes.min() >= low and notes.max() <= high
    assert np.mean([len(song_latents.key_shifts(s)) for s in songs]) > 3, "most songs fit several keys"


@pytest.mark.parametrize("resample", [1, 3])
def test_the_sampler_is_deterministic_for_a_seed_and_infilling_keeps_the_fixed_slots(resample):
    model = small_denoiser().eval()
    fixed = torch.rand(2, 32, 8) * 2 - 1
    keep = torch.zeros(2, 32, dtype=torch.bool)
    keep[:, :8] = True
    keep[:, 24:] = True

    def infill(seed: int) -> torch.Tensor:
        generator = torch.Generator().manual_seed(seed)
        return sample(model, 2, steps=10, generator=generator, fixed=fixed, keep=keep, resample=resample)

    first, again, other = infill(7), infill(7), infill(8)
    assert torch.equal(first, again)
    assert torch.equal(first[keep], fixed[keep]), "the kept slots come back exactly"
    assert not torch.allclose(first[~keep], fixed[~keep])
    assert not torch.allclose(first[~keep], other[~keep]), "another seed, other slots"


def test_slots_past_a_short_songs_end_change_neither_loss_nor_prediction_of_the_song():
    model = small_denoiser()
    x = torch.rand(3, 32, 8) * 2 - 1
    padding = torch.zeros(3, 32, dtype=torch.bool)
    padding[:, 20:] = True
    scribbled = x.clone()
    scribbled[padding] = torch.rand(int(padding.sum()), 8) * 10
    losses = [training_loss(model, batch, padding, torch.Generator().manual_seed(3)) for batch in (x, scribbled)]
    assert torch.allclose(losses[0], losses[1])
    level = torch.full((3,), 0.5)
    a, b = model(x, level, padding), model(scribbled, level, padding)
    assert torch.allclose(a[~padding], b[~padding], atol=1e-6)


def test_training_keeps_only_real_slots_and_always_leaves_some_to_write():
    generator = torch.Generator().manual_seed(5)
    lengths = torch.randint(1, 33, (512,), generator=generator)
    padding = torch.arange(32)[None, :] >= lengths[:, None]
    keep = infill_masks(padding, generator)
    assert not (keep & padding).any(), "a slot past the song's end is never kept"
    written = (~keep & ~padding).sum(1)
    assert (written >= 1).all(), "every row leaves a real slot to write"
    kept_rows = keep.any(1).float().mean().item()
    assert 0.45 < kept_rows < 0.75, f"about 60 % of rows keep slots ({kept_rows:.2f})"


def test_the_committed_drum_prior_writes_a_middle_that_belongs_to_the_kept_ends():
    from conftest import REPOSITORY
    from latent_trio_models.evaluate_songs import load_prior

    model, _, _ = load_prior(REPOSITORY / "models" / "weights" / "song_drums.pt")
    count = 16
    generator = torch.Generator().manual_seed(11)
    songs = sample(model, count, steps=20, generator=generator)
    keep = torch.zeros(count, 32, dtype=torch.bool)
    keep[:, :8] = True
    keep[:, 24:] = True
    middles = sample(model, count, steps=20, generator=generator, fixed=songs, keep=keep)[:, 8:24]
    ends = torch.cat([songs[:, :8], songs[:, 24:]], dim=1).mean(1)
    distances = torch.cdist(middles.mean(1), ends)
    own = distances.diagonal()
    others = (distances.sum(1) - own) / (count - 1)
    assert (own < others).all(), "every written middle is nearest its own song's ends"
    # Putting the kept slots back alone (the prior not reading them) gives
    # about 0.7 here; reading them, about 0.55.
    assert (own / others).mean() < 0.65, (own / others).mean()


def test_the_scaling_weighs_latent_errors_by_what_the_decoder_hears_and_bounds_none_of_the_data(songs):
    from conftest import REPOSITORY
    from latent_trio_models.export import load_checkpoint

    melody_model = load_checkpoint(REPOSITORY / "models" / "weights" / "melody_2bar.pt")[0]
    held_out = [song for song in songs if song["split"] == "validation"][:12]
    latents, spreads = (np.concatenate(arrays) for arrays in zip(*(song_latents.encode(melody_model, song["melody"], song["chords"]) for song in held_out)))
    normaliser = Normaliser.fit(latents, spreads.mean(0))
    scaled = normaliser.forward(latents)
    # Near unit variance: the schedule's noise levels then span the latents'
    # own scale (under a range scaling their spread was 0.19 and the signal
    # beat the noise only in the first ~85 of 1,000 steps) ...
    assert 0.25 < np.mean(scaled.var(0)) <= 1.0 and np.allclose(scaled.mean(0), 0.0, atol=1e-3)
    # ... and none so wide that the noisiest level leaves it standing out.
    assert scaled.std(0).max() <= MAX_SPREAD + 1e-3
    # The dimensions the decoder reads finely spread widest: an error there
    # costs the denoiser most (a typical one ten times as wide as the rest).
    finest = spreads.mean(0) < 0.5
    assert finest.sum() >= 8
    assert np.median(scaled[:, finest].std(0)) > 10 * np.median(scaled[:, ~finest].std(0))
    assert np.allclose(normaliser.inverse(scaled), latents, atol=1e-4)
    limit = normaliser.limit(latents)
    denoiser = Denoiser(DenoiserSize(latent=latents.shape[1], width=32, layers=1, heads=4, feed_forward=64, head_width=64, clean_limit=limit))
    assert np.abs(scaled).max() <= limit
    with torch.no_grad():
        huge = denoiser(torch.full((1, 32, latents.shape[1]), 100.0), torch.tensor([0.5]))
    assert huge.abs().max() <= limit


def test_ddim_steps_from_the_noisiest_level_to_clean_ones():
    levels = ddim_levels(20)
    assert len(levels) == 21
    assert all(a < b for a, b in zip(levels, levels[1:]))
    assert levels[-1] == 1.0 and levels[0] < 0.1


def test_each_committed_song_prior_graph_gives_the_noise_its_committed_weights_imply():
    from conftest import REPOSITORY
    from latent_trio_models.evaluate_songs import load_prior
    from latent_trio_models.export_song_prior import parity

    folders = sorted((REPOSITORY / "models").glob("song_*/manifest.json"))
    assert {path.parent.name for path in folders} == {"song_drums", "song_bass", "song_melody"}, "a prior for each part ships"
    for manifest_path in folders:
        manifest = json.loads(manifest_path.read_text())
        model, normaliser, state = load_prior(REPOSITORY / "models" / "weights" / f"{manifest['name']}.pt")
        assert manifest["training"]["steps"] == state["step"], manifest["name"]
        assert np.allclose(manifest["scaling"]["low"], normaliser.low)
        assert np.allclose(manifest["scaling"]["high"], normaliser.high)
        assert parity(model, manifest_path.parent / manifest["graphs"]["denoiser"]["file"]) < 1e-3


def test_framewise_self_similarity_sees_a_repeating_song_as_consistent_and_a_changing_one_as_not():
    from latent_trio_models.evaluate_songs import consistency_and_variance, frame_overlaps, overlap_statistics, overlapping_area

    assert overlapping_area(60, 4, 60, 4) == pytest.approx(1.0, abs=1e-3)
    assert overlapping_area(40, 1, 80, 1) < 1e-3
    bar = np.ones(16, dtype=np.int64)
    bar[0], bar[4], bar[8] = 60 - vocab.MIN_PITCH + 2, 64 - vocab.MIN_PITCH + 2, 67 - vocab.MIN_PITCH + 2
    repeating = np.tile(bar, 64)
    assert all(value == pytest.approx(1.0, abs=1e-3) for value in frame_overlaps(repeating)["pitch"])
    low, high = bar.copy(), bar.copy()
    high[[0, 4, 8]] += 24
    changing = np.concatenate([np.tile(low, 8), np.tile(high, 8)] * 4)
    truth = overlap_statistics([repeating])
    scores = consistency_and_variance(overlap_statistics([changing]), truth)
    assert scores["pitch_consistency"] < 0.95
    assert consistency_and_variance(truth, truth)["pitch_consistency"] == 1.0


def test_a_slots_harmony_is_the_share_of_its_steps_each_pitch_class_sounds_in_the_chord():
    from latent_trio_models import harmony

    c_major = harmony.chord_mask("C:maj")
    slot = np.array([c_major] * 16 + [harmony.NO_CHORD] * 16, dtype=np.uint16)
    shares = harmony.slot_harmony(slot)
    assert shares.shape == (harmony.CHROMA_SIZE,)
    assert shares[[0, 4, 7]].tolist() == [0.5, 0.5, 0.5], "C, E and G sound for half the slot"
    assert shares[12] == 0.5, "no chord for the other half"
    assert shares[[1, 2, 3, 5, 6, 8, 9, 10, 11]].sum() == 0
    up_a_tone = harmony.slot_harmony(harmony.transpose_chords(slot, 2))
    assert up_a_tone[[2, 6, 9]].tolist() == [0.5, 0.5, 0.5], "D major's notes, when the song moves up a tone"


def test_the_committed_melody_prior_writes_for_the_chords_it_hears(songs):
    from conftest import REPOSITORY
    from latent_trio_models import harmony
    from latent_trio_models.evaluate_songs import load_prior
    from latent_trio_models.export import load_checkpoint

    prior, normaliser, _ = load_prior(REPOSITORY / "models" / "weights" / "song_melody.pt")
    assert prior.size.harmony == harmony.CHROMA_SIZE, "the melody's prior hears the chords"
    with pytest.raises(ValueError):
        prior(torch.zeros(1, 32, prior.size.latent), torch.tensor([0.5]))
    melody_model = load_checkpoint(REPOSITORY / "models" / "weights" / "melody_2bar.pt")[0]
    held_out = [song for song in songs if song["split"] == "validation" and len(song["chords"]) >= 32][:16]
    latents = np.stack([normaliser.forward(song_latents.encode(melody_model, s["melody"][:32], s["chords"][:32])[0]) for s in held_out])
    chords = np.stack([harmony.slot_harmony(s["chords"][:32]) for s in held_out])
    x, padding = torch.as_tensor(latents), torch.zeros(latents.shape[:2], dtype=torch.bool)

    def error(heard: np.ndarray) -> float:
        """Denoising error on held-out songs over `heard` chords (the same
        noise draws every time)."""
        generator = torch.Generator().manual_seed(1)
        with torch.no_grad():
            return float(np.mean([training_loss(prior, x, padding, generator, torch.as_tensor(heard)).item() for _ in range(8)]))

    own, another_songs = error(chords), error(np.roll(chords, 1, axis=0))
    # On all validation songs: 0.156 against 0.186 (the prior trained
    # without chords: 0.163).
    assert own < another_songs - 0.01, f"a song's own chords tell the prior more of its latents ({own:.3f} against {another_songs:.3f})"
