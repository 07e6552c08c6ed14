"""MIDI -> 16th-note token sequences, bar windows and held-out splits.

Drums come from the Groove MIDI Dataset (official split column of info.csv);
melody and bass from POP909 (split by song). Every skipped file and window is
counted with its reason so the manifests can say what the models saw.

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

from . import vocab

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
    velocities: np.ndarray | None = None  # drums: [steps, 9] uint8, 0 = no hit
    offsets: np.ndarray | None = None  # drums: [steps, 9] offset from the grid in steps


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


def pop909_split(song_number: int) -> str:
    """Deterministic 80/10/10 split by song, never by window."""
    return {0: "test", 1: "validation"}.get(song_number % 10, "train")


def _downbeat_origin(beat_file: Path, ticks_per_second: float, counts: Counts) -> float | None:
    """Tick of a downbeat from beat_midi.txt if the song is steadily in 4/4.

    The file's third column marks 4/4 downbeats; a song whose downbeats are not
    every fourth beat, or whose beats do not follow the MIDI tempo, is skipped.
    """
    rows = [line.split() for line in beat_file.read_text().splitlines() if line.strip()]
    times = np.array([float(r[0]) for r in rows])
    downbeats = [i for i, r in enumerate(rows) if float(r[2]) == 1.0]
    if len(downbeats) < 2:
        counts.files["melodic: no downbeats"] += 1
        return None
    gaps = np.diff(downbeats)
    if np.mean(gaps == 4) < 0.95:
        counts.files["melodic: not 4/4"] += 1
        return None
    beat_ticks = np.diff(times) * ticks_per_second
    if np.median(np.abs(beat_ticks - np.median(beat_ticks))) > 10 or abs(np.median(beat_ticks) - 480) > 10:
        counts.files["melodic: beats do not follow the MIDI tempo"] += 1
        return None
    return times[downbeats[0]] * ticks_per_second


def _grid(spans, origin: float, step_ticks: float):
    return [
        (int(round((s - origin) / step_ticks)), int(round((e - origin) / step_ticks)), p, v)
        for s, e, p, v in spans
    ]


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
    pitch changes or is struck again."""
    lowest = np.full(steps, -1, dtype=np.int32)
    struck = np.zeros(steps, dtype=bool)
    for start, end, pitch, _ in piano:
        for step in range(max(start, 0), min(max(end, start + 1), steps)):
            if lowest[step] < 0 or pitch < lowest[step]:
                lowest[step] = pitch
                struck[step] = step == start
            elif pitch == lowest[step] and step == start:
                struck[step] = True
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
        notes.append((step, end, pitch, 100))
        step = end
    return notes


def pop909_songs(folder: Path, counts: Counts) -> dict[str, TokenSong] | None:
    """Melody and derived bass of one POP909 song, on a grid whose bar 1 starts
    on a downbeat from beat_midi.txt."""
    number = int(folder.name)
    midi = mido.MidiFile(folder / f"{folder.name}.mid")
    tempi = _tempi(midi)
    if len(set(tempi)) != 1:
        counts.files["melodic: tempo changes"] += 1
        return None
    ticks_per_second = midi.ticks_per_beat / (tempi[0] / 1e6)
    origin = _downbeat_origin(folder / "beat_midi.txt", ticks_per_second, counts)
    if origin is None:
        return None
    tracks = {track.name: _note_spans(track) for track in midi.tracks}
    if not tracks.get("MELODY") or not tracks.get("PIANO"):
        counts.files["melodic: missing MELODY or PIANO track"] += 1
        return None
    bar_ticks = midi.ticks_per_beat * 4
    first_tick = min(span[0] for span in tracks["MELODY"] + tracks["PIANO"])
    while origin > first_tick:  # keep pickup notes: start on an earlier bar line
        origin -= bar_ticks
    step_ticks = midi.ticks_per_beat / 4
    melody = _grid(tracks["MELODY"], origin, step_ticks)
    piano = _grid(tracks["PIANO"], origin, step_ticks)
    last = max(end for _, end, _, _ in melody + piano)
    steps = math.ceil(last / vocab.STEPS_PER_BAR) * vocab.STEPS_PER_BAR
    split = pop909_split(number)
    song_id = folder.name
    return {
        "melody": TokenSong(song_id, split, melody_tokens(melody, steps)),
        "bass": TokenSong(song_id, split, melody_tokens(bass_notes(piano, steps), steps)),
    }


def load_pop909_split(data: Path, split: str | None, counts: Counts) -> list[dict[str, TokenSong]]:
    """{"melody", "bass"} of every usable POP909 song of `split` (all songs if
    None), in song order. Songs of other splits are not converted."""
    songs = []
    for folder in sorted((data / "pop909").iterdir()):
        if not folder.is_dir() or not folder.name.isdigit():
            continue
        if split is not None and pop909_split(int(folder.name)) != split:
            continue
        song = pop909_songs(folder, counts)
        if song is not None:
            counts.files["melodic: kept"] += 1
            songs.append(song)
    return songs


def load_pop909(data: Path, counts: Counts) -> dict[str, list[TokenSong]]:
    """Melody and bass of every usable POP909 song, grouped by part."""
    songs = load_pop909_split(data, None, counts)
    return {part: [song[part] for song in songs] for part in ("melody", "bass")}


# ---------------------------------------------------------------- windows


def onset_count(tokens: np.ndarray, part: str) -> int:
    """Steps that start something: a drum hit or a melodic note-on."""
    return int(np.count_nonzero(tokens > 0)) if part == "drums" else int(np.count_nonzero(tokens >= 2))


def windows(song: TokenSong, part: str, bars: int, hop_bars: int, counts: Counts) -> list[int]:
    """Start steps of the windows of `bars` bars worth keeping; a window with
    fewer than 4 onsets (silence, a lone crash) is skipped and counted."""
    length = bars * vocab.STEPS_PER_BAR
    starts = []
    for start in range(0, len(song.tokens) - length + 1, hop_bars * vocab.STEPS_PER_BAR):
        if onset_count(song.tokens[start : start + length], part) < 4:
            counts.windows[f"{part} {bars}-bar: fewer than 4 onsets"] += 1
            continue
        counts.windows[f"{part} {bars}-bar: kept ({song.split})"] += 1
        starts.append(start)
    return starts


def save_part(part: str, songs: list[TokenSong], out: Path, counts: Counts) -> None:
    """Writes `<part>.npz`: 2-bar windows (hop 1 bar) and 16-bar windows (hop 4
    bars) per split, with the song id of every window; drums keep velocities and
    grid offsets for a later humanize model."""
    arrays: dict[str, np.ndarray] = {}
    for split in SPLITS:
        for bars, hop, key in ((WINDOW_BARS, 1, "2bar"), (LONG_WINDOW_BARS, 4, "16bar")):
            tokens, ids, velocities, offsets = [], [], [], []
            length = bars * vocab.STEPS_PER_BAR
            for song in songs:
                if song.split != split:
                    continue
                for start in windows(song, part, bars, hop, counts):
                    tokens.append(song.tokens[start : start + length])
                    ids.append(song.song_id)
                    if song.velocities is not None and bars == WINDOW_BARS:
                        velocities.append(song.velocities[start : start + length])
                        offsets.append(song.offsets[start : start + length])
            arrays[f"{split}_{key}"] = np.array(tokens, dtype=np.int16).reshape(-1, length)
            arrays[f"{split}_{key}_song"] = np.array(ids, dtype=object).astype(str)
            if velocities:
                arrays[f"{split}_{key}_velocity"] = np.array(velocities, dtype=np.uint8)
                arrays[f"{split}_{key}_offset"] = np.array(offsets, dtype=np.float16)
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
