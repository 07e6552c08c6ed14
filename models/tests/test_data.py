"""Data conversion on the real Groove and POP909 files: what the models learn
from must be the music that is in the files."""

from __future__ import annotations

import csv
from pathlib import Path

import mido
import numpy as np

from latent_trio_models import data, vocab


def groove_rows(data_dir: Path) -> list[dict]:
    with open(data_dir / "groove" / "info.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def test_every_documented_drum_pitch_maps_to_its_class():
    expected = {
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
    names = [name for name, _, _ in vocab.DRUM_CLASSES]
    assert names == list(expected), "class order is the token bit order the plugin reads"
    for index, (name, pitches) in enumerate(expected.items()):
        for pitch in pitches:
            assert vocab.PITCH_TO_DRUM_CLASS[pitch] == index, f"pitch {pitch} should be {name}"
    assert [pitch for _, pitch, _ in vocab.DRUM_CLASSES] == [36, 38, 42, 46, 45, 48, 50, 49, 51]


def test_a_real_groove_file_keeps_every_mapped_hit_on_its_nearest_16th(data_dir: Path):
    row = next(r for r in groove_rows(data_dir) if r["time_signature"] == "4-4" and r["split"] == "test")
    path = data_dir / "groove" / row["midi_filename"]
    song = data.groove_song(path, row["id"], row["split"], data.Counts())
    midi = mido.MidiFile(path)
    step_ticks = midi.ticks_per_beat / 4
    hits = 0
    for track in midi.tracks:
        tick = 0
        for message in track:
            tick += message.time
            if message.type == "note_on" and message.velocity > 0 and message.note in vocab.PITCH_TO_DRUM_CLASS:
                step = int(round(tick / step_ticks))
                drum_class = vocab.PITCH_TO_DRUM_CLASS[message.note]
                assert song.tokens[step] >> drum_class & 1, f"hit of pitch {message.note} at step {step} is missing"
                assert song.velocities[step, drum_class] > 0
                hits += 1
    assert hits > 50
    assert np.abs(song.offsets[song.velocities > 0]).max() <= 0.5, "offsets are within half a step of the grid"


def write_melodic_midi(tokens: np.ndarray, path: Path, ticks_per_beat: int = 480) -> None:
    """Tokens -> a one-track MIDI file, one 16th per token."""
    step_ticks = ticks_per_beat // 4
    track = mido.MidiTrack()
    track.append(mido.MetaMessage("track_name", name="MELODY", time=0))
    events = []  # (tick, order, message)
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


def test_melody_and_bass_survive_a_round_trip_through_midi(data_dir: Path, tmp_path: Path):
    songs = data.load_pop909(data_dir, data.Counts(), split="validation")
    checked = 0
    for part in ("melody", "bass"):
        for song in songs[part][:5]:
            path = tmp_path / f"{part}-{song.song_id}.mid"
            write_melodic_midi(song.tokens, path)
            back = read_melodic_midi(path, len(song.tokens))
            assert np.array_equal(back, song.tokens), f"{part} of song {song.song_id} changed"
            checked += 1
    assert checked == 10


def test_the_bass_stays_in_its_register_and_plays_one_note_at_a_time(data_dir: Path):
    songs = data.load_pop909(data_dir, data.Counts(), split="validation")["bass"]
    pitches = np.concatenate([s.tokens[s.tokens >= 2] for s in songs]) - 2 + vocab.MIN_PITCH
    assert pitches.min() >= vocab.BASS_MIN_PITCH and pitches.max() <= vocab.BASS_MAX_PITCH
    assert len(pitches) > 1000


def test_files_not_in_4_4_are_skipped_and_counted(data_dir: Path):
    split = next(r["split"] for r in groove_rows(data_dir) if r["time_signature"] != "4-4")
    counts = data.Counts()
    songs = data.load_groove(data_dir, counts, split=split)
    rows = [r for r in groove_rows(data_dir) if r["split"] == split]
    odd = {r["id"] for r in rows if r["time_signature"] != "4-4"}
    assert not odd & {s.song_id for s in songs}
    skipped = sum(n for reason, n in counts.files.items() if reason.startswith("drums: not 4/4"))
    assert skipped == len(odd)


def test_windows_start_on_bar_lines_and_span_two_bars(data_dir: Path):
    counts = data.Counts()
    song = data.load_groove(data_dir, counts, split="test")[0]
    starts = data.windows(song, "drums", data.WINDOW_BARS, 1, counts)
    assert starts and all(start % vocab.STEPS_PER_BAR == 0 for start in starts)
    assert all(start + 32 <= len(song.tokens) for start in starts)
    assert all(data.onset_count(song.tokens[s : s + 32], "drums") >= 4 for s in starts)
    long_starts = data.windows(song, "drums", data.LONG_WINDOW_BARS, 4, counts)
    assert all(start % (4 * vocab.STEPS_PER_BAR) == 0 for start in long_starts)


def test_no_song_is_in_two_splits(data_dir: Path):
    rows = groove_rows(data_dir)
    split_of_session: dict[str, set[str]] = {}
    for row in rows:
        split_of_session.setdefault(row["id"], set()).add(row["split"])
    assert all(len(splits) == 1 for splits in split_of_session.values())
    numbers = [int(f.name) for f in (data_dir / "pop909").iterdir() if f.name.isdigit()]
    by_split: dict[str, set[int]] = {}
    for number in numbers:
        by_split.setdefault(data.pop909_split(number), set()).add(number)
    assert set(by_split) == {"train", "validation", "test"}
    assert not by_split["test"] & by_split["train"] and not by_split["validation"] & by_split["train"]
    heldout = data.load_pop909(data_dir, data.Counts(), split="test")["melody"]
    assert heldout and all(int(s.song_id) in by_split["test"] for s in heldout)
