//! A broken installation never takes the host down: a missing ONNX Runtime
//! leaves the plugin silent with a reason, and a corrupt model silences only
//! its own part.
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
