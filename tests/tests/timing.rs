//! Steady play: every note lands on the 16th the transport implies, at every
//! sample rate, tempo and block size, and matches what the CLI renders.

use latent_trio_host::{
    Bundle, Instance, NoteEvent, Onsets, Song, check_balanced, clap_bundle, cli_onsets,
};

fn instance(bundle: &Bundle) -> Instance {
    let mut instance = bundle.instantiate().expect("instantiates");
    instance.activate(48_000.0, 4096);
    assert!(
        instance.warm_up(60.0),
        "the models load and play within a minute"
    );
    instance
}

/// (step, channel, key) of every note-on, steps counted from the song start.
fn onsets(events: &[NoteEvent]) -> Onsets {
    events
        .iter()
        .filter(|e| e.on)
        .map(|e| {
            (
                e.step.unwrap_or_else(|| panic!("off the grid: {e:?}")),
                e.channel,
                e.key,
            )
        })
        .collect()
}

#[test]
fn the_factory_offers_latent_trio_with_grouped_parameters() {
    let bundle = Bundle::load(&clap_bundle()).unwrap();
    assert_eq!(
        bundle.plugins(),
        vec![(
            latent_trio_host::PLUGIN_ID.to_string(),
            "Latent Trio".to_string()
        )]
    );
    let instance = bundle.instantiate().unwrap();
    for name in [
        "Seed",
        "New Seed",
        "Change",
        "Bypass",
        "Drums Latent 1",
        "Bass Latent 8",
        "Melody Register",
        "Drums Channel",
    ] {
        instance.param(name);
    }
    assert_eq!(instance.param("Bass Density").module, "Bass");
    assert_eq!(
        instance
            .params
            .iter()
            .filter(|p| p.name.contains("Latent"))
            .count(),
        24
    );
}

#[test]
fn steady_play_lands_every_note_on_its_16th_at_every_rate_tempo_and_block_size() {
    let bundle = Bundle::load(&clap_bundle()).unwrap();
    let mut instance = instance(&bundle);
    let reference = cli_onsets(1, 4, (4, 4));
    assert!(
        reference.len() > 20,
        "the default seed plays a real pattern"
    );
    let mut runs = 0;
    for rate in [44_100.0, 48_000.0, 96_000.0] {
        for tempo in [60.0, 120.0, 187.5] {
            for block in [64u32, 511, 512, 4096] {
                instance.activate(rate, 4096);
                instance.song = Song {
                    tempo,
                    ..Song::default()
                };
                let from = instance.events.len();
                instance.play_bars(4.0, block);
                instance.song.playing = false;
                instance.block(64);
                let events = instance.events_since(from);
                assert!(
                    events.iter().all(|e| e.on_grid || !e.on),
                    "{rate} Hz, {tempo} BPM, block {block}: a note-on off the grid"
                );
                check_balanced(events)
                    .unwrap_or_else(|e| panic!("{rate} Hz, {tempo} BPM, block {block}: {e}"));
                assert_eq!(
                    onsets(events),
                    reference,
                    "{rate} Hz, {tempo} BPM, block {block}: not the notes the CLI renders"
                );
                runs += 1;
            }
        }
    }
    println!("{runs} runs of 4 bars matched the CLI note for note");
}

#[test]
fn single_sample_and_uneven_blocks_play_the_same_notes() {
    let bundle = Bundle::load(&clap_bundle()).unwrap();
    let mut instance = instance(&bundle);
    let mut played = Vec::new();
    for blocks in [&[1u32][..], &[7, 300, 1, 4096, 33]] {
        instance.activate(48_000.0, 4096);
        instance.song = Song::default();
        let from = instance.events.len();
        let total = 2 * 96_000u64;
        let mut done = 0u64;
        let mut index = 0;
        while done < total {
            let frames = u64::from(blocks[index % blocks.len()]).min(total - done) as u32;
            instance.block(frames);
            done += u64::from(frames);
            index += 1;
        }
        played.push(onsets(instance.events_since(from)));
    }
    assert_eq!(played[0], played[1]);
    assert!(!played[0].is_empty());
}

#[test]
fn an_offline_bounce_plays_exactly_what_real_time_plays() {
    let bundle = Bundle::load(&clap_bundle()).unwrap();
    let relative = |instance: &Instance, from: usize, wall: u64| -> Vec<(u64, bool, u16, u16)> {
        instance
            .events_since(from)
            .iter()
            .map(|e| (e.sample - wall, e.on, e.channel, e.key))
            .collect()
    };
    let mut realtime = instance(&bundle);
    let (from, wall) = (realtime.events.len(), realtime.wall);
    realtime.play_bars(8.0, 512);
    let mut offline = bundle.instantiate_offline(4096).unwrap();
    offline.play_bars(8.0, 512);
    let bounced = relative(&offline, 0, 0);
    assert!(!bounced.is_empty());
    assert_eq!(bounced, relative(&realtime, from, wall));
}
