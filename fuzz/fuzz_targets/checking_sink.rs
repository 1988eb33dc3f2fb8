//! A message sink for the fuzz targets that checks what it is given: every
//! message is one line of valid UTF-8.

use cefwire::records::MessageSink;

pub struct CheckingSink(pub Vec<u8>);

impl MessageSink for CheckingSink {
    fn buffer(&mut self) -> &mut Vec<u8> {
        &mut self.0
    }

    fn commit(&mut self, start: usize) -> std::io::Result<()> {
        let message = &self.0[start..];
        assert!(!message.contains(&b'\n') && !message.contains(&b'\r'), "a message spans lines");
        assert!(std::str::from_utf8(message).is_ok(), "a message is not UTF-8");
        self.0.clear();
        Ok(())
    }
}
