//! `latent-trio`: the plugin's engine without a host.
//!
//! `latent-trio render --bars 8 --seed 7 --out groove.mid` writes the notes
//! the plugin plays for that seed and those knobs; `--input clip.mid --part
//! drums` starts the drums from a clip of your own; `--key "A minor" --chords
//! "Am F C G"` makes bass and melody follow a progression of your own (the
//! file then has a fourth track with its chords); `--song --bars 64` writes a
//! 64-bar song from the song priors. `latent-trio info` says
//! which models and ONNX Runtime it finds and where they run.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

use latent_trio::engine::runtime::{self, ProviderChoice};
use latent_trio::engine::song::{SONG_BARS, SONG_SLOTS};
use latent_trio::engine::{self, Engine, SONG_PRIOR_FOLDERS};
use latent_trio::harmony::{HarmonyError, HarmonySettings, Key, PRESETS, TypedProgression};
use latent_trio::knobs::{
    ATTRIBUTE_RANGE, AttributeKnob, KnobSnapshot, PRINCIPAL_KNOBS, PRINCIPAL_RANGE, PartKnobs,
    PhraseLength,
};
use latent_trio::midi_file;
use latent_trio::params::MAX_SEED;
use latent_trio::params::MAX_TEMPERATURE;
use latent_trio::pattern::{LONG_MODEL_BARS, MODEL_BARS, Part};
use latent_trio::render::{CHORDS_CHANNEL, RenderSettings, render};
use latent_trio::sequencer::clock::Meter;
use latent_trio::stored::{Song, StoredLatents};

#[derive(Parser)]
#[command(
    name = "latent-trio",
    version,
    about = "Latent Trio's engine without a host"
)]
struct Cli {
    /// Models folder (default: LATENT_TRIO_MODELS, then the bundled or repository models).
    #[arg(long, global = true)]
    models: Option<PathBuf>,
    /// Where the models run.
    #[arg(long, global = true, value_enum, default_value_t = ProviderArg::Auto)]
    provider: ProviderArg,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Decode and write a .mid file.
    Render(Box<RenderArgs>),
    /// Show the models, the ONNX Runtime library and the provider in use.
    Info,
}

#[derive(clap::Args)]
struct RenderArgs {
    /// Bars to render.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=1024))]
    bars: u32,
    /// Seed (the plugin's Seed parameter, 0-9999).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(0..=MAX_SEED as i64))]
    seed: u32,
    /// Parts to render, comma-separated.
    #[arg(long, value_delimiter = ',', default_values_t = ["drums".to_string(), "bass".to_string(), "melody".to_string()])]
    parts: Vec<String>,
    /// Tempo in BPM.
    #[arg(long, default_value_t = 120.0)]
    tempo: f64,
    /// Time signature, e.g. 4/4 or 7/8.
    #[arg(long, default_value = "4/4")]
    meter: String,
    /// Sampling temperature of every part (0 = most likely notes).
    #[arg(long, default_value_t = 0.5)]
    temperature: f32,
    /// A knob setting, repeatable: PART.KNOB=VALUE where KNOB is latent_1..latent_8,
    /// density, syncopation, register, temperature or humanize (0..1: from the
    /// grid and fixed velocities to the humanize model's performance), e.g.
    /// drums.latent_2=1.5 or drums.humanize=1.
    #[arg(long = "knob", value_name = "PART.KNOB=VALUE")]
    knobs: Vec<String>,
    /// A .mid clip to start from: its latent replaces the seed's for --part
    /// (the knobs then move from there).
    #[arg(long, requires = "part")]
    input: Option<PathBuf>,
    /// The part the --input clip is for: drums, bass or melody (with
    /// --context-from alone: melody).
    #[arg(long)]
    part: Option<String>,
    /// A .mid clip (up to 16 bars of 4/4) whose structure the melody follows
    /// (context transfer with the Transformer VAE): the melody keeps its own
    /// material and repeats it where the clip repeats itself. Implies
    /// --phrase-bars 16 unless 4 or 8 is given.
    #[arg(long, value_name = "CLIP", conflicts_with = "song")]
    context_from: Option<PathBuf>,
    /// The key bass and melody play in, e.g. "A minor" or "Eb major" (default:
    /// C, or the key of --chords' first chord).
    #[arg(long)]
    key: Option<String>,
    /// The chord progression bass and melody follow: one of the plugin's
    /// presets by name, e.g. "I V vi IV" or "i VI III VII (minor)", in --key.
    #[arg(long, conflicts_with = "chords")]
    progression: Option<String>,
    /// A progression of your own, 1 to 16 bars, looping: one chord a bar
    /// ("Am F C G"), or bars between | with one or two chords each
    /// ("Dm7 G7 | Cmaj7 | Am7 D7 | G7"). The phrase lasts as long as it.
    #[arg(long)]
    chords: Option<String>,
    /// Swing of every part, 0..1: every second 16th comes up to a third of a
    /// 16th late (1 = a triplet feel).
    #[arg(long, default_value_t = 0.0)]
    swing: f32,
    /// Let bass and melody play notes outside the key's scale.
    #[arg(long)]
    no_scale_lock: bool,
    /// The phrase's length in bars (the plugin's Phrase setting): 2 from the
    /// 2-bar models, or 4, 8 or 16 from the 16-bar hierarchical models
    /// (default: as long as the progression, from the 2-bar models). The
    /// render loops the phrase over --bars.
    #[arg(long, value_parser = ["2", "4", "8", "16"])]
    phrase_bars: Option<String>,
    /// Phrases one after another, each --bars long, with seeds seed, seed+1, ...
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=256))]
    variations: u32,
    /// Render a 64-bar song instead of a looping phrase (the plugin's Song
    /// mode): the song priors write every 2-bar slot's latent from --seed,
    /// the 2-bar models play them over the progression, the knobs move every
    /// slot as they move a phrase. The render loops the song over --bars.
    #[arg(long, conflicts_with_all = ["phrase_bars", "variations", "input"])]
    song: bool,
    /// With --song: re-roll these bars of the song (e.g. 17-32, counted from
    /// 1, whole 2-bar slots), keeping every other bar as it was and writing
    /// the new bars to fit between them (infilling), as the plugin's Re-roll
    /// does with the other slots locked.
    #[arg(long, requires = "song", value_name = "FIRST-LAST")]
    reroll: Option<String>,
    /// The .mid file to write.
    #[arg(long)]
    out: PathBuf,
}

#[derive(Clone, Copy, ValueEnum)]
enum ProviderArg {
    Auto,
    Cpu,
    Cuda,
    Directml,
}

impl From<ProviderArg> for ProviderChoice {
    fn from(value: ProviderArg) -> Self {
        match value {
            ProviderArg::Auto => ProviderChoice::Auto,
            ProviderArg::Cpu => ProviderChoice::Cpu,
            ProviderArg::Cuda => ProviderChoice::Cuda,
            ProviderArg::Directml => ProviderChoice::DirectMl,
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("latent-trio: {message}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<(), String> {
    let models = cli
        .models
        .or_else(engine::models_folder)
        .ok_or("no models folder found; pass --models or set LATENT_TRIO_MODELS")?;
    let mut engine = Engine::load(&models, cli.provider.into()).map_err(|e| e.to_string())?;
    match cli.command {
        Command::Info => {
            let library = runtime::runtime().map_err(|e| e.to_string())?;
            println!("ONNX Runtime: {}", library.library.display());
            println!("models: {}", models.display());
            for part in Part::ALL {
                for models in [&engine.parts, &engine.long_parts] {
                    match &models[part.index()] {
                        Ok(model) => {
                            let refines = model.manifest.refinement.map_or(String::new(), |r| {
                                format!(" (refines an imported clip in {} steps)", r.steps)
                            });
                            println!(
                                "{:<7} {}{refines} on {}",
                                part.name(),
                                model.manifest.name,
                                model.provider.label()
                            );
                            if let Some(note) = &model.provider_note {
                                println!("        {note}");
                            }
                        }
                        Err(error) => println!("{:<7} not loaded: {error}", part.name()),
                    }
                }
            }
            match &engine.structure_model {
                Ok(model) => println!(
                    "melody  {} (follows a clip's structure) on {}",
                    model.manifest.name,
                    model.provider.label()
                ),
                Err(error) => println!("melody  no Transformer VAE: {error}"),
            }
            Ok(())
        }
        Command::Render(args) => {
            let parts = parse_parts(&args.parts)?;
            let mut knobs = parse_knobs(&args)?;
            for &part in &parts {
                if let Err(error) = &engine.parts[part.index()] {
                    return Err(format!(
                        "the {} model could not be loaded: {error}",
                        part.name()
                    ));
                }
                if let Some(problem) = engine.long_model_problem(part, &knobs) {
                    return Err(format!("the {}: {problem}", part.name()));
                }
            }

            let meter = parse_meter(&args.meter)?;
            if !(args.tempo.is_finite() && (10.0..=999.0).contains(&args.tempo)) {
                return Err(format!("tempo {} is outside 10..999 BPM", args.tempo));
            }
            let mut stored = import_clip(&mut engine, &args)?;
            knobs.harmony = parse_harmony(&mut stored, &args)?;
            if let Some(path) = &args.context_from {
                if args.phrase_bars.is_none() {
                    knobs.phrase = PhraseLength::Bars(LONG_MODEL_BARS);
                }
                if !knobs.phrase.wants_long_models() {
                    return Err(
                        "--context-from plays 4-, 8- or 16-bar phrases; leave out --phrase-bars 2"
                            .into(),
                    );
                }
                let structure =
                    engine
                        .follow_structure(path, &knobs, &stored)
                        .map_err(|error| {
                            format!("cannot follow the structure of {}: {error}", path.display())
                        })?;
                eprintln!(
                    "melody follows the structure of {}: {}",
                    structure.name, structure.summary
                );
                stored.structure = Some(structure);
            }
            let settings = RenderSettings {
                bars: args.bars,
                tempo: args.tempo,
                meter,
                parts: parts.iter().map(|&p| (p, p.default_channel())).collect(),
                variations: args.variations,
                // What bass and melody followed, so that it can be heard.
                chords_channel: parts
                    .iter()
                    .any(|&part| part != Part::Drums)
                    .then_some(CHORDS_CHANNEL),
            };
            if args.song {
                for (folder, prior) in SONG_PRIOR_FOLDERS.iter().zip(&engine.song_priors) {
                    if let Err(error) = prior {
                        eprintln!("no song prior {folder} ({error}); its parts loop their phrase");
                    }
                }
                knobs.phrase = PhraseLength::Song;
                stored.song = reroll_song(&mut engine, &knobs, &stored, &args)?;
            }
            let tracks =
                render(&mut engine, &knobs, &stored, &settings).map_err(|e| e.to_string())?;
            midi_file::write(&args.out, args.tempo, meter, &tracks).map_err(|e| e.to_string())?;
            let notes: usize = tracks
                .iter()
                .map(|t| t.notes.iter().filter(|n| n.velocity > 0).count())
                .sum();
            println!(
                "wrote {} ({} bars, {} notes, seed {}, decoded in {:.1} ms)",
                args.out.display(),
                args.bars,
                notes,
                args.seed,
                engine.last_decode.as_secs_f64() * 1000.0
            );
            Ok(())
        }
    }
}

/// Key, progression and scale lock from --key, --progression, --chords and
/// --no-scale-lock; a typed progression goes to `stored`, as the window
/// stores one.
fn parse_harmony(stored: &mut StoredLatents, args: &RenderArgs) -> Result<HarmonySettings, String> {
    let key: Option<Key> = args
        .key
        .as_deref()
        .map(str::parse)
        .transpose()
        .map_err(|error: HarmonyError| error.to_string())?;
    let mut harmony = HarmonySettings {
        scale_lock: !args.no_scale_lock,
        ..HarmonySettings::default()
    };
    if let Some(chords) = &args.chords {
        let typed = TypedProgression {
            chords: chords.clone(),
            key: args.key.clone(),
        };
        typed.read().map_err(|error| error.to_string())?;
        stored.typed_progression = Some(typed);
        harmony.typed = true;
        return Ok(harmony);
    }
    if let Some(name) = &args.progression {
        harmony.preset = PRESETS
            .iter()
            .position(|preset| preset.name.eq_ignore_ascii_case(name.trim()))
            .ok_or_else(|| {
                let names: Vec<_> = PRESETS.iter().map(|p| format!("\"{}\"", p.name)).collect();
                format!(
                    "unknown progression \"{name}\" (one of {})",
                    names.join(", ")
                )
            })?;
    }
    if let Some(key) = key {
        let preset = harmony.preset();
        if key.mode != preset.mode {
            return Err(format!(
                "the progression \"{}\" is in {}; give a {} key, or pick a {} progression",
                preset.name,
                preset.mode.name(),
                preset.mode.name(),
                key.mode.name()
            ));
        }
        harmony.key_root = key.root;
    }
    Ok(harmony)
}

/// With --reroll: the song of --seed with those bars written again around
/// the others (what the plugin stores after a re-roll).
fn reroll_song(
    engine: &mut Engine,
    knobs: &KnobSnapshot,
    stored: &StoredLatents,
    args: &RenderArgs,
) -> Result<Option<Song>, String> {
    let Some(bars) = &args.reroll else {
        return Ok(None);
    };
    let bad = || format!("--reroll {bars} should be bars like 17-32 within 1-{SONG_BARS}");
    let (first, last) = bars.split_once('-').ok_or_else(bad)?;
    let (first, last): (usize, usize) = (
        first.trim().parse().map_err(|_| bad())?,
        last.trim().parse().map_err(|_| bad())?,
    );
    if first < 1 || last < first || last > SONG_BARS {
        return Err(bad());
    }
    let mut locked = [true; SONG_SLOTS];
    locked[(first - 1) / MODEL_BARS..=(last - 1) / MODEL_BARS].fill(false);
    engine
        .reroll_song(knobs, stored, &locked)
        .map(Some)
        .map_err(|e| e.to_string())
}

/// Encodes the --input clip, if any, as its part's starting latent.
fn import_clip(engine: &mut Engine, args: &RenderArgs) -> Result<StoredLatents, String> {
    let mut stored = StoredLatents::default();
    if let Some(part) = &args.part {
        let melody = parse_parts(std::slice::from_ref(part))?[0] == Part::Melody;
        if args.input.is_none() && !(args.context_from.is_some() && melody) {
            return Err(
                "--part names the part of an --input clip (or, as melody, of --context-from)"
                    .into(),
            );
        }
    }
    let (Some(path), Some(part)) = (&args.input, &args.part) else {
        return Ok(stored);
    };
    let part = parse_parts(std::slice::from_ref(part))?[0];
    let clip = engine
        .import_clip(part, path)
        .map_err(|error| error.to_string())?;
    eprintln!("{}: {} from {}", part.name(), clip.summary, path.display());
    stored.clips[part.index()] = Some(clip);
    Ok(stored)
}

fn parse_parts(names: &[String]) -> Result<Vec<Part>, String> {
    let mut parts = Vec::new();
    for name in names {
        let part = Part::from_name(name.trim())
            .ok_or_else(|| format!("unknown part \"{name}\" (drums, bass, melody)"))?;
        if !parts.contains(&part) {
            parts.push(part);
        }
    }
    Ok(parts)
}

fn parse_meter(text: &str) -> Result<Meter, String> {
    let (n, d) = text
        .split_once('/')
        .ok_or_else(|| format!("meter \"{text}\" should look like 4/4"))?;
    let (n, d): (i32, i32) = (
        n.trim()
            .parse()
            .map_err(|_| format!("bad meter numerator in \"{text}\""))?,
        d.trim()
            .parse()
            .map_err(|_| format!("bad meter denominator in \"{text}\""))?,
    );
    let meter = Meter::from_host(Some(n), Some(d));
    if meter.numerator != n as u32 || meter.denominator != d as u32 {
        return Err(format!(
            "meter {text} is not supported (numerator 1-32, denominator 1, 2, 4, 8 or 16)"
        ));
    }
    Ok(meter)
}

fn parse_knobs(args: &RenderArgs) -> Result<KnobSnapshot, String> {
    let mut parts = [PartKnobs {
        temperature: args.temperature,
        ..PartKnobs::default()
    }; 3];
    for setting in &args.knobs {
        let bad = || format!("knob \"{setting}\" should look like drums.latent_1=1.5");
        let (target, value) = setting.split_once('=').ok_or_else(bad)?;
        let (part, knob) = target.split_once('.').ok_or_else(bad)?;
        let part = Part::from_name(part).ok_or_else(|| format!("unknown part in \"{setting}\""))?;
        let value: f32 = value.trim().parse().map_err(|_| bad())?;
        let within = |range: f32, low: f32| {
            if (low..=range).contains(&value) {
                Ok(value)
            } else {
                Err(format!(
                    "{target} is {value}, outside the knob's range {low}..{range}"
                ))
            }
        };
        let knobs = &mut parts[part.index()];
        let attribute = AttributeKnob::ALL
            .iter()
            .position(|a| a.axis_name() == knob);
        if let Some(index) = knob
            .strip_prefix("latent_")
            .and_then(|i| i.parse::<usize>().ok())
        {
            if !(1..=PRINCIPAL_KNOBS).contains(&index) {
                return Err(format!(
                    "latent knobs are latent_1..latent_{PRINCIPAL_KNOBS}"
                ));
            }
            knobs.principal[index - 1] = within(PRINCIPAL_RANGE, -PRINCIPAL_RANGE)?;
        } else if let Some(index) = attribute {
            knobs.attributes[index] = within(ATTRIBUTE_RANGE, -ATTRIBUTE_RANGE)?;
        } else if knob == "temperature" {
            knobs.temperature = within(MAX_TEMPERATURE, 0.0)?;
        } else if knob == "humanize" {
            knobs.humanize = within(1.0, 0.0)?;
        } else {
            return Err(format!("unknown knob \"{knob}\" in \"{setting}\""));
        }
    }
    if !(0.0..=MAX_TEMPERATURE).contains(&args.temperature) {
        return Err(format!(
            "temperature {} is outside 0..{MAX_TEMPERATURE}",
            args.temperature
        ));
    }
    if !(0.0..=1.0).contains(&args.swing) {
        return Err(format!("swing {} is outside 0..1", args.swing));
    }
    let phrase = match &args.phrase_bars {
        Some(bars) => {
            PhraseLength::Bars(bars.parse().map_err(|_| format!("phrase of {bars} bars"))?)
        }
        None => PhraseLength::Progression,
    };
    Ok(KnobSnapshot {
        seed: args.seed,
        parts,
        swing: args.swing,
        phrase,
        ..KnobSnapshot::default()
    })
}
