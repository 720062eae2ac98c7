//! A tiny big-endian ISO-BMFF box builder.
//!
//! A box is opened by writing a 32-bit size placeholder and its four-character
//! type; the closure writes the body; the size is then patched in. Nesting is
//! enforced by the closures, so a box can never be closed twice or out of order.

use super::Mp4Error;

/// A four-character code (box type or brand).
pub(crate) type FourCc = [u8; 4];

#[derive(Debug, Default)]
pub(crate) struct BoxWriter {
    buf: Vec<u8>,
}

impl BoxWriter {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    pub(crate) fn into_bytes(self) -> Vec<u8> {
        self.buf
    }

    pub(crate) fn len(&self) -> usize {
        self.buf.len()
    }

    pub(crate) fn u8(&mut self, v: u8) {
        self.buf.push(v);
    }

    pub(crate) fn u16(&mut self, v: u16) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }

    pub(crate) fn i16(&mut self, v: i16) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }

    pub(crate) fn u24(&mut self, v: u32) {
        debug_assert!(v <= 0x00FF_FFFF, "u24 overflow");
        self.buf.extend_from_slice(&v.to_be_bytes()[1..]);
    }

    pub(crate) fn u32(&mut self, v: u32) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }

    pub(crate) fn i32(&mut self, v: i32) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }

    pub(crate) fn u64(&mut self, v: u64) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }

    pub(crate) fn i64(&mut self, v: i64) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }

    pub(crate) fn bytes(&mut self, v: &[u8]) {
        self.buf.extend_from_slice(v);
    }

    pub(crate) fn zeros(&mut self, n: usize) {
        self.buf.resize(self.buf.len() + n, 0);
    }

    /// Overwrites four already-written bytes at `pos` (for fields only known later).
    pub(crate) fn patch_i32(&mut self, pos: usize, v: i32) {
        self.buf[pos..pos + 4].copy_from_slice(&v.to_be_bytes());
    }

    /// Writes a plain box: `size(32) type(32) body`.
    pub(crate) fn plain(
        &mut self,
        fourcc: FourCc,
        body: impl FnOnce(&mut Self) -> Result<(), Mp4Error>,
    ) -> Result<(), Mp4Error> {
        let start = self.buf.len();
        self.u32(0); // size placeholder, patched below
        self.bytes(&fourcc);
        body(self)?;
        let size = u32::try_from(self.buf.len() - start).map_err(|_| Mp4Error::TooLarge {
            what: "box larger than 4 GiB",
        })?;
        self.buf[start..start + 4].copy_from_slice(&size.to_be_bytes());
        Ok(())
    }

    /// Writes a FullBox: a plain box whose body starts with `version(8) flags(24)`.
    pub(crate) fn full(
        &mut self,
        fourcc: FourCc,
        version: u8,
        flags: u32,
        body: impl FnOnce(&mut Self) -> Result<(), Mp4Error>,
    ) -> Result<(), Mp4Error> {
        self.plain(fourcc, |w| {
            w.u8(version);
            w.u24(flags);
            body(w)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_sizes_are_patched() {
        let mut w = BoxWriter::new();
        w.plain(*b"outr", |w| {
            w.full(*b"innr", 1, 0x00_0203, |w| {
                w.u16(0xBEEF);
                Ok(())
            })
        })
        .unwrap();
        let b = w.into_bytes();
        assert_eq!(
            b,
            [
                0, 0, 0, 22, b'o', b'u', b't', b'r', // outer: 8 + 14
                0, 0, 0, 14, b'i', b'n', b'n', b'r', 1, 0, 2, 3, 0xBE, 0xEF,
            ]
        );
    }

    #[test]
    fn integer_encodings_are_big_endian() {
        let mut w = BoxWriter::new();
        w.u24(0x0A0B0C);
        w.i16(-2);
        w.i32(-1);
        w.i64(-1);
        w.u64(0x0102_0304_0506_0708);
        w.zeros(2);
        assert_eq!(
            w.into_bytes(),
            [
                0x0A, 0x0B, 0x0C, 0xFF, 0xFE, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
                0xFF, 0xFF, 0xFF, 1, 2, 3, 4, 5, 6, 7, 8, 0, 0
            ]
        );
    }
}
