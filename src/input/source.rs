//! Opening inputs: files or stdin (`-`), decompressed when their first
//! bytes say gzip or zstd (the name is not trusted).
//!
//! Errors name the input. A truncated or corrupt compressed stream shows
//! up as a read error from the returned reader, which the line reader
//! reports with the input's name. So does a decompression bomb: output
//! more than [`MAX_RATIO`] times the compressed bytes read (past the first
//! [`RATIO_GRACE`]), or a zstd frame asking for a window over
//! 2^[`ZSTD_WINDOW_LOG_MAX`] bytes, ends the input before memory or time
//! run away.

use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// Where records come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum InputPath {
    Stdin,
    File(PathBuf),
}

impl InputPath {
    /// `-` means stdin.
    pub fn parse(arg: &str) -> Self {
        if arg == "-" { Self::Stdin } else { Self::File(PathBuf::from(arg)) }
    }

    /// The name used in messages (`<stdin>` or the path as given).
    pub fn display_name(&self) -> String {
        match self {
            Self::Stdin => "<stdin>".to_owned(),
            Self::File(path) => path.display().to_string(),
        }
    }

    /// Whether writing to `target` would write over this input: the same
    /// path as given, or the same file (device and inode; stdin's is
    /// that of whatever it was redirected from). Asked before an output is
    /// opened for writing, which would truncate it.
    pub fn is_written_by(&self, target: &Path) -> bool {
        if let Self::File(path) = self
            && path == target
        {
            return true;
        }
        let input = match self {
            Self::Stdin => Path::new("/proc/self/fd/0"),
            Self::File(path) => path.as_path(),
        };
        same_file(input, target)
    }
}

/// Both paths exist and name one regular file (device and inode; a
/// terminal or pipe shared by stdin and stdout is not one).
pub fn same_file(a: &Path, b: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (std::fs::metadata(a), std::fs::metadata(b)) {
        (Ok(a), Ok(b)) => a.is_file() && a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

/// The compression detected from magic bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

impl Compression {
    /// Looks at the first bytes of a stream.
    pub fn sniff(head: &[u8]) -> Self {
        if head.starts_with(&[0x1f, 0x8b]) {
            Self::Gzip
        } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Self::Zstd
        } else {
            Self::None
        }
    }
}

/// An opened input: a decompressed byte stream plus what is known of it.
pub struct OpenInput {
    pub name: String,
    pub reader: Box<dyn Read + Send>,
    pub compression: Compression,
    /// Size on disk, when it is a regular file (for progress).
    pub size: Option<u64>,
    /// Bytes read from the file so far, before decompression (for progress).
    pub raw_bytes_read: Arc<AtomicU64>,
}

/// Counts the bytes that pass through it.
struct CountingReader<R> {
    inner: R,
    count: Arc<AtomicU64>,
}

impl<R: Read> Read for CountingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

/// Read buffer for raw (possibly compressed) bytes.
const RAW_BUFFER: usize = 256 * 1024;

/// Decompressed output may be at most this many times the compressed input
/// read so far. Real records compress 10–50×; a bomb, thousands of times.
pub const MAX_RATIO: u64 = 1000;
/// Output below this is never called a bomb (a small, very regular file).
pub const RATIO_GRACE: u64 = 64 << 20;
/// Largest zstd window accepted: 16 MiB (the level 19 default is 8 MiB).
pub const ZSTD_WINDOW_LOG_MAX: u32 = 24;

/// Opens `path` and wraps it in the right decoder.
pub fn open(path: &InputPath) -> io::Result<OpenInput> {
    let (raw, size): (Box<dyn Read + Send>, Option<u64>) = match path {
        InputPath::Stdin => (Box::new(io::stdin()), None),
        InputPath::File(p) => {
            let file = open_file(p)?;
            let size = file.metadata().ok().filter(|m| m.is_file()).map(|m| m.len());
            (Box::new(file), size)
        }
    };
    open_reader(path.display_name(), raw, size)
}

/// Wraps an opened byte stream in the decoder its first bytes ask for.
pub fn open_reader(name: String, raw: Box<dyn Read + Send>, size: Option<u64>) -> io::Result<OpenInput> {
    let raw_bytes_read = Arc::new(AtomicU64::new(0));
    let mut counted = CountingReader { inner: raw, count: Arc::clone(&raw_bytes_read) };
    // A pipe may hand over the magic number in pieces: read until it is
    // whole (or the input ends), then put it back in front.
    let mut head = [0u8; 4];
    let mut got = 0;
    while got < head.len() {
        match counted.read(&mut head[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(err) => return Err(err),
        }
    }
    let compression = Compression::sniff(&head[..got]);
    let buffered = BufReader::with_capacity(RAW_BUFFER, io::Cursor::new(head[..got].to_vec()).chain(counted));
    let reader: Box<dyn Read + Send> = match compression {
        Compression::None => {
            return Ok(OpenInput { name, reader: Box::new(buffered), compression, size, raw_bytes_read });
        }
        Compression::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(buffered)),
        Compression::Zstd => {
            let mut decoder = zstd::stream::read::Decoder::with_buffer(buffered)?;
            decoder.window_log_max(ZSTD_WINDOW_LOG_MAX)?;
            Box::new(decoder)
        }
    };
    let reader = Box::new(BombGuard { inner: reader, compressed: Arc::clone(&raw_bytes_read), decompressed: 0 });
    Ok(OpenInput { name, reader, compression, size, raw_bytes_read })
}

/// Ends a decompressed stream that grows out of all proportion.
struct BombGuard<R> {
    inner: R,
    compressed: Arc<AtomicU64>,
    decompressed: u64,
}

impl<R: Read> Read for BombGuard<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.decompressed += n as u64;
        if self.decompressed > RATIO_GRACE {
            let compressed = self.compressed.load(Ordering::Relaxed).max(1);
            if self.decompressed / compressed > MAX_RATIO {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "decompresses to more than {MAX_RATIO} times its size ({} MiB from {} KiB): refused as a decompression bomb",
                        self.decompressed >> 20,
                        compressed.div_ceil(1024)
                    ),
                ));
            }
        }
        Ok(n)
    }
}

fn open_file(path: &Path) -> io::Result<File> {
    let file = File::open(path)?;
    if file.metadata()?.is_dir() {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "is a directory"));
    }
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn read_all(input: OpenInput) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        let mut reader = input.reader;
        reader.read_to_end(&mut out)?;
        Ok(out)
    }

    fn temp_file(name: &str, bytes: &[u8]) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("cefwire-source-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        std::fs::write(&path, bytes).unwrap();
        path
    }

    #[test]
    fn detects_compression_by_content_not_name() {
        let text = b"{\"a\":1}\n".repeat(1000);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&text).unwrap();
        let gz = gz.finish().unwrap();
        let zst = zstd::encode_all(&text[..], 1).unwrap();
        for (name, bytes, kind) in [
            ("plain.gz", text.clone(), Compression::None),
            ("gzip.txt", gz, Compression::Gzip),
            ("zstd.json", zst, Compression::Zstd),
        ] {
            let input = open(&InputPath::File(temp_file(name, &bytes))).unwrap();
            assert_eq!(input.compression, kind, "{name}");
            assert_eq!(read_all(input).unwrap(), text, "{name}");
        }
    }

    #[test]
    fn truncated_compressed_input_is_a_read_error() {
        let text = b"{\"a\":1}\n".repeat(10_000);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&text).unwrap();
        let gz = gz.finish().unwrap();
        let zst = zstd::encode_all(&text[..], 1).unwrap();
        for (name, bytes) in [("cut.gz", &gz[..gz.len() / 2]), ("cut.zst", &zst[..zst.len() / 2])] {
            let input = open(&InputPath::File(temp_file(name, bytes))).unwrap();
            assert!(read_all(input).is_err(), "{name}");
        }
    }

    #[test]
    fn missing_file_and_directory_are_errors() {
        assert!(open(&InputPath::File("/nonexistent/x.json".into())).is_err());
        assert!(open(&InputPath::File(std::env::temp_dir())).is_err());
    }
}
