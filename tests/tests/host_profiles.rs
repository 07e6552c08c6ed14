//! Host truth: whatever a host gets wrong about bars (Ardour's bar start one
//! bar late, bar fields left at 0, pre-roll before the song start, loops that
//! wrap inside a block, tempo ramps inside a block), the plugin plays what
//! `latent-trio render` writes for the same seed and meter, note for note,
//! from song bar 1 on, and quantized changes land on the song's own bars.

use latent_trio_host::{
    Bundle, HostProfile, Instance, NoteEvent, Onsets, Song, check_balanced, clap_bundle, cli_onsets,
};

const METERS: [(u16, u16); 5] = [(4, 4), (3, 4), (7, 8), (5, 4), (6, 8)];

fn onsets(events: &[NoteEvent]) -> Result<Onsets, String> {
    events
        .iter()
        .filter(|e| e.on)
        .map(|e| {
            let step = e.step.ok_or(format!("a note-on off the grid: {e:?}"))?;
            Ok((step, e.channel, e.key))
        })
        .collect()
}

/// Where `heard` differs from `expected`, in words (`None`: identical).
fn difference(heard: &Onsets, expected: &Onsets) -> Option<String> {
    (heard != expected).then(|| {
        let matching = heard.intersection(expected).count();
        let first = heard.symmetric_difference(expected).next();
        format!(
            "{matching} of {} expected notes heard ({} notes in all); first difference {first:?}",
            expected.len(),
            heard.len()
        )
    })
}

/// Block size per profile: one that does not divide the loop, so that the
/// loop end falls inside a block where the host does not split there.
fn block_size(profile: HostProfile) -> u32 {
    match profile {
        HostProfile::LoopInsideBlock => 4093,
        _ => 500,
    }
}

/// Plays `bars` song bars in `meter` under `profile` as an offline bounce
/// (the worker's timing plays no part), with knob `moves` at song positions
/// given in bars. Returns the note-ons of the song's bars, or what went
/// wrong.
fn play(
    bundle: &Bundle,
    profile: HostProfile,
    meter: (u16, u16),
    bars: f64,
    change: Option<f64>,
    moves: &[(f64, &str, f64)],
) -> Result<Onsets, String> {
    let mut instance: Instance = bundle.instantiate_offline(4096).unwrap();
    if let Some(change) = change {
        instance.set("Change", change);
    }
    instance.song = Song {
        meter,
        profile,
        ..Song::default()
    };
    let bar = instance.song.bar_quarters();
    match profile {
        HostProfile::PreRoll => instance.song.locate(-bar),
        // The loop covers the whole song: the second pass replays it.
        HostProfile::LoopInsideBlock => instance.song.looping = Some((0.0, bars * bar)),
        HostProfile::TempoRampInsideBlock => instance.song.tempo_inc = 2e-4,
        _ => {}
    }
    // A loop plays on for half a pass more; otherwise play to the song's end.
    let looped_quarters = bars * bar * 1.5;
    let block = block_size(profile);
    let mut next_move = 0;
    let mut song_quarters_played = 0.0;
    let mut wrapped = false;
    while if profile == HostProfile::LoopInsideBlock {
        song_quarters_played < looped_quarters
    } else {
        instance.song.position < bars * bar
    } {
        while next_move < moves.len() && instance.song.position >= moves[next_move].0 * bar {
            instance.set(moves[next_move].1, moves[next_move].2);
            next_move += 1;
        }
        let before = instance.song.position;
        instance.block(block);
        let after = instance.song.position;
        song_quarters_played += if after >= before {
            after - before
        } else {
            wrapped = true;
            after + (bars * bar - before)
        };
    }
    assert!(
        wrapped || profile != HostProfile::LoopInsideBlock,
        "the loop wrapped"
    );
    instance.song.playing = false;
    instance.block(64);
    check_balanced(&instance.events)?;
    if let Some(early) = instance
        .events
        .iter()
        .find(|e| e.on && e.song_quarters < -1e-9)
    {
        return Err(format!("a note before the song start: {early:?}"));
    }
    // The last block may run past the song's end (a ramp's blocks do not
    // divide it): compare the song's own bars.
    let song_steps = (bars * bar * 4.0).round() as i64;
    let mut events = std::mem::take(&mut instance.events);
    events.retain(|e| e.step.is_none_or(|step| step < song_steps));
    onsets(&events)
}

#[test]
fn every_host_profile_plays_the_cli_render_note_for_note_in_every_meter() {
    let bundle = Bundle::load(&clap_bundle()).unwrap();
    let bars = 4;
    let mut failures = Vec::new();
    for meter in METERS {
        let reference = cli_onsets(1, bars, meter);
        assert!(reference.len() > 20, "the CLI renders a real pattern");
        for profile in HostProfile::ALL {
            let heard = play(&bundle, profile, meter, f64::from(bars), None, &[]);
            let problem = match heard {
                Ok(heard) => difference(&heard, &reference),
                Err(error) => Some(error),
            };
            if let Some(problem) = problem {
                failures.push(format!("{profile:?} in {}/{}: {problem}", meter.0, meter.1));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "not the notes `latent-trio render --meter` writes:\n{}",
        failures.join("\n")
    );
}

#[test]
fn every_2_and_4_bar_changes_land_on_song_bars_3_and_5_under_every_profile() {
    let bundle = Bundle::load(&clap_bundle()).unwrap();
    let moves = [
        (1.5, "Drums Latent 1", 2.5),
        (1.5, "Bass Latent 1", -2.5),
        (1.5, "Melody Density", 1.5),
    ];
    let from_start: Vec<_> = moves
        .iter()
        .map(|&(_, knob, value)| (0.0, knob, value))
        .collect();
    let mut failures = Vec::new();
    // (Change value, 0-based bar where a move in bar 2 is first heard)
    for (change, lands) in [(1.0, 2), (2.0, 4)] {
        for meter in [(4, 4), (3, 4)] {
            let steps_per_bar = i64::from(meter.0) * 16 / i64::from(meter.1);
            let line = lands * steps_per_bar;
            let reference = |moves: &[(f64, &str, f64)]| {
                play(&bundle, HostProfile::Exact, meter, 6.0, Some(change), moves)
                    .expect("the reference plays")
            };
            let before = reference(&[]);
            let after = reference(&from_start);
            assert_ne!(before, after, "the knobs change the music");
            let expected: Onsets = before
                .iter()
                .filter(|e| e.0 < line)
                .chain(after.iter().filter(|e| e.0 >= line))
                .copied()
                .collect();
            for profile in HostProfile::ALL {
                if profile == HostProfile::LoopInsideBlock {
                    continue; // a loop replays the same bars: covered above
                }
                let problem = match play(&bundle, profile, meter, 6.0, Some(change), &moves) {
                    Ok(heard) => difference(&heard, &expected),
                    Err(error) => Some(error),
                };
                if let Some(problem) = problem {
                    failures.push(format!(
                        "{profile:?}, Change {change}, {}/{}: {problem}",
                        meter.0, meter.1
                    ));
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "a change not heard from song bar 3 (every 2) or 5 (every 4) on:\n{}",
        failures.join("\n")
    );
}
