//! Finding and loading the ONNX Runtime library, and choosing where the
//! models run (execution providers).
//!
//! The library is loaded at run time (`ort`'s `load-dynamic`), from inside the
//! plugin's own bundle first, then from `LATENT_TRIO_ORT_LIB`. When neither
//! works the plugin stays loaded and silent and says why; no `ort` call is
//! ever made before the library has loaded, because `ort` would otherwise try
//! a default path on its own.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use ort::environment::Environment;
use ort::ep::{self, ExecutionProvider};
use ort::session::Session;
use ort::session::builder::{GraphOptimizationLevel, SessionBuilder};

use super::RuntimeError;

/// Environment variable naming an ONNX Runtime library file to use when the
/// bundle carries none.
pub const ORT_LIBRARY_ENV: &str = "LATENT_TRIO_ORT_LIB";
/// Environment variable naming a models folder that replaces the bundled one.
pub const MODELS_ENV: &str = "LATENT_TRIO_MODELS";
/// Whether `name` is the main ONNX Runtime library on this platform (not one
/// of its provider plug-ins): `libonnxruntime.so.<version>`,
/// `libonnxruntime.<version>.dylib` or `onnxruntime.dll`.
fn is_ort_library(name: &str) -> bool {
    if cfg!(target_os = "windows") {
        name.eq_ignore_ascii_case("onnxruntime.dll")
    } else if cfg!(target_os = "macos") {
        name.starts_with("libonnxruntime.") && name.ends_with(".dylib")
    } else {
        name.starts_with("libonnxruntime.so")
    }
}

/// The ONNX Runtime library in `folder`, if there is one.
fn library_in(folder: &Path) -> Option<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(folder)
        .ok()?
        .flatten()
        .map(|entry| entry.path())
        .filter(|path| {
            path.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(is_ort_library)
        })
        .collect();
    // Prefer the fully versioned file over a bare `libonnxruntime.so` link.
    found.sort_by_key(|path| std::cmp::Reverse(path.as_os_str().len()));
    found.into_iter().next()
}

/// Where the models run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provider {
    /// ONNX Runtime's CPU provider; always there.
    Cpu,
    /// NVIDIA GPUs.
    Cuda,
    /// Any DirectX 12 GPU on Windows.
    DirectMl,
}

impl Provider {
    /// Name shown to the musician.
    pub const fn label(self) -> &'static str {
        match self {
            Provider::Cpu => "CPU",
            Provider::Cuda => "CUDA",
            Provider::DirectMl => "DirectML",
        }
    }
}

/// What the musician asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ProviderChoice {
    /// The fastest that works here: CUDA, then DirectML, then CPU.
    #[default]
    Auto,
    /// CPU only.
    Cpu,
    /// CUDA, falling back to the CPU with a note when it is unavailable.
    Cuda,
    /// DirectML, falling back to the CPU with a note when it is unavailable.
    DirectMl,
}

impl ProviderChoice {
    /// The providers to try, in order, before the CPU.
    fn accelerators(self) -> &'static [Provider] {
        match self {
            ProviderChoice::Auto => &[Provider::Cuda, Provider::DirectMl],
            ProviderChoice::Cpu => &[],
            ProviderChoice::Cuda => &[Provider::Cuda],
            ProviderChoice::DirectMl => &[Provider::DirectMl],
        }
    }
}

/// The loaded library and its process-wide environment (ONNX Runtime allows
/// one per process, shared by every plugin instance).
pub struct Runtime {
    environment: Environment,
    /// The library file that was loaded.
    pub library: PathBuf,
}

static RUNTIME: OnceLock<Runtime> = OnceLock::new();
static LOADING: Mutex<()> = Mutex::new(());

/// Folders that may hold the plugin's resources (`lib/`, `models/`), nearest
/// first: `Contents/Resources` of a VST3 bundle, `<name>.resources` beside a
/// single-file CLAP, and the repository's own folders in a development build.
pub fn resource_folders() -> Vec<PathBuf> {
    let mut folders = Vec::new();
    if let Some(binary) = own_binary_path() {
        if let (Some(dir), Some(stem)) = (binary.parent(), binary.file_stem()) {
            let mut sibling = stem.to_os_string();
            sibling.push(".resources");
            folders.push(dir.join(sibling));
        }
        for ancestor in binary.ancestors().skip(1).take(3) {
            folders.push(ancestor.join("Resources"));
        }
    }
    // Development builds and the CLI run from the repository.
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let repository = manifest_dir.parent().unwrap_or(manifest_dir).to_path_buf();
    folders.push(repository.clone());
    folders.push(repository.join("ort"));
    folders
}

/// Candidate library files, in the order they are tried: the bundle's own
/// copy, then `LATENT_TRIO_ORT_LIB`, or else a development checkout's `ort/lib`.
/// Folders without a library are listed as such, so that the error message
/// can say where it looked.
pub fn library_candidates() -> Vec<PathBuf> {
    let folders = resource_folders();
    let (bundle, development) = folders.split_at(folders.len() - 2);
    let in_folders = |folders: &[PathBuf]| -> Vec<PathBuf> {
        folders
            .iter()
            .map(|folder| folder.join("lib"))
            .map(|lib| library_in(&lib).unwrap_or(lib))
            .collect()
    };
    let mut candidates = in_folders(bundle);
    match std::env::var_os(ORT_LIBRARY_ENV) {
        // A library the user named replaces the development fallback.
        Some(path) => candidates.push(PathBuf::from(path)),
        None => candidates.extend(in_folders(development)),
    }
    candidates
}

/// Loads ONNX Runtime once per process (worker threads only: it reads files).
pub fn runtime() -> Result<&'static Runtime, RuntimeError> {
    if let Some(runtime) = RUNTIME.get() {
        return Ok(runtime);
    }
    let _guard = LOADING
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(runtime) = RUNTIME.get() {
        return Ok(runtime);
    }
    let candidates = library_candidates();
    let Some(library) = candidates.iter().find(|path| path.is_file()) else {
        return Err(RuntimeError::LibraryNotFound {
            searched: candidates,
        });
    };
    let library = library.canonicalize().unwrap_or_else(|_| library.clone());
    // A damaged library would crash the host as it loads: check it first.
    if let Some(problem) = super::library_check::problem(&library) {
        return Err(RuntimeError::LibraryUnusable {
            path: library,
            message: problem,
        });
    }
    // ONNX Runtime's environment is process-wide and starts a helper thread
    // that lives as long as the process. A thread inherits its creator's
    // name, so the environment is built on a thread of its own: the helper
    // then shows as RUNTIME_THREAD_NAME, not as some instance's worker.
    let environment = std::thread::Builder::new()
        .name(RUNTIME_THREAD_NAME.into())
        .spawn({
            let library = library.clone();
            move || load_environment(&library)
        })
        .map_err(|error| RuntimeError::LibraryUnusable {
            path: library.clone(),
            message: format!("no thread to load it on: {error}"),
        })?
        .join()
        .map_err(|_| RuntimeError::LibraryUnusable {
            path: library.clone(),
            message: "loading it crashed".into(),
        })??;
    Ok(RUNTIME.get_or_init(|| Runtime {
        environment,
        library,
    }))
}

/// The name ONNX Runtime's process-wide helper thread carries.
pub const RUNTIME_THREAD_NAME: &str = "trio-onnxrt";

fn load_environment(library: &Path) -> Result<Environment, RuntimeError> {
    let unusable = |error: &dyn std::fmt::Display| RuntimeError::LibraryUnusable {
        path: library.to_path_buf(),
        message: error.to_string(),
    };
    ort::init_from(library)
        .map_err(|error| unusable(&error))?
        .with_name("latent-trio")
        .with_telemetry(false)
        .build()
        .map_err(|error| unusable(&error))
}

impl Runtime {
    /// The library's version, e.g. `1.32.0`, from its build information.
    pub fn version(&self) -> String {
        let info = ort::info();
        info.split([',', ' '])
            .find_map(|field| field.strip_prefix("git-branch=rel-"))
            .map(str::to_string)
            .unwrap_or_else(|| {
                // Release wheels leave the branch out; the file name
                // (`libonnxruntime.so.1.32.0`) carries the version.
                let name = self
                    .library
                    .file_name()
                    .map(|name| name.to_string_lossy().into_owned())
                    .unwrap_or_default();
                match name.find(|c: char| c.is_ascii_digit()) {
                    Some(start) => name[start..].trim_end_matches(".dylib").to_string(),
                    None => name,
                }
            })
    }

    /// Opens one ONNX graph on the first provider of `choice` that works,
    /// with the CPU as the last resort. Returns the session, the provider it
    /// runs on, and why a requested accelerator was not used (if it was not).
    pub fn open(
        &self,
        graph: &Path,
        choice: ProviderChoice,
    ) -> Result<(Session, Provider, Option<String>), ort::Error> {
        let mut refused = Vec::new();
        for &provider in choice.accelerators() {
            match self.open_on(graph, provider) {
                Ok(session) => return Ok((session, provider, None)),
                Err(error) if provider == Provider::Cuda && cfg!(feature = "cuda") => refused.push(format!(
                    "CUDA: {error} (this CUDA build needs NVIDIA's CUDA 12 and cuDNN 9 libraries)"
                )),
                Err(error) => refused.push(format!("{}: {error}", provider.label())),
            }
        }
        let session = self.open_on(graph, Provider::Cpu)?;
        let note = (choice != ProviderChoice::Auto && choice != ProviderChoice::Cpu)
            .then(|| format!("{} unavailable, running on the CPU", refused.join("; ")));
        Ok((session, Provider::Cpu, note))
    }

    fn open_on(&self, graph: &Path, provider: Provider) -> Result<Session, ort::Error> {
        // One thread: a decode is a chain of tiny steps, and the host's audio
        // threads need the other cores.
        let builder = Session::builder(&self.environment)?
            .with_optimization_level(GraphOptimizationLevel::Level3)?
            .with_intra_threads(1)?
            .with_inter_threads(1)?;
        let mut builder = with_provider(builder, provider)?;
        builder.commit_from_file(graph)
    }
}

fn with_provider(
    builder: SessionBuilder,
    provider: Provider,
) -> Result<SessionBuilder, ort::Error> {
    let dispatch = match provider {
        Provider::Cpu => return Ok(builder),
        Provider::Cuda => {
            if !ep::CUDA::is_available()? {
                return Err(ort::Error::new(
                    "this ONNX Runtime library was built without CUDA",
                ));
            }
            ep::CUDA::default().build()
        }
        Provider::DirectMl => {
            if !ep::DirectML::is_available()? {
                return Err(ort::Error::new(
                    "this ONNX Runtime library was built without DirectML",
                ));
            }
            ep::DirectML::default().build()
        }
    };
    builder
        .with_execution_providers([dispatch.error_on_failure()])
        .map_err(ort::Error::<()>::from)
}

/// The file the plugin's code was loaded from (the `.clap`, the `.so` inside a
/// `.vst3`, or the CLI executable).
fn own_binary_path() -> Option<PathBuf> {
    #[cfg(unix)]
    {
        let mut info: libc::Dl_info = unsafe { std::mem::zeroed() };
        let address = own_binary_path as *const libc::c_void;
        // SAFETY: dladdr only reads the address and fills `info`.
        if unsafe { libc::dladdr(address, &mut info) } != 0 && !info.dli_fname.is_null() {
            // SAFETY: dladdr returned a NUL-terminated path.
            let name = unsafe { std::ffi::CStr::from_ptr(info.dli_fname) };
            use std::os::unix::ffi::OsStrExt;
            let path = PathBuf::from(std::ffi::OsStr::from_bytes(name.to_bytes()));
            return path.canonicalize().ok().or(Some(path));
        }
        None
    }
    #[cfg(not(unix))]
    {
        std::env::current_exe().ok()
    }
}
