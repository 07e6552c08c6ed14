//! A broken installation never takes the host down: a missing or damaged
//! ONNX Runtime leaves the plugin silent with a reason, a corrupt model
//! silences only its own part, and nothing is written into the musician's
//! home folder.
//!
//! Each scenario copies the bundle somewhere else and runs in a child process
//! (the ONNX Runtime library, once loaded, stays loaded for the process).

use std::path::{Path, PathBuf};
use std::process::Command;

use latent_trio_host::{Bundle, check_balanced, clap_bundle};

const CHILD: &str = "LATENT_TRIO_HOST_CHILD";

/// Copies the CLAP and (optionally) its resources into a temporary folder.
fn copy_bundle(dir: &Path, with_resources: bool) -> PathBuf {
    let clap = dir.join("Latent Trio.clap");
    std::fs::copy(clap_bundle(), &clap).unwrap();
    if with_resources {
        let source = clap_bundle().with_file_name("Latent Trio.resources");
        copy_tree(&source, &dir.join("Latent Trio.resources"));
    }
    clap
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &to.join(entry.file_name()));
        } else {
            std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
        }
    }
}

/// Runs test `name` of this file in a child process with `env`; returns stderr.
fn in_child(name: &str, env: &[(&str, &Path)]) -> String {
    let mut command = Command::new(std::env::current_exe().unwrap());
    command
        .args(["--exact", name, "--nocapture", "--test-threads=1"])
        .env(CHILD, "1");
    for (key, value) in env {
        command.env(key, value);
    }
    let output = command.output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(
        output.status.success(),
        "child failed:\n{}\n{stderr}",
        String::from_utf8_lossy(&output.stdout)
    );
    stderr
}

fn is_child() -> bool {
    std::env::var_os(CHILD).is_some()
}

#[test]
fn without_onnx_runtime_the_plugin_loads_plays_silence_and_says_why() {
    if is_child() {
        let bundle = Bundle::load(Path::new(&std::env::var("CLAP_UNDER_TEST").unwrap())).unwrap();
        let mut instance = bundle.instantiate().unwrap();
        instance.activate(48_000.0, 512);
        for _ in 0..50 {
            instance.play(9_600, 512);
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        assert!(instance.events.is_empty(), "silent without ONNX Runtime");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let clap = copy_bundle(dir.path(), false);
    let stderr = in_child(
        "without_onnx_runtime_the_plugin_loads_plays_silence_and_says_why",
        &[
            ("CLAP_UNDER_TEST", &clap),
            (
                "LATENT_TRIO_ORT_LIB",
                Path::new("/nonexistent/libonnxruntime.so"),
            ),
            ("NICE_LOG", Path::new("stderr")),
        ],
    );
    assert!(
        stderr.contains("ONNX Runtime was not found"),
        "the reason is reported:\n{stderr}"
    );
}

#[test]
fn a_corrupt_model_silences_only_its_own_part() {
    if is_child() {
        let bundle = Bundle::load(Path::new(&std::env::var("CLAP_UNDER_TEST").unwrap())).unwrap();
        let mut instance = bundle.instantiate_offline(512).unwrap();
        instance.play(4 * 96_000, 512);
        instance.song.playing = false;
        instance.block(64);
        check_balanced(&instance.events).unwrap();
        let channels: std::collections::BTreeSet<u16> =
            instance.events.iter().map(|e| e.channel).collect();
        assert_eq!(
            channels.into_iter().collect::<Vec<_>>(),
            vec![0, 9],
            "melody and drums play, the bass does not"
        );
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let clap = copy_bundle(dir.path(), true);
    std::fs::write(
        dir.path()
            .join("Latent Trio.resources/models/bass_2bar/decoder_step.onnx"),
        b"corrupt",
    )
    .unwrap();
    let stderr = in_child(
        "a_corrupt_model_silences_only_its_own_part",
        &[
            ("CLAP_UNDER_TEST", &clap),
            ("NICE_LOG", Path::new("stderr")),
        ],
    );
    assert!(
        stderr.contains("decoder_step.onnx is not a usable ONNX model"),
        "the reason is reported:\n{stderr}"
    );
}

#[test]
fn a_damaged_humanize_model_leaves_its_part_on_the_grid_and_says_why() {
    if is_child() {
        let bundle = Bundle::load(Path::new(&std::env::var("CLAP_UNDER_TEST").unwrap())).unwrap();
        let mut instance = bundle.instantiate_offline(512).unwrap();
        for part in ["Drums", "Bass", "Melody"] {
            instance.set(&format!("{part} Humanize"), 1.0);
        }
        instance.play(4 * 96_000, 512);
        instance.song.playing = false;
        instance.block(64);
        check_balanced(&instance.events).unwrap();
        let on = |channel: u16| {
            instance
                .events
                .iter()
                .filter(move |e| e.on && e.channel == channel)
        };
        // Drums (channel 10) lost their humanize model: on the grid, at the
        // fixed velocities; the bass (channel 2) still humanizes.
        assert!(on(9).count() > 10 && on(9).all(|e| e.on_grid));
        assert!(on(9).all(|e| [110, 96, 82].contains(&((e.velocity * 127.0).round() as u8))));
        assert!(on(1).any(|e| (e.velocity * 127.0).round() as u8 != 100));
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let clap = copy_bundle(dir.path(), true);
    std::fs::write(
        dir.path()
            .join("Latent Trio.resources/models/drums_humanize/manifest.json"),
        b"{\"format_version\": 1, \"family\": \"humanize\", \"part\": \"bass\"}",
    )
    .unwrap();
    let stderr = in_child(
        "a_damaged_humanize_model_leaves_its_part_on_the_grid_and_says_why",
        &[
            ("CLAP_UNDER_TEST", &clap),
            ("NICE_LOG", Path::new("stderr")),
        ],
    );
    assert!(
        stderr.contains("drums plays on the grid")
            && stderr.contains("drums_humanize/manifest.json"),
        "the reason is reported:\n{stderr}"
    );
}

/// The child's side of the truncated-library scenarios: the plugin loads,
/// plays nothing, and the host lives on.
fn plays_silence_without_crashing() {
    let bundle = Bundle::load(Path::new(&std::env::var("CLAP_UNDER_TEST").unwrap())).unwrap();
    let mut instance = bundle.instantiate().unwrap();
    instance.activate(48_000.0, 512);
    for _ in 0..25 {
        instance.play(9_600, 512);
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert!(
        instance.events.is_empty(),
        "silent without a usable library"
    );
}

/// The bundled ONNX Runtime library, cut to half its size.
fn truncate_bundled_library(resources: &Path) -> PathBuf {
    let lib = resources.join("lib");
    let library = std::fs::read_dir(&lib)
        .unwrap()
        .flatten()
        .map(|entry| entry.path())
        .find(|path| path.to_string_lossy().contains("libonnxruntime.so."))
        .expect("the bundle carries ONNX Runtime");
    let bytes = std::fs::read(&library).unwrap();
    std::fs::write(&library, &bytes[..bytes.len() / 2]).unwrap();
    library
}

#[test]
fn a_truncated_bundled_library_is_refused_and_the_host_lives_on() {
    if is_child() {
        plays_silence_without_crashing();
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let clap = copy_bundle(dir.path(), true);
    truncate_bundled_library(&dir.path().join("Latent Trio.resources"));
    let stderr = in_child(
        "a_truncated_bundled_library_is_refused_and_the_host_lives_on",
        &[
            ("CLAP_UNDER_TEST", &clap),
            ("NICE_LOG", Path::new("stderr")),
        ],
    );
    assert!(
        stderr.contains("copied incompletely; reinstall the plugin"),
        "the reason is reported:\n{stderr}"
    );
}

#[test]
fn a_truncated_library_of_the_users_own_is_refused_and_the_host_lives_on() {
    if is_child() {
        plays_silence_without_crashing();
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // A bundle without its own library: the user's LATENT_TRIO_ORT_LIB is used.
    let clap = copy_bundle(dir.path(), true);
    let resources = dir.path().join("Latent Trio.resources");
    let own = dir.path().join("own");
    std::fs::rename(resources.join("lib"), own.join("lib")).unwrap_or_else(|_| {
        std::fs::create_dir_all(&own).unwrap();
        std::fs::rename(resources.join("lib"), own.join("lib")).unwrap();
    });
    // A library of the user's own comes without our checksums.
    std::fs::remove_file(own.join("lib/checksums.sha256")).unwrap();
    let library = truncate_bundled_library(&own);
    let stderr = in_child(
        "a_truncated_library_of_the_users_own_is_refused_and_the_host_lives_on",
        &[
            ("CLAP_UNDER_TEST", &clap),
            ("LATENT_TRIO_ORT_LIB", &library),
            ("NICE_LOG", Path::new("stderr")),
        ],
    );
    assert!(
        stderr.contains("not a complete shared library"),
        "the reason is reported:\n{stderr}"
    );
}

#[test]
fn the_plugin_and_the_cli_write_nothing_into_the_musicians_home() {
    if is_child() {
        let bundle = Bundle::load(Path::new(&std::env::var("CLAP_UNDER_TEST").unwrap())).unwrap();
        let mut instance = bundle.instantiate_offline(512).unwrap();
        instance.play(2 * 96_000, 512);
        assert!(!instance.events.is_empty(), "the models ran");
        return;
    }
    let home = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let clap = copy_bundle(dir.path(), true);
    in_child(
        "the_plugin_and_the_cli_write_nothing_into_the_musicians_home",
        &[("CLAP_UNDER_TEST", &clap), ("HOME", home.path())],
    );
    let left: Vec<_> = walk(home.path());
    assert!(left.is_empty(), "the plugin wrote {left:?}");
    // The CLI neither: only the .mid file it was asked for.
    let out = dir.path().join("render.mid");
    let status = Command::new(latent_trio_host::workspace().join("target/debug/latent-trio"))
        .args(["--models"])
        .arg(latent_trio_host::bundled_models())
        .args(["render", "--bars", "2", "--out"])
        .arg(&out)
        .env("HOME", home.path())
        .env_remove("XDG_CACHE_HOME")
        .status()
        .unwrap();
    assert!(status.success() && out.is_file());
    let left: Vec<_> = walk(home.path());
    assert!(left.is_empty(), "the CLI wrote {left:?}");
}

/// Every file and folder below `dir`.
fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        found.push(entry.path());
        if entry.file_type().unwrap().is_dir() {
            found.extend(walk(&entry.path()));
        }
    }
    found
}
