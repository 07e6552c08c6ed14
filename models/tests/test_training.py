"""Training choices that must hold whatever the run: the schedules, the chord
conditioning's warm start, transposition that moves chords with notes, the
drums' kit and ghost-note variations, and the hierarchical decoder's bars."""

from __future__ import annotations

import math

import numpy as np
import torch

from latent_trio_models import harmony, train, vocab
from latent_trio_models.model import ModelSize, MusicVAE, build, warm_start, with_chord_inputs


def test_the_learning_rate_decays_from_1e_3_towards_1e_5():
    assert train.learning_rate(0, 1e-3, 1e-5) == 1e-3
    assert math.isclose(train.learning_rate(10_000, 1e-3, 1e-5), (1e-3 - 1e-5) * 0.9999**10_000 + 1e-5)
    assert 1e-5 < train.learning_rate(100_000, 1e-3, 1e-5) < 1.01e-5


def test_scheduled_sampling_reaches_fully_free_running_decoding():
    assert train.sampling_probability(0, 1000, 1.0) < 0.001
    assert 0.45 < train.sampling_probability(6900, 1000, 1.0) < 0.55
    assert train.sampling_probability(20_000, 1000, 1.0) > 0.999
    assert train.sampling_probability(10**9, 1000, 1.0) == 1.0, "no overflow, however long the run"


def test_a_chord_conditioned_model_starts_out_playing_exactly_as_its_unconditioned_parent():
    torch.manual_seed(0)
    parent = MusicVAE(ModelSize(vocab=vocab.vocab_size("bass"), latent=16, embedding=8, encoder_hidden=16, decoder_hidden=16)).eval()
    child = with_chord_inputs(parent, 13).eval()
    tokens = torch.randint(0, vocab.vocab_size("bass"), (3, 32))
    chords = torch.as_tensor(harmony.chroma(np.full((3, 32), harmony.chord_mask("C:maj"), dtype=np.uint16)))
    with torch.no_grad():
        mu, _ = parent.encode(tokens)
        child_mu, _ = child.encode(tokens, chords)
        assert torch.allclose(mu, child_mu)
        assert torch.allclose(parent.teacher_forced_logits(tokens, mu), child.teacher_forced_logits(tokens, mu, chords))
    assert child.size.chord_size == 13


def test_transposing_a_window_moves_its_chords_by_the_same_interval():
    rng = np.random.default_rng(1)
    pitch = 48
    tokens = np.full((1, 32), vocab.NO_EVENT, dtype=np.int64)
    tokens[0, 0] = vocab.pitch_to_token(pitch)
    chords = np.full((1, 32), harmony.chord_mask("C:maj"), dtype=np.uint16)
    seen = set()
    for _ in range(20):
        shifts = train.random_shifts(tokens, "bass", rng)
        moved, moved_chords = train.transpose(tokens, shifts, chords)
        shift = int(moved[0, 0] - tokens[0, 0])
        seen.add(shift)
        assert shift == shifts[0] and (moved[0, 1:] == vocab.NO_EVENT).all()
        assert moved_chords[0, 0] == harmony.transpose_chords(chords[0, :1], shift)[0]
        assert vocab.BASS_MIN_PITCH <= pitch + shift <= vocab.BASS_MAX_PITCH
    assert len(seen) > 3, "the shift is random"


def test_a_drum_groove_on_another_kit_keeps_its_kick_snare_and_rhythm():
    rng = np.random.default_rng(4)
    groove = rng.integers(0, vocab.DRUM_VOCAB, (200, 32))
    varied = train.kit_variations(groove, 0.5, rng)
    before, after = vocab.drum_hits(groove), vocab.drum_hits(varied)
    kick, snare, hat, open_hat, crash, ride = map(vocab.drum_class, ("kick", "snare", "closed_hat", "open_hat", "crash", "ride"))
    for cls in (kick, snare, open_hat, crash):
        assert (after[..., cls] == before[..., cls]).all(), "kick, snare, open hat and crash stay"
    assert (after.sum(-1) == before.sum(-1)).all(), "every step keeps its number of hits"
    changed = (varied != groove).any(-1)
    assert 0.3 < changed.mean() < 0.6, "about the share asked for"
    swapped = (after[..., hat] == before[..., ride]).all(-1) & (after[..., ride] == before[..., hat]).all(-1)
    assert swapped[changed].mean() > 0.3, "the hi-hat's time moves to the ride and back"
    assert (train.kit_variations(groove, 0.0, rng) == groove).all()


def test_a_drum_groove_without_its_ghost_notes_keeps_every_accent():
    rng = np.random.default_rng(5)
    groove = rng.integers(0, vocab.DRUM_VOCAB, (100, 32))
    velocities = rng.integers(1, 128, (*groove.shape, len(vocab.DRUM_CLASSES))).astype(np.uint8)
    velocities[~vocab.drum_hits(groove)] = 0
    plainer = train.without_ghost_notes(groove, velocities, 1.0, rng)
    assert (vocab.drum_hits(plainer) == vocab.drum_hits(groove) & (velocities >= train.GHOST_VELOCITY)).all()
    assert (train.without_ghost_notes(groove, velocities, 0.0, rng) == groove).all()


def small_long_model(flat: bool = False) -> MusicVAE:
    size = ModelSize(
        vocab=vocab.vocab_size("melody"), steps=64, bars=4, latent=16, embedding=8, encoder_hidden=16,
        decoder_hidden=16, bar_sequence_hidden=16, conductor_hidden=0 if flat else 12,
    )
    return build(size).eval()


def test_a_hierarchical_bar_hears_the_bars_before_it_only_through_the_conductor():
    torch.manual_seed(2)
    model = small_long_model()
    tokens = torch.randint(0, model.size.vocab, (1, 64))
    changed = tokens.clone()
    changed[0, 16:32] = vocab.NO_EVENT  # bar 2 rewritten
    z = torch.randn(1, model.size.latent)
    with torch.no_grad():
        before, after = model.teacher_forced_logits(tokens, z), model.teacher_forced_logits(changed, z)
    assert torch.equal(before[:, 32:], after[:, 32:]), "bars 3 and 4 decode as before"
    assert not torch.equal(before[:, 16:32], after[:, 16:32])
    # The flat baseline reads straight on across the bar line.
    flat = small_long_model(flat=True)
    with torch.no_grad():
        assert not torch.equal(flat.teacher_forced_logits(tokens, z)[:, 32:], flat.teacher_forced_logits(changed, z)[:, 32:])


def test_a_16_bar_model_starts_from_the_2_bar_models_encoder_and_bar_decoder():
    torch.manual_seed(4)
    short = MusicVAE(ModelSize(vocab=vocab.vocab_size("melody"), latent=16, embedding=8, encoder_hidden=16, decoder_hidden=16))
    long = small_long_model()
    fresh = warm_start(long, short.state_dict())
    assert {name.split(".")[0] for name in fresh} == {"bar_sequence_encoder", "conductor", "to_bar_embedding", "to_conductor_state"}
    for name, value in short.state_dict().items():
        assert torch.equal(long.state_dict()[name], value), name
