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

from latent_trio_models import data, harmony, vocab

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
    step = midi.ticks_per_beat / 4
    spans = [(round(a / step), round(b / step), pitch, velocity) for a, b, pitch, velocity in data._note_spans(midi.tracks[0])]
    return data.melody_tokens(spans, steps)


def test_melody_and_bass_survive_a_round_trip_through_midi(pop909_validation, tmp_path: Path):
    checked = 0
    # Runs of 16 bars or more (an irregular bar splits a song into runs).
    long_runs = [song for song in pop909_validation if len(song["melody"].tokens) >= 16 * vocab.STEPS_PER_BAR]
    for song in long_runs[:5]:
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
    assert heldout and all(data.pop909_song_number(s["melody"].song_id) in by_split["test"] for s in heldout)
    assert all(s["melody"].song_id == s["bass"].song_id and s["bass"].split == "test" for s in heldout)


def songs_with_tempo_changes(data_dir: Path, limit: int) -> list[Path]:
    """POP909 song folders whose MIDI tempo changes (dropped before the beat grid)."""
    found = []
    for folder in sorted((data_dir / "pop909").iterdir()):
        if folder.name.isdigit() and len(set(data._tempi(mido.MidiFile(folder / f"{folder.name}.mid")))) > 1:
            found.append(folder)
            if len(found) == limit:
                break
    return found


def test_songs_whose_tempo_changes_play_on_their_own_beats(data_dir: Path):
    folders = songs_with_tempo_changes(data_dir, 3)
    assert len(folders) == 3
    for folder in folders:
        runs = data.bar_runs(folder / "beat_midi.txt", data.Counts())
        songs = data.pop909_songs(folder, data.Counts())
        assert songs, f"song {folder.name} is kept"
        beats = np.array([float(line.split()[0]) for line in (folder / "beat_midi.txt").read_text().splitlines() if line.strip()])
        downbeats = {round(float(line.split()[0]), 6) for line in (folder / "beat_midi.txt").read_text().splitlines() if line.strip() and float(line.split()[2]) == 1.0}
        midi = mido.MidiFile(folder / f"{folder.name}.mid")
        melody = next(track for track in midi.tracks if track.name == "MELODY")
        onsets = data._seconds(midi, np.array([span[0] for span in data._note_spans(melody)], dtype=np.float64))
        for step_times, song in zip(runs, songs):
            # Every bar starts on a downbeat of beat_midi.txt, every beat on a beat.
            assert all(round(t, 6) in downbeats for t in step_times[:: vocab.STEPS_PER_BAR])
            assert np.allclose(step_times[::4], beats[np.searchsorted(beats, step_times[::4] - 1e-9)])
            # Each melody note-on sits on the 16th nearest its real time.
            tokens = song["melody"].tokens
            step = np.median(np.diff(step_times))
            for index in np.flatnonzero(tokens >= 2):
                nearest = np.min(np.abs(onsets - step_times[index]))
                assert nearest <= step / 2 + 1e-6, f"song {folder.name}: a note-on {nearest:.3f} s off its step"


def test_a_chord_change_lands_on_the_step_it_is_annotated_at(data_dir: Path):
    folder = data_dir / "pop909" / "001"
    runs = data.bar_runs(folder / "beat_midi.txt", data.Counts())
    song = data.pop909_songs(folder, data.Counts())[0]
    rows = [line.split("\t") for line in (folder / "chord_midi.txt").read_text().splitlines() if line.strip()]
    checked = 0
    for before, after in zip(rows, rows[1:]):
        change = float(after[0])
        index = int(np.argmin(np.abs(runs[0] - change)))
        if not 0 < index < len(runs[0]) or abs(runs[0][index] - change) > 0.01:
            continue
        old, new = harmony.chord_mask(before[2].strip()), harmony.chord_mask(after[2].strip())
        if old == new:
            continue
        assert song["bass"].chords[index] == new, f"the {after[2].strip()} at {change:.2f} s starts on its step"
        assert song["bass"].chords[index - 1] == old, "the chord before holds until then"
        checked += 1
    assert checked > 20
    # B:maj is B, D#, F#.
    assert harmony.chord_mask("B:maj") == (1 << 11) | (1 << 3) | (1 << 6)
    assert harmony.chord_mask("A:min7/b7") == harmony.chord_mask("A:min7")


def test_transposing_moves_chords_and_keys_with_the_notes():
    c_major = np.array([harmony.chord_mask("C:maj"), harmony.NO_CHORD], dtype=np.uint16)
    assert list(harmony.transpose_chords(c_major, 2)) == [harmony.chord_mask("D:maj"), harmony.NO_CHORD]
    assert list(harmony.transpose_chords(c_major, -1)) == [harmony.chord_mask("B:maj"), harmony.NO_CHORD]
    keys = np.array([harmony.key_index("Gb:maj"), harmony.key_index("A:min"), harmony.NO_KEY], dtype=np.int8)
    assert list(harmony.transpose_keys(keys, 7)) == [harmony.key_index("Db:maj"), harmony.key_index("E:min"), harmony.NO_KEY]


def test_no_window_is_kept_twice_in_a_split(data_dir: Path, tmp_path: Path):
    counts = data.Counts()
    songs = data.load_pop909_split(data_dir, "validation", counts)
    data.save_part("bass", [song["bass"] for song in songs], tmp_path, counts)
    windows = data.load_windows(tmp_path, "bass")
    rows = [t.tobytes() + c.tobytes() for t, c in zip(windows["validation_2bar"], windows["validation_2bar_chord"])]
    assert len(rows) > 1000
    assert len(set(rows)) == len(rows), "every kept window is distinct"
    assert counts.windows["bass 2-bar validation: repeats a window (dropped)"] > 100, "repeated sections exist and were dropped"
    assert windows["validation_2bar_chord"].shape == windows["validation_2bar"].shape
    assert (windows["validation_2bar_key"] >= 0).mean() > 0.95, "nearly every step has its key"
