"""Data conversion on the real Groove and POP909 files: what the models learn
from must be the music that is in the files."""

from __future__ import annotations

import collections
import csv
import hashlib
from pathlib import Path

import mido
import numpy as np
import pytest

from latent_trio_models import data, vocab

# The documented 9-class reduction (models/README.md), written out here rather
# than read from vocab so that a change to the table fails a test.
DOCUMENTED_CLASSES = {
    "kick": {35, 36},
    "snare": {37, 38, 39, 40},
    "closed_hat": {22, 42, 44},
    "open_hat": {26, 46},
    "low_tom": {41, 43, 45, 58},
    "mid_tom": {47, 48},
    "high_tom": {50},
    "crash": {49, 52, 55, 57},
    "ride": {51, 53, 59},
}
CLASS_OF_PITCH = {pitch: index for index, pitches in enumerate(DOCUMENTED_CLASSES.values()) for pitch in pitches}


def groove_rows(data_dir: Path) -> list[dict]:
    with open(data_dir / "groove" / "info.csv", newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="module")
def pop909_validation(data_dir: Path) -> list[dict[str, data.TokenSong]]:
    return data.load_pop909_split(data_dir, "validation", data.Counts())


def test_every_documented_drum_pitch_maps_to_its_class():
    names = [name for name, _, _ in vocab.DRUM_CLASSES]
    assert names == list(DOCUMENTED_CLASSES), "class order is the token bit order the plugin reads"
    assert vocab.PITCH_TO_DRUM_CLASS == CLASS_OF_PITCH
    assert vocab.PITCH_TO_DRUM_CLASS[36] == 0, "kick 36 is class 0 (token bit 0)"
    assert [pitch for _, pitch, _ in vocab.DRUM_CLASSES] == [36, 38, 42, 46, 45, 48, 50, 49, 51]


def test_every_hit_of_a_real_groove_file_lands_on_its_documented_class_at_the_nearest_16th(data_dir: Path):
    row = next(r for r in groove_rows(data_dir) if r["time_signature"] == "4-4" and r["split"] == "test")
    path = data_dir / "groove" / row["midi_filename"]
    song = data.groove_song(path, row["id"], row["split"], data.Counts())
    midi = mido.MidiFile(path)
    step_ticks = midi.ticks_per_beat / 4
    played: collections.Counter = collections.Counter()
    for track in midi.tracks:
        tick = 0
        for message in track:
            tick += message.time
            if message.type == "note_on" and message.velocity > 0:
                assert message.note in CLASS_OF_PITCH, f"pitch {message.note} is played but not in the table"
                step = int(round(tick / step_ticks))
                drum_class = CLASS_OF_PITCH[message.note]
                assert song.tokens[step] >> drum_class & 1, f"hit of pitch {message.note} at step {step} is missing"
                assert song.velocities[step, drum_class] > 0
                played[list(DOCUMENTED_CLASSES)[drum_class]] += 1
    assert played["kick"] > 10 and played["snare"] > 10 and played["closed_hat"] + played["ride"] > 10, played
    assert np.abs(song.offsets[song.velocities > 0]).max() <= 0.5, "offsets are within half a step of the grid"
    assert not np.any(song.tokens[song.velocities.max(-1) == 0]), "a step without hits has the empty token"


def write_melodic_midi(tokens: np.ndarray, path: Path, ticks_per_beat: int = 480) -> None:
    """Tokens -> a one-track MIDI file, one 16th per token."""
    step_ticks = ticks_per_beat // 4
    track = mido.MidiTrack()
    track.append(mido.MetaMessage("track_name", name="MELODY", time=0))
    events = []  # (tick, order, message): note-offs before note-ons at a tick
    sounding = None
    for step, token in enumerate(tokens):
        tick = step * step_ticks
        if token == vocab.NO_EVENT:
            continue
        if sounding is not None:
            events.append((tick, 0, mido.Message("note_off", note=sounding, velocity=0)))
            sounding = None
        pitch = vocab.token_to_pitch(int(token))
        if pitch is not None:
            events.append((tick, 1, mido.Message("note_on", note=pitch, velocity=90)))
            sounding = pitch
    if sounding is not None:
        events.append((len(tokens) * step_ticks, 0, mido.Message("note_off", note=sounding, velocity=0)))
    last = 0
    for tick, _, message in sorted(events, key=lambda e: (e[0], e[1])):
        track.append(message.copy(time=tick - last))
        last = tick
    midi = mido.MidiFile(ticks_per_beat=ticks_per_beat)
    midi.tracks.append(track)
    midi.save(path)


def read_melodic_midi(path: Path, steps: int) -> np.ndarray:
    midi = mido.MidiFile(path)
    spans = data._grid(data._note_spans(midi.tracks[0]), 0, midi.ticks_per_beat / 4)
    return data.melody_tokens(spans, steps)


def test_melody_and_bass_survive_a_round_trip_through_midi(pop909_validation, tmp_path: Path):
    checked = 0
    for song in pop909_validation[:5]:
        for part in ("melody", "bass"):
            tokens = song[part].tokens
            assert np.count_nonzero(tokens >= 2) > 50, f"{part} of song {song[part].song_id} is nearly empty"
            path = tmp_path / f"{part}-{song[part].song_id}.mid"
            write_melodic_midi(tokens, path)
            back = read_melodic_midi(path, len(tokens))
            assert np.array_equal(back, tokens), f"{part} of song {song[part].song_id} changed"
            checked += 1
    assert checked == 10


def test_the_bass_stays_in_its_register_and_below_the_melody(pop909_validation):
    bass = np.concatenate([s["bass"].tokens[s["bass"].tokens >= 2] for s in pop909_validation]) - 2 + vocab.MIN_PITCH
    melody = np.concatenate([s["melody"].tokens[s["melody"].tokens >= 2] for s in pop909_validation]) - 2 + vocab.MIN_PITCH
    assert bass.min() >= vocab.BASS_MIN_PITCH and bass.max() <= vocab.BASS_MAX_PITCH
    assert len(bass) > 1000
    assert np.median(bass) + 12 <= np.median(melody), "the bass sits at least an octave under the melody"


def test_groove_files_not_in_4_4_are_skipped_and_counted(data_dir: Path):
    rows = groove_rows(data_dir)
    split = next(r["split"] for r in rows if r["time_signature"] != "4-4")
    counts = data.Counts()
    songs = data.load_groove_split(data_dir, split, counts)
    odd = {r["id"] for r in rows if r["split"] == split and r["time_signature"] != "4-4"}
    assert odd, "the split has a file in another metre"
    assert not odd & {s.song_id for s in songs}
    skipped = sum(n for reason, n in counts.files.items() if reason.startswith("drums: not 4/4"))
    assert skipped == len(odd)
    assert all(s.split == split for s in songs), "a split-filtered load returns that split only"


def test_windows_start_on_bar_lines_and_span_two_bars(data_dir: Path):
    counts = data.Counts()
    song = data.load_groove_split(data_dir, "test", counts)[0]
    assert len(song.tokens) % vocab.STEPS_PER_BAR == 0, "a song holds whole bars"
    starts = data.windows(song, "drums", data.WINDOW_BARS, 1, counts)
    assert starts and all(start % vocab.STEPS_PER_BAR == 0 for start in starts)
    assert all(start + 32 <= len(song.tokens) for start in starts)
    assert all(data.onset_count(song.tokens[s : s + 32], "drums") >= 4 for s in starts)
    long_starts = data.windows(song, "drums", data.LONG_WINDOW_BARS, 4, counts)
    assert all(start % (4 * vocab.STEPS_PER_BAR) == 0 for start in long_starts)


def test_no_groove_performance_is_in_two_splits(data_dir: Path):
    rows = groove_rows(data_dir)
    assert len({r["id"] for r in rows}) == len(rows), "each performance has one row, so one split"
    splits_of_file: dict[str, set[str]] = collections.defaultdict(set)
    for row in rows:
        digest = hashlib.sha1((data_dir / "groove" / row["midi_filename"]).read_bytes()).hexdigest()
        splits_of_file[digest].add(row["split"])
    assert all(len(splits) == 1 for splits in splits_of_file.values()), "an identical MIDI file is in two splits"
    # The evaluation session (the same grooves played by every drummer) is held out whole.
    assert {r["split"] for r in rows if r["session"].endswith("eval_session")} == {"test"}


def test_no_pop909_song_is_in_two_splits(data_dir: Path):
    numbers = [int(f.name) for f in (data_dir / "pop909").iterdir() if f.name.isdigit()]
    by_split: dict[str, set[int]] = collections.defaultdict(set)
    for number in numbers:
        by_split[data.pop909_split(number)].add(number)
    assert set(by_split) == {"train", "validation", "test"}
    assert sum(map(len, by_split.values())) == len(numbers) == 909
    assert not by_split["test"] & by_split["train"] and not by_split["validation"] & by_split["train"]
    assert not by_split["test"] & by_split["validation"]
    heldout = data.load_pop909_split(data_dir, "test", data.Counts())
    assert heldout and all(int(s["melody"].song_id) in by_split["test"] for s in heldout)
    assert all(s["melody"].song_id == s["bass"].song_id and s["bass"].split == "test" for s in heldout)
