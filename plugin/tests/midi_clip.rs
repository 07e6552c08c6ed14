//! MIDI in: a .mid clip becomes the tokens the encoder reads. What the plugin
//! exports reads back as the same notes, and broken or unsuitable files are
//! refused with a plain reason (and never crash).

use std::path::Path;

use latent_trio::engine::manifest::{Manifest, Vocabulary};
use latent_trio::engine::tokens::tokens_to_notes;
use latent_trio::midi_clip::{ClipError, clip_from_bytes, read_clip};
use latent_trio::midi_file::{self, TimedNote, Track};
use latent_trio::pattern::{MODEL_STEPS, Part, PartPhrase};
use latent_trio::sequencer::clock::Meter;

fn vocabulary(part: Part) -> Vocabulary {
    let folder = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../models")
        .join(format!("{}_2bar", part.name()));
    Manifest::load(&folder, part)
        .expect("committed manifest")
        .vocabulary
}

/// Writes `tokens` as the plugin exports them (120 ticks per 16th).
fn export(part: Part, tokens: &[i64; MODEL_STEPS], path: &Path) {
    let mut phrase = PartPhrase::default();
    tokens_to_notes(&vocabulary(part), tokens, MODEL_STEPS, &mut phrase);
    let channel = part.default_channel();
    let mut notes = Vec::new();
    for note in phrase.notes() {
        let tick = |step: usize| step as u64 * 120;
        notes.push(TimedNote {
            tick: tick(note.step.into()),
            channel,
            pitch: note.pitch,
            velocity: note.velocity,
        });
        notes.push(TimedNote {
            tick: tick(note.end_step()),
            channel,
            pitch: note.pitch,
            velocity: 0,
        });
    }
    notes.sort_by_key(|n| (n.tick, n.velocity > 0));
    midi_file::write(
        path,
        120.0,
        Meter::default(),
        &[Track {
            name: part.title().into(),
            notes,
        }],
    )
    .unwrap();
}

fn drum_tokens() -> [i64; MODEL_STEPS] {
    let mut tokens = [0; MODEL_STEPS];
    for step in (0..MODEL_STEPS).step_by(2) {
        tokens[step] = 0b100; // closed hat
    }
    for step in [0, 6, 16, 22, 26] {
        tokens[step] |= 0b1; // kick
    }
    for step in [4, 12, 20, 28] {
        tokens[step] |= 0b10; // snare
    }
    tokens[31] = 0b1000_0000; // crash
    tokens
}

fn melody_tokens(low: i64) -> [i64; MODEL_STEPS] {
    let mut tokens = [1; MODEL_STEPS];
    let on = |pitch: i64| pitch - 21 + 2;
    tokens[0] = on(low);
    tokens[3] = 0;
    tokens[4] = on(low + 7);
    tokens[8] = on(low + 5);
    tokens[14] = 0;
    tokens[16] = on(low + 12);
    tokens[30] = on(low + 3);
    tokens
}

#[test]
fn exported_phrases_read_back_as_the_same_tokens() {
    let dir = tempfile::tempdir().unwrap();
    for (part, tokens) in [
        (Part::Drums, drum_tokens()),
        (Part::Bass, melody_tokens(36)),
        (Part::Melody, melody_tokens(64)),
    ] {
        let path = dir.path().join(format!("{}.mid", part.name()));
        export(part, &tokens, &path);
        let clip = read_clip(&path, part, &vocabulary(part)).expect("an exported phrase imports");
        assert_eq!(clip.tokens, tokens, "{}", part.name());
        assert_eq!(clip.notes_left_out, 0);
        println!("{}: {}", part.name(), clip.summary());
    }
}

/// A small hand-made file: format 0, `tpq`, one track of (delta, bytes) events.
fn smf(tpq: u16, events: &[(u32, &[u8])]) -> Vec<u8> {
    let mut track = Vec::new();
    for (delta, bytes) in events {
        let mut value = *delta;
        let mut var = vec![(value & 0x7F) as u8];
        value >>= 7;
        while value > 0 {
            var.insert(0, (value & 0x7F) as u8 | 0x80);
            value >>= 7;
        }
        track.extend(var);
        track.extend_from_slice(bytes);
    }
    track.extend([0x00, 0xFF, 0x2F, 0x00]);
    let mut file = b"MThd\0\0\0\x06\0\0\0\x01".to_vec();
    file.extend(tpq.to_be_bytes());
    file.extend(b"MTrk");
    file.extend((track.len() as u32).to_be_bytes());
    file.extend(track);
    file
}

fn melodic_notes(channel: u8) -> Vec<(u32, Vec<u8>)> {
    let mut events = Vec::new();
    for (index, pitch) in [60u8, 64, 67, 72].into_iter().enumerate() {
        let _ = index;
        events.push((0, vec![0x90 | channel, pitch, 100]));
        events.push((240, vec![0x80 | channel, pitch, 0]));
    }
    events
}

fn with_meter(numerator: u8, power: u8) -> Vec<u8> {
    let mut events: Vec<(u32, Vec<u8>)> = vec![(0, vec![0xFF, 0x58, 4, numerator, power, 24, 8])];
    events.extend(melodic_notes(0));
    let borrowed: Vec<(u32, &[u8])> = events.iter().map(|(d, b)| (*d, b.as_slice())).collect();
    smf(480, &borrowed)
}

fn notes_on(channel: u8) -> Vec<u8> {
    let events = melodic_notes(channel);
    let borrowed: Vec<(u32, &[u8])> = events.iter().map(|(d, b)| (*d, b.as_slice())).collect();
    smf(480, &borrowed)
}

#[test]
fn broken_and_unsuitable_files_are_refused_with_a_reason() {
    let good = notes_on(0);
    let mut garbage = Vec::new();
    let mut x = 0x2545_F491_4F6C_DD1Du64;
    for _ in 0..300 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        garbage.push(x as u8);
    }
    let mut too_many_tracks = good.clone();
    too_many_tracks[11] = 5;
    let mut long_track = good.clone();
    long_track[21] = 0x7F;
    let mut smpte = good.clone();
    smpte[12] = 0xE7;
    smpte[13] = 40;
    let mut bad_magic = good.clone();
    bad_magic[14..18].copy_from_slice(b"XTrk");
    let cases: Vec<(&str, Part, Vec<u8>)> = vec![
        ("empty file", Part::Melody, Vec::new()),
        ("garbage bytes", Part::Drums, garbage),
        (
            "a text file",
            Part::Bass,
            b"C D E F G A B C, played slowly".to_vec(),
        ),
        (
            "truncated header",
            Part::Melody,
            b"MThd\0\0\0\x06\0".to_vec(),
        ),
        ("header only", Part::Melody, good[..14].to_vec()),
        (
            "truncated track",
            Part::Melody,
            good[..good.len() - 9].to_vec(),
        ),
        (
            "more tracks announced than present",
            Part::Melody,
            too_many_tracks,
        ),
        ("track longer than the file", Part::Melody, long_track),
        ("track chunk with a wrong name", Part::Melody, bad_magic),
        ("SMPTE timing", Part::Melody, smpte),
        ("0 ticks per quarter", Part::Melody, {
            let mut file = good.clone();
            file[12] = 0;
            file[13] = 0;
            file
        }),
        (
            "meta event running past the end",
            Part::Melody,
            smf(480, &[(0, &[0xFF, 0x03, 0x7F, b'a'])]),
        ),
        (
            "running status with nothing before",
            Part::Melody,
            smf(480, &[(0, &[0x3C, 0x40])]),
        ),
        (
            "unterminated sysex",
            Part::Melody,
            smf(480, &[(0, &[0xF0, 0x05, 0x01])]),
        ),
        (
            "tempo only, no notes",
            Part::Melody,
            smf(480, &[(0, &[0xFF, 0x51, 0x03, 0x07, 0xA1, 0x20])]),
        ),
        (
            "only note-offs",
            Part::Melody,
            smf(480, &[(0, &[0x80, 60, 0]), (120, &[0x80, 62, 0])]),
        ),
        ("3/4", Part::Melody, with_meter(3, 2)),
        ("6/8", Part::Bass, with_meter(6, 3)),
        ("7/8", Part::Melody, with_meter(7, 3)),
        ("5/4", Part::Drums, with_meter(5, 2)),
        ("drums imported as melody", Part::Melody, notes_on(9)),
        ("drums imported as bass", Part::Bass, notes_on(9)),
        ("piano imported as drums", Part::Drums, notes_on(0)),
        (
            "a note 2 bars in the future of a 3/4 change",
            Part::Melody,
            {
                let events: Vec<(u32, &[u8])> = vec![
                    (0, &[0xFF, 0x58, 4, 3, 2, 24, 8]),
                    (3840, &[0x90, 60, 100]),
                    (240, &[0x80, 60, 0]),
                ];
                smf(480, &events)
            },
        ),
    ];
    assert!(cases.len() >= 20);
    for (name, part, bytes) in &cases {
        let Err(error) = clip_from_bytes(bytes, *part, &vocabulary(*part)) else {
            panic!("{name}: imported, but should be refused");
        };
        let message = error.to_string();
        println!("{name:<45} {message}");
        let expected = match error {
            ClipError::NotMidi(_) => "MIDI",
            ClipError::FrameTiming => "SMPTE",
            ClipError::NoTicksPerQuarter => "0 ticks",
            ClipError::NotFourFour { .. } => "4/4 only",
            ClipError::NoNotes => "no notes",
            ClipError::WrongPart { .. } => part.name(),
            ClipError::Unreadable { .. } => "cannot read",
            ClipError::NotAFile => "regular file",
            ClipError::TooLarge { .. } => "at most",
        };
        assert!(message.contains(expected), "{name}: {message}");
    }
}

#[test]
fn notes_off_the_grid_land_on_the_nearest_16th_and_chords_keep_one_line() {
    // 96 ticks per quarter: a 16th is 24 ticks. C-E-G chord at 0 (a few ticks
    // late), then A at step 5, 3 ticks early.
    let events: Vec<(u32, &[u8])> = vec![
        (4, &[0x90, 60, 100]),
        (0, &[0x90, 64, 100]),
        (0, &[0x90, 67, 100]),
        (44, &[0x80, 60, 0]),
        (0, &[0x80, 64, 0]),
        (0, &[0x80, 67, 0]),
        (69, &[0x90, 69, 100]),
        (24, &[0x80, 69, 0]),
    ];
    let bytes = smf(96, &events);
    let melody = clip_from_bytes(&bytes, Part::Melody, &vocabulary(Part::Melody)).unwrap();
    let bass = clip_from_bytes(&bytes, Part::Bass, &vocabulary(Part::Bass)).unwrap();
    let on = |pitch: i64| pitch - 21 + 2;
    assert_eq!(
        melody.tokens[0],
        on(67),
        "melody keeps the top of the chord"
    );
    assert_eq!(bass.tokens[0], on(60), "bass keeps the bottom");
    assert_eq!(melody.tokens[2], 0, "the chord ends after two 16ths");
    assert_eq!(melody.tokens[5], on(69));
    assert_eq!(melody.notes_left_out, 2);
}

#[test]
fn a_clip_starting_in_bar_3_is_read_from_bar_3() {
    let events: Vec<(u32, &[u8])> = vec![(2 * 1920, &[0x99, 36, 100]), (120, &[0x89, 36, 0])];
    let clip = clip_from_bytes(&smf(480, &events), Part::Drums, &vocabulary(Part::Drums)).unwrap();
    assert_eq!(clip.first_bar, 2);
    assert_eq!(clip.tokens[0], 1, "the kick opens the window");
    assert!(clip.summary().starts_with("bars 3-4"));
}

#[test]
fn hostile_bytes_never_crash_the_import() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("drums.mid");
    export(Part::Drums, &drum_tokens(), &path);
    let valid = std::fs::read(&path).unwrap();
    let vocabulary = vocabulary(Part::Drums);
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let mut refused = 0;
    for _ in 0..2_000 {
        let mut bytes = valid.clone();
        for _ in 0..1 + next() % 4 {
            let at = (next() as usize) % bytes.len().max(1);
            match next() % 4 {
                0 => bytes[at] = next() as u8,
                1 => bytes.truncate(at),
                2 => bytes.insert(at, next() as u8),
                _ => bytes[at] ^= 1 << (next() % 8),
            }
            if bytes.is_empty() {
                break;
            }
        }
        if clip_from_bytes(&bytes, Part::Drums, &vocabulary).is_err() {
            refused += 1;
        }
    }
    println!(
        "2000 mutated files: {refused} refused, {} imported",
        2000 - refused
    );
    assert!(refused > 0);
}

#[test]
fn a_header_with_an_impossible_frame_rate_is_refused_not_a_crash() {
    // SMPTE timing with -128 frames per second: midly overflows negating it.
    for timing in [[0x80u8, 0x00], [0x80, 0x28], [0xE7, 0x28]] {
        let mut file = notes_on(0);
        file[12..14].copy_from_slice(&timing);
        assert!(clip_from_bytes(&file, Part::Melody, &vocabulary(Part::Melody)).is_err());
    }
}

#[test]
fn only_a_regular_file_of_a_clips_size_is_read_and_nothing_blocks() {
    let dir = tempfile::tempdir().unwrap();
    let drums = vocabulary(Part::Drums);
    // A FIFO would block a reader forever; it is refused without opening it.
    let fifo = dir.path().join("clip.mid");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());
    assert!(matches!(
        read_clip(&fifo, Part::Drums, &drums),
        Err(ClipError::NotAFile)
    ));
    // An endless device would fill the memory.
    assert!(matches!(
        read_clip(Path::new("/dev/zero"), Part::Drums, &drums),
        Err(ClipError::NotAFile)
    ));
    assert!(matches!(
        read_clip(dir.path(), Part::Drums, &drums),
        Err(ClipError::NotAFile)
    ));
    // A 300 MB file is refused by its size, before it is read.
    let huge = dir.path().join("huge.mid");
    std::fs::File::create(&huge)
        .unwrap()
        .set_len(300_000_000)
        .unwrap();
    let error = read_clip(&huge, Part::Drums, &drums).unwrap_err();
    assert!(matches!(error, ClipError::TooLarge { .. }));
    assert!(error.to_string().contains("at most 4 MiB"), "{error}");
}
