//! WORKER THREAD ONLY: checks an ONNX Runtime library file before it is
//! loaded. Loading a damaged shared library (an interrupted copy, a bad disk)
//! does not fail cleanly: the dynamic loader maps it, and the first touch of
//! a page past the end of the file kills the whole host with SIGBUS. So the
//! file is checked first:
//!
//! - a library inside our bundle against the size and SHA-256 recorded when
//!   the bundle was made (`CHECKSUMS_FILE` beside it);
//! - any library (a user's own too) for an intact ELF file: every segment the
//!   loader would map lies inside the file.

use std::path::Path;

use sha2::{Digest, Sha256};

/// The file beside the bundled library that records `<sha256> <size> <name>`
/// of each library file, written by `cargo xtask` when it bundles.
pub const CHECKSUMS_FILE: &str = "checksums.sha256";

/// Why a library file must not be loaded, in words for the musician.
pub fn problem(library: &Path) -> Option<String> {
    let bytes = match std::fs::read(library) {
        Ok(bytes) => bytes,
        Err(error) => return Some(format!("it cannot be read ({error})")),
    };
    if let Some(problem) = recorded_checksum_problem(library, &bytes) {
        return Some(problem);
    }
    if cfg!(target_os = "linux") {
        return elf_problem(&bytes);
    }
    None
}

/// Compares the file with the size and checksum the bundle recorded for it.
fn recorded_checksum_problem(library: &Path, bytes: &[u8]) -> Option<String> {
    let name = library.file_name()?.to_str()?;
    let checksums = std::fs::read_to_string(library.with_file_name(CHECKSUMS_FILE)).ok()?;
    let (sha256, size) = checksums.lines().find_map(|line| {
        let mut fields = line.split_whitespace();
        let (sha256, size, file) = (fields.next()?, fields.next()?, fields.next()?);
        (file == name).then(|| (sha256.to_string(), size.parse::<u64>().ok()))
    })?;
    if size.is_some_and(|size| size != bytes.len() as u64) {
        return Some(format!(
            "it is {} bytes, but the bundle was made with {} bytes: the file is damaged or was copied incompletely; reinstall the plugin",
            bytes.len(),
            size.unwrap_or_default()
        ));
    }
    let digest = Sha256::digest(bytes);
    let hex: String = digest.iter().map(|byte| format!("{byte:02x}")).collect();
    (hex != sha256).then(|| {
        "its contents differ from the bundle's (checksum mismatch): the file is damaged; reinstall the plugin".to_string()
    })
}

/// Checks a 64-bit little-endian ELF file: its header, and that every
/// program segment and the section table lie inside the file.
fn elf_problem(bytes: &[u8]) -> Option<String> {
    let damaged = |what: &str| {
        Some(format!(
            "it is not a complete shared library ({what}): the file is damaged, truncated or not ONNX Runtime"
        ))
    };
    if bytes.len() < 64 || &bytes[..4] != b"\x7fELF" {
        return damaged("no ELF header");
    }
    if bytes[4] != 2 || bytes[5] != 1 {
        return damaged("not a 64-bit little-endian library");
    }
    let u16_at = |at: usize| u64::from(u16::from_le_bytes([bytes[at], bytes[at + 1]]));
    let u64_at = |at: usize| -> Option<u64> {
        Some(u64::from_le_bytes(bytes.get(at..at + 8)?.try_into().ok()?))
    };
    let length = bytes.len() as u64;
    let (program_headers, program_header_size, program_header_count) =
        (u64_at(0x20)?, u16_at(0x36), u16_at(0x38));
    let (section_headers, section_header_size, section_header_count) =
        (u64_at(0x28)?, u16_at(0x3A), u16_at(0x3C));
    let table_end = |start: u64, size: u64, count: u64| start.checked_add(size * count);
    if table_end(program_headers, program_header_size, program_header_count)
        .is_none_or(|end| end > length)
    {
        return damaged("its program headers are cut off");
    }
    if section_header_count > 0
        && table_end(section_headers, section_header_size, section_header_count)
            .is_none_or(|end| end > length)
    {
        return damaged("it ends before its section table");
    }
    for index in 0..program_header_count {
        let header = (program_headers + index * program_header_size) as usize;
        let (offset, file_size) = (u64_at(header + 0x08)?, u64_at(header + 0x20)?);
        if offset.checked_add(file_size).is_none_or(|end| end > length) {
            return damaged("a segment lies past its end");
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;

    /// `<sha256> <size> <file name>`, as the bundler writes it.
    fn checksum_line(path: &Path) -> std::io::Result<String> {
        let mut file = std::fs::File::open(path)?;
        let mut hasher = Sha256::new();
        let mut buffer = vec![0; 1 << 20];
        let mut size = 0u64;
        loop {
            let read = file.read(&mut buffer)?;
            if read == 0 {
                break;
            }
            size += read as u64;
            hasher.update(&buffer[..read]);
        }
        let hex: String = hasher
            .finalize()
            .iter()
            .map(|byte| format!("{byte:02x}"))
            .collect();
        let name = path
            .file_name()
            .map(|name| name.to_string_lossy().into_owned())
            .unwrap_or_default();
        Ok(format!("{hex} {size} {name}"))
    }

    /// The real library from the development checkout, if fetched.
    fn real_library() -> Option<std::path::PathBuf> {
        let lib = Path::new(env!("CARGO_MANIFEST_DIR")).join("../ort/lib");
        std::fs::read_dir(lib)
            .ok()?
            .flatten()
            .map(|entry| entry.path())
            .find(|path| {
                path.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("libonnxruntime.so."))
            })
    }

    #[test]
    fn a_truncated_library_is_refused_before_it_can_crash_the_host() {
        let Some(library) = real_library() else {
            panic!("run `cargo xtask fetch-onnxruntime` first");
        };
        let bytes = std::fs::read(&library).unwrap();
        assert_eq!(elf_problem(&bytes), None, "the real library passes");
        for keep in [bytes.len() / 2, bytes.len() - 4096, 100, 10] {
            let problem = elf_problem(&bytes[..keep]);
            assert!(
                problem.as_deref().is_some_and(|p| p.contains("damaged")),
                "kept {keep} bytes: {problem:?}"
            );
        }
    }

    #[test]
    fn a_bundled_library_must_match_its_recorded_checksum() {
        let dir = tempfile::tempdir().unwrap();
        let library = dir.path().join("libonnxruntime.so.1.28.0");
        std::fs::write(&library, b"\x7fELF pretend").unwrap();
        std::fs::write(
            dir.path().join(CHECKSUMS_FILE),
            checksum_line(&library).unwrap(),
        )
        .unwrap();
        let bytes = std::fs::read(&library).unwrap();
        assert_eq!(recorded_checksum_problem(&library, &bytes), None);
        std::fs::write(&library, b"\x7fELF pretenD").unwrap();
        let changed = std::fs::read(&library).unwrap();
        assert!(
            recorded_checksum_problem(&library, &changed)
                .is_some_and(|p| p.contains("checksum mismatch"))
        );
        assert!(
            recorded_checksum_problem(&library, &changed[..5])
                .is_some_and(|p| p.contains("copied incompletely"))
        );
    }
}
