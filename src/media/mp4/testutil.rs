//! Test-only box reader: splits a buffer into (type, body) pairs.

/// Top-level boxes of `buf` as (type, body). Panics on malformed sizes, which is what a
/// test wants.
pub(crate) fn children(buf: &[u8]) -> Vec<([u8; 4], &[u8])> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < buf.len() {
        let size32 = u32::from_be_bytes(buf[pos..pos + 4].try_into().unwrap());
        let fourcc: [u8; 4] = buf[pos + 4..pos + 8].try_into().unwrap();
        let (header, size) = if size32 == 1 {
            let large = u64::from_be_bytes(buf[pos + 8..pos + 16].try_into().unwrap());
            (16, usize::try_from(large).unwrap())
        } else {
            (8, size32 as usize)
        };
        assert!(size >= header, "box {fourcc:?} too small");
        assert!(
            pos + size <= buf.len(),
            "box {fourcc:?} overruns its parent"
        );
        out.push((fourcc, &buf[pos + header..pos + size]));
        pos += size;
    }
    out
}

/// Body of the first top-level box of type `fourcc`.
pub(crate) fn find(buf: &[u8], fourcc: [u8; 4]) -> Option<&[u8]> {
    children(buf)
        .into_iter()
        .find(|(t, _)| *t == fourcc)
        .map(|(_, b)| b)
}

/// Body of the box reached by descending through `path` (container boxes only).
pub(crate) fn find_path<'a>(buf: &'a [u8], path: &[[u8; 4]]) -> Option<&'a [u8]> {
    let mut cur = buf;
    for (i, fourcc) in path.iter().enumerate() {
        cur = find(cur, *fourcc)?;
        // `dref` is a FullBox with an entry count before its children.
        if *fourcc == *b"dref" && i + 1 < path.len() {
            cur = &cur[8..];
        }
    }
    Some(cur)
}
