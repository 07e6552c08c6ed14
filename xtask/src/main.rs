//! `cargo xtask`: everything beyond `cargo build`.
//!
//! - `fetch-onnxruntime [cuda]`: the ONNX Runtime library from its PyPI wheel
//!   (pinned version and checksum, cached in `ort/`); `onnxruntime-gpu` for
//!   the CUDA build.
//! - `bundle latent_trio [--release]`: nice-plug's bundler, then the ONNX
//!   Runtime library and the models copied into each bundle.
//! - `build`: fetch, bundle in release mode and render `target/demo.mid`.
//! - `bundle-tests`: the debug test bundles (allocation checks in
//!   `process()`) in `target/test-bundle/bundled/`, apart from the release
//!   bundles a user installs.
//! - `test`: fetch, bundle for tests, then every Rust and Python test (the
//!   Python ones in `.venv`, set up from `models/requirements.txt`).

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};
use sha2::{Digest, Sha256};

/// The wheel the bundles carry ONNX Runtime from.
struct Wheel {
    package: &'static str,
    version: &'static str,
    file: &'static str,
    sha256: &'static str,
}

// 1.28.0: the last ONNX Runtime without telemetry on Linux. From 1.29 on,
// creating its environment writes a device id and a queue of usage events
// under ~/.cache/Microsoft/DeveloperTools for upload, and only an environment
// variable (which a plugin cannot safely set inside a running host) turns
// that off. The ort crate needs 1.24 or newer.
const CPU_WHEEL: Wheel = Wheel {
    package: "onnxruntime",
    version: "1.28.0",
    file: "onnxruntime-1.28.0-cp311-cp311-manylinux_2_27_x86_64.manylinux_2_28_x86_64.whl",
    sha256: "a166b78ee04f3a37fa1ef82034b6a3ce96d9684e582d4d30b296de83e9998bb5",
};

const GPU_WHEEL: Wheel = Wheel {
    package: "onnxruntime-gpu",
    version: "1.28.0",
    file: "onnxruntime_gpu-1.28.0-cp311-cp311-manylinux_2_27_x86_64.manylinux_2_28_x86_64.whl",
    sha256: "774d4c307317f7a0fefc33930820b7ac2a62be2c595e6a1e63e318555f7176b8",
};

/// Where the library lands; the plugin's development builds look here too.
const ORT_FOLDER: &str = "ort";
const BUNDLE_NAME: &str = "Latent Trio";
const PACKAGE: &str = "latent_trio";
/// Where bundles for users go (nice-plug's bundler writes here).
const RELEASE_BUNDLES: &str = "target/bundled";
/// Where `test` puts its debug bundles, so that running the tests never
/// replaces the release bundles a user installs.
const TEST_BUNDLE_HOME: &str = "target/test-bundle";
/// Model folders shipped in the bundles.
const MODELS: [&str; 13] = [
    "drums_2bar",
    "bass_2bar",
    "melody_2bar",
    "drums_16bar",
    "bass_16bar",
    "melody_16bar",
    "drums_humanize",
    "bass_humanize",
    "melody_humanize",
    "song_drums",
    "song_melody",
    "song_bass",
    "melody_transformer",
];

fn main() {
    // One plain line on failure: what went wrong and what to do.
    if let Err(error) = xtask() {
        eprintln!("error: {error:#}");
        std::process::exit(1);
    }
}

fn xtask() -> Result<()> {
    nice_plug_xtask::chdir_workspace_root()?;
    let args: Vec<String> = std::env::args().skip(1).collect();
    // The CUDA build (`--features cuda`) carries the GPU build of ONNX Runtime.
    let gpu = args.iter().any(|a| a.contains("cuda"));
    match args.first().map(String::as_str) {
        Some("fetch-onnxruntime") => fetch_onnxruntime(gpu).map(|_| ()),
        Some("bundle") => {
            fetch_onnxruntime(gpu)?;
            nice_plug_xtask::main_with_args("cargo xtask", args.clone())?;
            add_resources(Path::new(RELEASE_BUNDLES))
        }
        Some("build") => {
            fetch_onnxruntime(false)?;
            nice_plug_xtask::main_with_args(
                "cargo xtask",
                ["bundle", PACKAGE, "--release"].map(String::from),
            )?;
            add_resources(Path::new(RELEASE_BUNDLES))?;
            render_demo()
        }
        Some("bundle-tests") => {
            fetch_onnxruntime(false)?;
            bundle_for_tests()
        }
        Some("test") => {
            // Formatting first: it is instant and says exactly what to fix.
            run("cargo", &["fmt", "--all", "--", "--check"])?;
            fetch_onnxruntime(false)?;
            bundle_for_tests()?;
            run(
                "cargo",
                &[
                    "test",
                    "--workspace",
                    "--features",
                    "latent_trio/assert_process_allocs",
                ],
            )?;
            let python = python_environment()?;
            // The onnxruntime Python package reports usage unless told not to.
            // SAFETY: xtask is single-threaded here.
            unsafe { std::env::set_var("ORT_DISABLE_TELEMETRY", "1") };
            run(
                python.to_str().context("non-UTF-8 path")?,
                &["-m", "pytest", "models/tests", "-q"],
            )
        }
        _ => nice_plug_xtask::main_with_args("cargo xtask", args),
    }
}

/// The Python that runs the model pipeline's tests: `.venv`, created once
/// from `models/requirements.txt` and brought up to date whenever that file
/// changes. It sees packages already installed system-wide, so a machine
/// that has them downloads nothing.
fn python_environment() -> Result<PathBuf> {
    let venv = Path::new(".venv");
    let python = venv.join("bin").join("python");
    let requirements = Path::new("models/requirements.txt");
    if !python.is_file() {
        run(
            "python3",
            &["-m", "venv", "--system-site-packages", ".venv"],
        )
        .context(
            "could not create the Python environment .venv: install Python 3 with its venv module \
             (Debian: apt-get install python3-venv)",
        )?;
    }
    let wanted = sha256_of(requirements)?;
    let stamp = venv.join(".requirements-sha256");
    if fs::read_to_string(&stamp).ok().as_deref() != Some(wanted.as_str()) {
        run(
            python.to_str().context("non-UTF-8 path")?,
            &[
                "-m",
                "pip",
                "install",
                "--quiet",
                "-r",
                "models/requirements.txt",
            ],
        )
        .context("could not install models/requirements.txt into .venv (is PyPI reachable?)")?;
        fs::write(&stamp, wanted)?;
    }
    Ok(python)
}

fn run(program: &str, args: &[&str]) -> Result<()> {
    println!("$ {program} {}", args.join(" "));
    let status = Command::new(program)
        .args(args)
        .status()
        .with_context(|| format!("could not run {program}"))?;
    if !status.success() {
        bail!("{program} {} failed ({status})", args.join(" "));
    }
    Ok(())
}

fn sha256_of(path: &Path) -> Result<String> {
    let mut hasher = Sha256::new();
    let mut file = fs::File::open(path)?;
    let mut buffer = vec![0; 1 << 20];
    loop {
        let read = file.read(&mut buffer)?;
        if read == 0 {
            break;
        }
        hasher.update(&buffer[..read]);
    }
    Ok(format!("{:x}", hasher.finalize()))
}

/// Downloads (once) and unpacks the ONNX Runtime library into `ort/lib/`.
/// Returns the folder holding the library files.
fn fetch_onnxruntime(gpu: bool) -> Result<PathBuf> {
    let wheel = if gpu { GPU_WHEEL } else { CPU_WHEEL };
    let downloads = Path::new(ORT_FOLDER).join("download");
    let lib = Path::new(ORT_FOLDER).join("lib");
    let wheel_path = downloads.join(wheel.file);
    let marker = lib.join(format!(".from-{}", wheel.file));
    if marker.is_file() {
        return Ok(lib);
    }
    if !wheel_path.is_file() {
        fs::create_dir_all(&downloads)?;
        // pip knows the registry, its mirrors and certificates; the wheel's
        // Python tag does not matter, the library inside is the same.
        run(
            "python3",
            &[
                "-m",
                "pip",
                "download",
                "--no-deps",
                "--only-binary=:all:",
                "--python-version",
                "3.11",
                "--platform",
                "manylinux_2_28_x86_64",
                "-d",
                downloads.to_str().context("non-UTF-8 path")?,
                &format!("{}=={}", wheel.package, wheel.version),
            ],
        )?;
    }
    let digest = sha256_of(&wheel_path)?;
    if digest != wheel.sha256 {
        fs::remove_file(&wheel_path)?;
        bail!(
            "{} has checksum {digest}, expected {}; deleted it, run again",
            wheel.file,
            wheel.sha256
        );
    }
    if lib.exists() {
        fs::remove_dir_all(&lib)?;
    }
    fs::create_dir_all(&lib)?;
    let mut archive = zip::ZipArchive::new(fs::File::open(&wheel_path)?)?;
    let mut unpacked = Vec::new();
    for index in 0..archive.len() {
        let mut entry = archive.by_index(index)?;
        let name = entry.name().to_string();
        let Some(file_name) = name.strip_prefix("onnxruntime/capi/") else {
            continue;
        };
        if !file_name.starts_with("libonnxruntime") || file_name.contains('/') {
            continue;
        }
        let mut out = fs::File::create(lib.join(file_name))?;
        std::io::copy(&mut entry, &mut out)?;
        unpacked.push(file_name.to_string());
    }
    if !unpacked.iter().any(|f| f.starts_with("libonnxruntime.so")) {
        bail!("{} holds no libonnxruntime.so", wheel.file);
    }
    fs::write(&marker, digest)?;
    println!(
        "ONNX Runtime {} in {}: {}",
        wheel.version,
        lib.display(),
        unpacked.join(", ")
    );
    Ok(lib)
}

/// Builds the debug plugin with allocation checks in `process()` and bundles
/// it into `TEST_BUNDLE_HOME/bundled`. nice-plug's bundler reads the build
/// from `<target>/debug` and writes `<target>/bundled`; a `debug` link in the
/// test folder lets it read the real build and write beside it.
fn bundle_for_tests() -> Result<()> {
    let features = ["--features", "assert_process_allocs"].map(String::from);
    nice_plug_xtask::build(&[PACKAGE.to_string()], &features)?;
    let home = Path::new(TEST_BUNDLE_HOME);
    fs::create_dir_all(home)?;
    let debug = home.join("debug");
    if fs::symlink_metadata(&debug).is_err() {
        std::os::unix::fs::symlink(fs::canonicalize("target/debug")?, &debug)
            .context("cannot link the debug build into the test bundle folder")?;
    }
    nice_plug_xtask::bundle(home, PACKAGE, &features, false)?;
    add_resources(&home.join("bundled"))
}

/// Copies the ONNX Runtime library and the models into the bundles in
/// `bundled`: into `Contents/Resources` of the VST3 bundle, and into a
/// `.resources` folder beside the single-file CLAP (Linux and Windows CLAPs
/// are one file).
fn add_resources(bundled: &Path) -> Result<()> {
    let targets = [
        bundled
            .join(format!("{BUNDLE_NAME}.vst3"))
            .join("Contents")
            .join("Resources"),
        bundled.join(format!("{BUNDLE_NAME}.resources")),
    ];
    for resources in &targets {
        if resources.exists() {
            fs::remove_dir_all(resources)?;
        }
        copy_folder(&Path::new(ORT_FOLDER).join("lib"), &resources.join("lib"))?;
        record_checksums(&resources.join("lib"))?;
        for model in MODELS {
            let source = Path::new("models").join(model);
            if !source.join("manifest.json").is_file() {
                println!(
                    "warning: {} has no trained model yet; the bundle plays without it",
                    source.display()
                );
                continue;
            }
            copy_folder(&source, &resources.join("models").join(model))?;
        }
        println!("resources: {}", resources.display());
    }
    Ok(())
}

/// Writes `checksums.sha256` beside the libraries: `<sha256> <size> <name>`
/// a line. The plugin refuses a library that does not match (a damaged copy
/// would crash the host as it loads).
fn record_checksums(lib: &Path) -> Result<()> {
    let mut lines = String::new();
    for entry in fs::read_dir(lib)? {
        let path = entry?.path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        if !path.is_file() || name.starts_with('.') || name == "checksums.sha256" {
            continue;
        }
        let size = fs::metadata(&path)?.len();
        lines.push_str(&format!("{} {size} {name}\n", sha256_of(&path)?));
    }
    fs::write(lib.join("checksums.sha256"), lines)?;
    Ok(())
}

fn copy_folder(from: &Path, to: &Path) -> Result<()> {
    fs::create_dir_all(to)?;
    for entry in fs::read_dir(from).with_context(|| format!("cannot read {}", from.display()))? {
        let entry = entry?;
        let name = entry.file_name();
        if name.to_string_lossy().starts_with('.') || !entry.file_type()?.is_file() {
            continue;
        }
        fs::copy(entry.path(), to.join(&name))?;
    }
    Ok(())
}

fn render_demo() -> Result<()> {
    let models = Path::new("target/bundled")
        .join(format!("{BUNDLE_NAME}.resources"))
        .join("models");
    run(
        "target/release/latent-trio",
        &[
            "--models",
            models.to_str().context("non-UTF-8 path")?,
            "render",
            "--bars",
            "8",
            "--seed",
            "1",
            "--tempo",
            "110",
            "--out",
            "target/demo.mid",
        ],
    )
}
