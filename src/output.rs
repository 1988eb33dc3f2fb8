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

/// A block of at least this much is written without going through the
/// buffer when the buffer is empty (the parallel loop's blocks are about a
/// chunk's size: written straight from the worker's block).
const WRITE_DIRECTLY_AT: usize = 64 * 1024;

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
        // A large block with nothing buffered before it goes out as it is:
        // copying it into the buffer first would only cost a pass.
        if self.buffer.is_empty() && lines.len() >= WRITE_DIRECTLY_AT {
            self.out.write_all(lines).map_err(|e| named(&self.name, e))?;
            self.bytes_written += lines.len() as u64;
            return Ok(());
        }
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

/// A writer tests hand to a [`LineWriter`] or a [`crate::rejects::RejectLog`]
/// and read back afterwards.
#[cfg(test)]
#[derive(Clone, Default)]
pub(crate) struct SharedBuffer(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

#[cfg(test)]
impl SharedBuffer {
    /// Everything written so far.
    pub(crate) fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }
}

#[cfg(test)]
impl Write for SharedBuffer {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(sink: &mut dyn MessageSink, text: &str) {
        let start = sink.buffer().len();
        sink.buffer().extend_from_slice(text.as_bytes());
        sink.commit(start).unwrap();
    }

    #[test]
    fn large_blocks_written_directly_keep_their_place_among_buffered_lines() {
        let out = SharedBuffer::default();
        let mut writer = LineWriter::new("out".into(), Box::new(out.clone()));
        let mut large = MessageBlock::default();
        for n in 0..WRITE_DIRECTLY_AT / 8 {
            message(&mut large, &format!("big {n:05}"));
        }
        let mut small = MessageBlock::default();
        message(&mut small, "small block");
        // Nothing buffered: the large block goes out directly; then one
        // line buffered before the next large block, which must wait.
        writer.commit_block(&large).unwrap();
        message(&mut writer, "one line");
        writer.commit_block(&large).unwrap();
        writer.commit_block(&small).unwrap();
        let expected = [large.as_lines(), b"one line\n", large.as_lines(), small.as_lines()].concat();
        assert_eq!(writer.bytes_written(), expected.len() as u64);
        writer.finish().unwrap();
        assert!(*out.0.lock().unwrap() == expected, "the lines in the order they were committed");
    }
}
