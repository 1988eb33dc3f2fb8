//! Converted lines to a file or stdout: LF-terminated, written in large
//! blocks from one reused buffer.

use crate::records::{MessageBlock, MessageSink};
use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// Where `convert` writes lines.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OutputPath {
    Stdout,
    File(PathBuf),
}

impl OutputPath {
    pub fn display_name(&self) -> String {
        match self {
            Self::Stdout => "<stdout>".to_owned(),
            Self::File(p) => p.display().to_string(),
        }
    }
}

/// Flush once this much is buffered.
const FLUSH_AT: usize = 1 << 20;

/// A [`MessageSink`] that writes one message per line.
pub struct LineWriter {
    name: String,
    out: Box<dyn Write + Send>,
    buffer: Vec<u8>,
    bytes_written: u64,
}

impl LineWriter {
    /// Creates (truncates) the output file, or uses stdout.
    pub fn create(path: &OutputPath) -> io::Result<Self> {
        let out: Box<dyn Write + Send> = match path {
            OutputPath::Stdout => Box::new(io::stdout()),
            OutputPath::File(p) => Box::new(File::create(p).map_err(|e| named(&path.display_name(), e))?),
        };
        Ok(Self::new(path.display_name(), out))
    }

    pub fn new(name: String, out: Box<dyn Write + Send>) -> Self {
        Self { name, out, buffer: Vec::with_capacity(FLUSH_AT + 64 * 1024), bytes_written: 0 }
    }

    /// Bytes written out so far (flushed or buffered).
    pub fn bytes_written(&self) -> u64 {
        self.bytes_written + self.buffer.len() as u64
    }

    fn write_buffer(&mut self) -> io::Result<()> {
        if !self.buffer.is_empty() {
            self.out.write_all(&self.buffer).map_err(|e| named(&self.name, e))?;
            self.bytes_written += self.buffer.len() as u64;
            self.buffer.clear();
        }
        Ok(())
    }

    /// Writes everything buffered and flushes the file.
    pub fn finish(&mut self) -> io::Result<()> {
        self.write_buffer()?;
        self.out.flush().map_err(|e| named(&self.name, e))
    }
}

impl MessageSink for LineWriter {
    fn buffer(&mut self) -> &mut Vec<u8> {
        &mut self.buffer
    }

    fn commit(&mut self, _start: usize) -> io::Result<()> {
        self.buffer.push(b'\n');
        if self.buffer.len() >= FLUSH_AT {
            self.write_buffer()?;
        }
        Ok(())
    }

    /// The block is already CEF lines: written as it is, without a copy
    /// when it is large.
    fn commit_block(&mut self, block: &MessageBlock) -> io::Result<()> {
        let lines = block.as_lines();
        if self.buffer.len() + lines.len() < FLUSH_AT {
            self.buffer.extend_from_slice(lines);
            return Ok(());
        }
        self.write_buffer()?;
        self.out.write_all(lines).map_err(|e| named(&self.name, e))?;
        self.bytes_written += lines.len() as u64;
        Ok(())
    }
}

/// Adds the output's name to an error, keeping its kind (a broken pipe
/// must still be recognisable as one).
fn named(name: &str, err: io::Error) -> io::Error {
    io::Error::new(err.kind(), format!("writing {name}: {err}"))
}

/// A writer whose end must be marked (compression trailers, fsync).
pub trait FinishWrite: Write + Send {
    /// Writes what is pending and closes the stream properly.
    fn finish(self: Box<Self>) -> io::Result<()>;
}

impl FinishWrite for io::Stdout {
    fn finish(mut self: Box<Self>) -> io::Result<()> {
        self.flush()
    }
}

impl FinishWrite for io::BufWriter<File> {
    fn finish(mut self: Box<Self>) -> io::Result<()> {
        self.flush()?;
        self.get_ref().sync_all()
    }
}

impl FinishWrite for flate2::write::GzEncoder<io::BufWriter<File>> {
    fn finish(self: Box<Self>) -> io::Result<()> {
        let inner = (*self).finish()?;
        Box::new(inner).finish()
    }
}

impl FinishWrite for zstd::stream::write::Encoder<'static, io::BufWriter<File>> {
    fn finish(self: Box<Self>) -> io::Result<()> {
        let inner = (*self).finish()?;
        Box::new(inner).finish()
    }
}

/// Creates `path` (stdout when `None`), compressed with gzip or zstd when
/// its name ends in `.gz` or `.zst`.
pub fn create_maybe_compressed(path: Option<&Path>) -> io::Result<Box<dyn FinishWrite>> {
    let Some(path) = path else {
        return Ok(Box::new(io::stdout()));
    };
    let file = io::BufWriter::with_capacity(1 << 20, File::create(path)?);
    let name = path.to_string_lossy();
    Ok(if name.ends_with(".gz") {
        Box::new(flate2::write::GzEncoder::new(file, flate2::Compression::fast()))
    } else if name.ends_with(".zst") {
        Box::new(zstd::stream::write::Encoder::new(file, 3)?)
    } else {
        Box::new(file)
    })
}
