"""MIDI -> 16th-note token sequences, bar windows and held-out splits.

Drums come from the Groove MIDI Dataset (official split column of info.csv);
melody and bass from POP909 (split by song), on each song's own beat grid
(beat_midi.txt), with the chord and key sounding at every 16th step. Windows
that repeat exactly within a split (repeated song sections) are kept once.
Every skipped file, bar and window is counted with its reason so the
manifests can say what the models saw.

Run: python -m latent_trio_models.data --data ../shared/data --out models/work/data
"""

from __future__ import annotations

import argparse
import collections
import csv
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import mido
import numpy as np

from . import harmony, vocab

WINDOW_BARS = 2
LONG_WINDOW_BARS = 16
SPLITS = ("train", "validation", "test")


@dataclass
class Counts:
    """Why files and windows were kept or skipped."""

    files: collections.Counter = field(default_factory=collections.Counter)
    windows: collections.Counter = field(default_factory=collections.Counter)

    def as_dict(self) -> dict:
        return {"files": dict(self.files), "windows": dict(self.windows)}


@dataclass
class TokenSong:
    """One piece on the 16th grid, starting on a downbeat."""

    song_id: str
    split: str
    tokens: np.ndarray  # [steps] int
    velocities: np.ndarray | None = None  # drums: [steps, 9]; melodic: [steps]; uint8, 0 = no onset
    offsets: np.ndarray | None = None  # drums: [steps, 9] offset from the grid in steps
    chords: np.ndarray | None = None  # melodic: [steps] uint16 pitch-class masks (harmony)
    keys: np.ndarray | None = None  # melodic: [steps] int8 key indices (harmony)


def _note_spans(track: mido.MidiTrack) -> list[tuple[int, int, int, int]]:
    """(start tick, end tick, pitch, velocity) of every note in a track."""
    tick = 0
    sounding: dict[int, list[tuple[int, int]]] = collections.defaultdict(list)
    spans = []
    for message in track:
        tick += message.time
        if message.type == "note_on" and message.velocity > 0:
            sounding[message.note].append((tick, message.velocity))
        elif message.type in ("note_off", "note_on") and sounding.get(message.note):
            start, velocity = sounding[message.note].pop(0)
            spans.append((start, tick, message.note, velocity))
    for pitch, starts in sounding.items():
        spans.extend((start, tick, pitch, velocity) for start, velocity in starts)
    spans.sort()
    return spans


def _tempi(midi: mido.MidiFile) -> list[int]:
    return [m.tempo for track in midi.tracks for m in track if m.type == "set_tempo"]


# ---------------------------------------------------------------- drums


def groove_song(path: Path, song_id: str, split: str, counts: Counts) -> TokenSong | None:
    """Quantizes one Groove file to 16ths (bar 1 starts at tick 0)."""
    midi = mido.MidiFile(path)
    if len(set(_tempi(midi))) > 1:
        counts.files["drums: tempo changes"] += 1
        return None
    step_ticks = midi.ticks_per_beat / 4
    hits = []
    for track in midi.tracks:
        for start, _, pitch, velocity in _note_spans(track):
            drum_class = vocab.PITCH_TO_DRUM_CLASS.get(pitch)
            if drum_class is None:
                counts.windows["drums: hits with unmapped pitch (dropped)"] += 1
                continue
            hits.append((start / step_ticks, drum_class, velocity))
    if not hits:
        counts.files["drums: no notes"] += 1
        return None
    steps = math.ceil((max(h[0] for h in hits) + 1) / vocab.STEPS_PER_BAR) * vocab.STEPS_PER_BAR
    tokens = np.zeros(steps, dtype=np.int16)
    velocities = np.zeros((steps, len(vocab.DRUM_CLASSES)), dtype=np.uint8)
    offsets = np.zeros((steps, len(vocab.DRUM_CLASSES)), dtype=np.float16)
    for position, drum_class, velocity in hits:
        step = int(round(position))
        if step >= steps:
            continue
        tokens[step] |= 1 << drum_class
        if velocity > velocities[step, drum_class]:
            velocities[step, drum_class] = velocity
            offsets[step, drum_class] = position - step
    return TokenSong(song_id, split, tokens, velocities, offsets)


def load_groove_split(data: Path, split: str | None, counts: Counts) -> list[TokenSong]:
    """Every 4/4 Groove file of the official `split` (all splits if None),
    quantized. Rows of other splits are not even opened, so building the
    held-out set in tests and evaluation stays cheap."""
    songs = []
    with open(data / "groove" / "info.csv", newline="") as handle:
        for row in csv.DictReader(handle):
            if split is not None and row["split"] != split:
                continue
            if row["time_signature"] != "4-4":
                counts.files[f"drums: not 4/4 ({row['time_signature']})"] += 1
                continue
            song = groove_song(data / "groove" / row["midi_filename"], row["id"], row["split"], counts)
            if song is not None:
                counts.files["drums: kept"] += 1
                songs.append(song)
    return songs


def load_groove(data: Path, counts: Counts) -> list[TokenSong]:
    """Every usable Groove file, in info.csv order (what the converter saves)."""
    return load_groove_split(data, None, counts)


# ---------------------------------------------------------------- melody and bass


def pop909_song_number(song_id: str) -> int:
    """The POP909 song a window comes from ("017" or, for a song's second run
    of 4/4 bars, "017.1")."""
    return int(song_id.split(".")[0])


def pop909_split(song_number: int) -> str:
    """Deterministic 80/10/10 split by song, never by window."""
    return {0: "test", 1: "validation"}.get(song_number % 10, "train")


def _seconds(midi: mido.MidiFile, ticks: np.ndarray) -> np.ndarray:
    """Seconds of MIDI ticks, following every tempo change."""
    changes = sorted(
        (tick, message.tempo)
        for track in midi.tracks
        for tick, message in zip(np.cumsum([m.time for m in track]), track)
        if message.type == "set_tempo"
    )
    if not changes or changes[0][0] > 0:
        changes.insert(0, (0, 500_000))
    change_ticks = np.array([tick for tick, _ in changes], dtype=np.float64)
    seconds_per_tick = np.array([tempo for _, tempo in changes]) / 1e6 / midi.ticks_per_beat
    change_seconds = np.concatenate([[0.0], np.cumsum(np.diff(change_ticks) * seconds_per_tick[:-1])])
    segment = np.searchsorted(change_ticks, ticks, side="right") - 1
    return change_seconds[segment] + (ticks - change_ticks[segment]) * seconds_per_tick[segment]


def bar_runs(beat_file: Path, counts: Counts) -> list[np.ndarray]:
    """The 16th steps of a POP909 song, from its own beats: for every run of
    consecutive 4-beat bars (downbeats from beat_midi.txt's third column), the
    time in seconds of each step, four to a beat. Bars of another length (a
    2/4 bar, a 3/4 song) end a run and are counted, not played."""
    rows = [line.split() for line in beat_file.read_text().splitlines() if line.strip()]
    times = np.array([float(row[0]) for row in rows])
    downbeats = np.flatnonzero(np.array([float(row[2]) for row in rows]) == 1.0)
    if len(times) < 5 or np.any(np.diff(times) <= 0):
        counts.files["melodic: beat times unusable"] += 1
        return []
    runs, current = [], []
    for first, last in zip(downbeats, list(downbeats[1:]) + [len(times) - 1]):
        if last - first != 4:
            counts.windows["melodic: bars not of 4 beats (skipped)"] += 1
            if current:
                runs.append(np.concatenate(current))
                current = []
            continue
        beats = times[first : last + 1]
        current.append((beats[:-1, None] + np.diff(beats)[:, None] * np.arange(4) / 4).ravel())
    if current:
        runs.append(np.concatenate(current))
    return runs


def _to_steps(spans, step_times: np.ndarray) -> list[tuple[int, int, int, int]]:
    """(start, end, pitch, velocity) in seconds -> the same on the run's steps:
    each time to the nearest step; notes starting outside the run are dropped."""
    if not spans:
        return []
    starts = np.array([span[0] for span in spans])
    ends = np.array([span[1] for span in spans])
    step = np.median(np.diff(step_times))
    # Step boundaries half-way between step times; the run's last step ends one step on.
    edges = np.concatenate([(step_times[:-1] + step_times[1:]) / 2, [step_times[-1] + step / 2]])
    start_steps = np.searchsorted(edges, starts, side="right")
    end_steps = np.searchsorted(edges, ends, side="right")
    inside = (starts >= step_times[0] - step / 2) & (start_steps < len(step_times))
    return [
        (int(start), int(max(end, start + 1)), pitch, velocity)
        for start, end, (_, _, pitch, velocity), keep in zip(start_steps, end_steps, spans, inside)
        if keep
    ]


def _annotation(path: Path, read) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(starts, ends, values) of a POP909 span file, values read by `read`."""
    rows = [line.rstrip("\n").split("\t") for line in path.read_text().splitlines() if line.strip()]
    return (
        np.array([float(row[0]) for row in rows]),
        np.array([float(row[1]) for row in rows]),
        np.array([read(row[2].strip()) for row in rows]),
    )


def melody_tokens(notes: list[tuple[int, int, int, int]], steps: int) -> np.ndarray:
    """Monophonic tokens from (start step, end step, pitch, velocity) notes.

    Simultaneous onsets keep the highest pitch; an onset ends the note before it.
    """
    onsets: dict[int, tuple[int, int]] = {}
    for start, end, pitch, _ in notes:
        if 0 <= start < steps and vocab.MIN_PITCH <= pitch <= vocab.MAX_PITCH:
            if start not in onsets or pitch > onsets[start][0]:
                onsets[start] = (pitch, max(end, start + 1))
    tokens = np.full(steps, vocab.NO_EVENT, dtype=np.int16)
    starts = sorted(onsets)
    for index, start in enumerate(starts):
        pitch, end = onsets[start]
        next_start = starts[index + 1] if index + 1 < len(starts) else steps
        tokens[start] = vocab.pitch_to_token(pitch)
        if end < next_start and end < steps:
            tokens[end] = vocab.NOTE_OFF
    return tokens


def bass_notes(piano: list[tuple[int, int, int, int]], steps: int) -> list[tuple[int, int, int, int]]:
    """Bass line derived from the accompaniment: the lowest sounding pitch of
    every 16th step, folded by octaves into E1..G3. A new note starts where that
    pitch changes or is struck again, with the velocity the pianist struck it
    with."""
    lowest = np.full(steps, -1, dtype=np.int32)
    struck = np.zeros(steps, dtype=bool)
    velocity_of = np.zeros(steps, dtype=np.int32)
    for start, end, pitch, velocity in piano:
        for step in range(max(start, 0), min(max(end, start + 1), steps)):
            if lowest[step] < 0 or pitch < lowest[step]:
                lowest[step] = pitch
                struck[step] = step == start
                velocity_of[step] = velocity
            elif pitch == lowest[step] and step == start:
                struck[step] = True
                velocity_of[step] = velocity
    notes = []
    step = 0
    while step < steps:
        if lowest[step] < 0:
            step += 1
            continue
        end = step + 1
        while end < steps and lowest[end] == lowest[step] and not struck[end]:
            end += 1
        pitch = int(lowest[step])
        while pitch < vocab.BASS_MIN_PITCH:
            pitch += 12
        while pitch > vocab.BASS_MAX_PITCH:
            pitch -= 12
        notes.append((step, end, pitch, int(velocity_of[step])))
        step = end
    return notes


def onset_velocities(notes: list[tuple[int, int, int, int]], tokens: np.ndarray) -> np.ndarray:
    """The velocity of the note each token starts (the highest at an onset,
    as `melody_tokens` keeps it); 0 where no note starts."""
    velocities = np.zeros(len(tokens), dtype=np.uint8)
    for start, _, pitch, velocity in notes:
        playable = vocab.MIN_PITCH <= pitch <= vocab.MAX_PITCH
        if playable and 0 <= start < len(tokens) and tokens[start] == vocab.pitch_to_token(pitch):
            velocities[start] = max(velocities[start], velocity)
    return velocities


def pop909_songs(folder: Path, counts: Counts) -> list[dict[str, TokenSong]]:
    """Melody and derived bass of one POP909 song on its own beat grid, one
    {"melody", "bass"} per run of 4/4 bars, with the chord and key of every
    step (tempo changes are no obstacle: the grid follows the beats)."""
    number = int(folder.name)
    runs = bar_runs(folder / "beat_midi.txt", counts)
    if not runs:
        counts.files["melodic: no 4/4 bars"] += 1
        return []
    midi = mido.MidiFile(folder / f"{folder.name}.mid")
    tracks = {track.name: _note_spans(track) for track in midi.tracks}
    if not tracks.get("MELODY") or not tracks.get("PIANO"):
        counts.files["melodic: missing MELODY or PIANO track"] += 1
        return []

    def in_seconds(spans):
        ticks = np.array([[start, end] for start, end, _, _ in spans], dtype=np.float64)
        seconds = _seconds(midi, ticks.ravel()).reshape(-1, 2)
        return [(a, b, pitch, velocity) for (a, b), (_, _, pitch, velocity) in zip(seconds, spans)]

    melody_spans, piano_spans = in_seconds(tracks["MELODY"]), in_seconds(tracks["PIANO"])
    chord_spans = _annotation(folder / "chord_midi.txt", harmony.chord_mask)
    key_spans = _annotation(folder / "key_audio.txt", harmony.key_index)
    split = pop909_split(number)
    songs = []
    for index, step_times in enumerate(runs):
        steps = len(step_times)
        melody = _to_steps(melody_spans, step_times)
        piano = _to_steps(piano_spans, step_times)
        if not melody and not piano:
            continue
        # Chords change on beats, which are step times: read just after them.
        probe = step_times + 1e-3
        chords = harmony.spans_at(probe, *chord_spans, outside=harmony.NO_CHORD).astype(np.uint16)
        # A key holds from the song's start to its end: extend the first and last.
        starts, ends, keys = key_spans
        keys_at = harmony.spans_at(np.clip(probe, starts[0], ends[-1] - 1e-3), starts, ends, keys, harmony.NO_KEY)
        song_id = f"{folder.name}" if len(runs) == 1 else f"{folder.name}.{index}"
        melody_tokens_ = melody_tokens(melody, steps)
        bass = bass_notes(piano, steps)
        bass_tokens = melody_tokens(bass, steps)
        common = {"chords": chords, "keys": keys_at.astype(np.int8)}
        songs.append(
            {
                "melody": TokenSong(song_id, split, melody_tokens_, onset_velocities(melody, melody_tokens_), **common),
                "bass": TokenSong(song_id, split, bass_tokens, onset_velocities(bass, bass_tokens), **common),
            }
        )
    if not songs:
        counts.files["melodic: no notes in its 4/4 bars"] += 1
    return songs


def load_pop909_split(data: Path, split: str | None, counts: Counts) -> list[dict[str, TokenSong]]:
    """{"melody", "bass"} of every run of 4/4 bars of every usable POP909 song
    of `split` (all songs if None), in song order. Songs of other splits are
    not converted."""
    songs = []
    for folder in sorted((data / "pop909").iterdir()):
        if not folder.is_dir() or not folder.name.isdigit():
            continue
        if split is not None and pop909_split(int(folder.name)) != split:
            continue
        runs = pop909_songs(folder, counts)
        if runs:
            counts.files["melodic: kept"] += 1
            songs.extend(runs)
    return songs


def load_pop909(data: Path, counts: Counts) -> dict[str, list[TokenSong]]:
    """Melody and bass of every usable POP909 song, grouped by part."""
    songs = load_pop909_split(data, None, counts)
    return {part: [song[part] for song in songs] for part in ("melody", "bass")}


# ---------------------------------------------------------------- windows


def onset_count(tokens: np.ndarray, part: str) -> int:
    """Steps that start something: a drum hit or a melodic note-on."""
    return int(np.count_nonzero(tokens > 0)) if part == "drums" else int(np.count_nonzero(tokens >= 2))


def window_hop(bars: int) -> int:
    """Bars between the starts of windows of `bars` bars."""
    return 1 if bars == WINDOW_BARS else 4


def windows(song: TokenSong, part: str, bars: int, hop_bars: int, counts: Counts) -> list[int]:
    """Start steps of the windows of `bars` bars worth keeping; a window with
    fewer than 4 onsets (silence, a lone crash) is skipped and counted."""
    length = bars * vocab.STEPS_PER_BAR
    starts = []
    for start in range(0, len(song.tokens) - length + 1, hop_bars * vocab.STEPS_PER_BAR):
        if onset_count(song.tokens[start : start + length], part) < 4:
            counts.windows[f"{part} {bars}-bar: fewer than 4 onsets"] += 1
            continue
        starts.append(start)
    return starts


def unique_windows(song_windows, counts: Counts, label: str):
    """Keeps the first of every window whose notes (and chords) repeat one
    already kept: a chorus sung four times is learned, and scored, once."""
    seen = set()
    for song, start, length in song_windows:
        key = song.tokens[start : start + length].tobytes()
        if song.chords is not None:
            key += song.chords[start : start + length].tobytes()
        if key in seen:
            counts.windows[f"{label}: repeats a window (dropped)"] += 1
            continue
        seen.add(key)
        counts.windows[f"{label}: kept"] += 1
        yield song, start, length


def save_part(part: str, songs: list[TokenSong], out: Path, counts: Counts) -> None:
    """Writes `<part>.npz`: 2-bar windows (hop 1 bar) and 16-bar windows (hop 4
    bars) per split, each kept once, with the song id of every window; drums
    keep velocities and grid offsets (for a later humanize model), melody and
    bass velocities and the chord and key of every step."""
    arrays: dict[str, np.ndarray] = {}
    for split in SPLITS:
        for bars, key in ((WINDOW_BARS, "2bar"), (LONG_WINDOW_BARS, "16bar")):
            hop = window_hop(bars)
            length = bars * vocab.STEPS_PER_BAR
            found = (
                (song, start, length)
                for song in songs
                if song.split == split
                for start in windows(song, part, bars, hop, counts)
            )
            columns: dict[str, list] = collections.defaultdict(list)
            for song, start, _ in unique_windows(found, counts, f"{part} {bars}-bar {split}"):
                columns["tokens"].append(song.tokens[start : start + length])
                columns["song"].append(song.song_id)
                for name in ("velocities", "offsets", "chords", "keys"):
                    values = getattr(song, name)
                    if values is not None:
                        columns[name].append(values[start : start + length])
            arrays[f"{split}_{key}"] = np.array(columns["tokens"], dtype=np.int16).reshape(-1, length)
            arrays[f"{split}_{key}_song"] = np.array(columns["song"], dtype=object).astype(str)
            stored = {"velocities": ("velocity", np.uint8), "offsets": ("offset", np.float16), "chords": ("chord", np.uint16), "keys": ("key", np.int8)}
            for name, (suffix, dtype) in stored.items():
                if columns[name]:
                    arrays[f"{split}_{key}_{suffix}"] = np.array(columns[name], dtype=dtype)
    out.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(out / f"{part}.npz", **arrays)


def load_windows(data_dir: Path, part: str) -> dict[str, np.ndarray]:
    """The arrays `save_part` wrote for `part`."""
    with np.load(data_dir / f"{part}.npz") as archive:
        return {key: archive[key] for key in archive.files}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path("../shared/data"), help="folder with groove/ and pop909/")
    parser.add_argument("--out", type=Path, default=Path("models/work/data"))
    args = parser.parse_args()
    counts = Counts()
    save_part("drums", load_groove(args.data, counts), args.out, counts)
    pop = load_pop909(args.data, counts)
    for part, songs in pop.items():
        save_part(part, songs, args.out, counts)
    (args.out / "counts.json").write_text(json.dumps(counts.as_dict(), indent=2, sort_keys=True))
    print(json.dumps(counts.as_dict(), indent=2, sort_keys=True))


if __name__ == "__main__":
    main()
