"""The evaluation's measures on hand-made examples whose answers are known."""

from __future__ import annotations

import numpy as np
from conftest import REPOSITORY

from latent_trio_models import evaluate, harmony, report, vocab

C4, E4, F4, G4 = (vocab.pitch_to_token(p) for p in (60, 64, 65, 67))
HOLD, OFF = vocab.NO_EVENT, vocab.NOTE_OFF


def test_a_note_sounds_until_the_next_note_or_note_off():
    tokens = np.array([C4, HOLD, E4, OFF, HOLD, G4])
    assert list(evaluate.sounding(tokens)) == [60, 60, 64, -1, -1, 67]


def test_chord_tones_and_in_key_notes_are_counted_per_note_on():
    tokens = np.array([[C4, HOLD, F4, E4]])
    chords = np.array([[harmony.chord_mask("C:maj")] * 4], dtype=np.uint16)
    c_major = harmony.key_index("C:maj")
    keys = np.full((1, 4), c_major, dtype=np.int8)
    shares = evaluate.harmony_shares(tokens, chords, keys)
    # C and E are tones of C major, F is not; all three are in the key.
    assert shares == {"chord_tone_share": round(2 / 3, 4), "in_key_share": 1.0}
    e_flat_major = harmony.key_index("Eb:maj")
    moved = evaluate.harmony_shares(tokens, chords, np.full((1, 4), e_flat_major, dtype=np.int8))
    assert moved["in_key_share"] == round(2 / 3, 4), "E is not in E-flat major"


def test_onset_f1_counts_drum_hits_per_class_and_melodic_notes_with_pitch():
    kick, snare = vocab.drum_token([0]), vocab.drum_token([1])
    truth = np.array([[kick | snare, 0, kick, 0]])
    decoded = np.array([[kick, 0, kick, snare]])
    drums = evaluate.onset_f1(decoded, truth, "drums")
    # 3 true hits, 3 decoded, 2 shared.
    assert drums["per_hit_f1"] == round(2 * 2 / 6, 4)
    assert drums["per_class_f1"]["kick"] == 1.0 and drums["per_class_f1"]["snare"] == 0.0
    melody = evaluate.onset_f1(np.array([[C4, HOLD, G4, HOLD]]), np.array([[C4, HOLD, E4, HOLD]]), "melody")
    assert melody == {"note_on_f1_timing": 1.0, "note_on_f1_with_pitch": 0.5}


def test_the_position_bigram_baseline_predicts_a_repeated_pattern_and_the_most_frequent_token_half_of_it():
    train = np.array([[3, 5, 3, 5, 3, 5], [3, 5, 3, 5, 3, 5], [3, 3, 3, 5, 5, 3]])
    heldout = np.array([[3, 5, 3, 5, 3, 5]])
    scores = evaluate.baselines(train, heldout, vocab_size=8)
    assert scores["most_frequent_token_accuracy"] == 0.5
    assert scores["position_bigram_accuracy"] == 1.0
    # Smoothed, so never infinite, and a surprise costs more than the pattern.
    surprising = evaluate.baselines(train, np.array([[7, 7, 7, 7, 7, 7]]), vocab_size=8)
    assert 0 < scores["position_bigram_nll_per_window"] < surprising["position_bigram_nll_per_window"] < np.inf


def test_the_result_tables_in_the_models_readme_are_the_committed_manifests_numbers():
    readme = REPOSITORY / "models" / "README.md"
    assert readme.read_text() == report.filled_readme(REPOSITORY / "models"), (
        "models/README.md's tables are stale: run `python -m latent_trio_models.report`"
    )
