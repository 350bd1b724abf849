//! Path tables (ECMA-119 9.4, 6.9): one record per directory, ordered by level, then by the
//! parent's number, then by identifier. The same records are written twice, with the extent
//! location and parent number little-endian (type L) and big-endian (type M).

/// One path table record's contents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathTableRecord<'a> {
    /// Directory identifier (`[0]` for the root).
    pub identifier: &'a [u8],
    /// Extent location of the directory.
    pub extent_lba: u32,
    /// Number of the parent directory (1-based; the root is its own parent, 1).
    pub parent: u16,
}

/// Encoded length of a record with an identifier of `id_len` bytes.
pub fn record_len(id_len: usize) -> usize {
    8 + id_len + id_len % 2
}

impl PathTableRecord<'_> {
    /// Appends the record to `out`, big-endian numbers when `msb` (type M).
    pub fn encode_into(&self, out: &mut Vec<u8>, msb: bool) {
        out.push(self.identifier.len().min(255) as u8);
        out.push(0);
        if msb {
            out.extend_from_slice(&self.extent_lba.to_be_bytes());
            out.extend_from_slice(&self.parent.to_be_bytes());
        } else {
            out.extend_from_slice(&self.extent_lba.to_le_bytes());
            out.extend_from_slice(&self.parent.to_le_bytes());
        }
        out.extend_from_slice(self.identifier);
        if self.identifier.len() % 2 == 1 {
            out.push(0);
        }
    }
}

/// A decoded path table record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodedPathRecord {
    /// Directory identifier.
    pub identifier: Vec<u8>,
    /// Extent location.
    pub extent_lba: u32,
    /// Parent directory number.
    pub parent: u16,
}

/// Decodes a whole path table of `size` bytes; `None` when a record runs past the end.
pub fn decode(table: &[u8], msb: bool) -> Option<Vec<DecodedPathRecord>> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < table.len() {
        let id_len = usize::from(table[i]);
        if id_len == 0 {
            return None;
        }
        let end = i.checked_add(record_len(id_len))?;
        if end > table.len() {
            return None;
        }
        let r = &table[i..end];
        let lba_bytes: [u8; 4] = r[2..6].try_into().ok()?;
        let parent_bytes: [u8; 2] = r[6..8].try_into().ok()?;
        let (extent_lba, parent) = if msb {
            (u32::from_be_bytes(lba_bytes), u16::from_be_bytes(parent_bytes))
        } else {
            (u32::from_le_bytes(lba_bytes), u16::from_le_bytes(parent_bytes))
        };
        out.push(DecodedPathRecord { identifier: r[8..8 + id_len].to_vec(), extent_lba, parent });
        i = end;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_both_orders() {
        for msb in [false, true] {
            let mut t = Vec::new();
            PathTableRecord { identifier: &[0], extent_lba: 20, parent: 1 }.encode_into(&mut t, msb);
            PathTableRecord { identifier: b"BOOT", extent_lba: 21, parent: 1 }.encode_into(&mut t, msb);
            assert_eq!(t.len(), 10 + 12);
            let d = decode(&t, msb).unwrap();
            assert_eq!(d[1].identifier, b"BOOT");
            assert_eq!(d[1].extent_lba, 21);
        }
    }
}
