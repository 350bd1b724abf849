//! Rock Ridge entries (RRIP 1.12, IEEE P1282 draft, identified as "RRIP_1991A" like xorriso's
//! `-r`), each a typed layout with its encoder and decoder side by side, and the summary a
//! reader folds them into.
//!
//! Entries are SUSP entries ([`super::susp`]): `signature(2) length(1) version(1) data`.
//! isoforge writes, per record: `SP` (root "." only), `PX` (mode, links, uid, gid, serial: 44
//! bytes), `TF` (modify, access, attribute-change times, 7-byte form), `NM` (the real name,
//! split into several entries past 250 bytes), `SL` (symlink target), and `CE` when the rest
//! continues in a continuation area. `ER` lives in the root's continuation area. The reader
//! also decodes `PN`, `CL`, `PL` and `RE` (deep directory relocation, RRIP 4.1.5).
//!
//! Byte positions below are the spec's BP numbers (1-based, from the entry's first byte).

use std::mem::{offset_of, size_of};

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

use super::susp::{BothFields, Ce, Er, FixedEntry, Signature, Sp, SuspEntry, SuspError, SuspHeader};
use crate::endian::Both32;

/// Extension identifier written in "ER".
pub const RRIP_ID: &[u8] = b"RRIP_1991A";
/// Extension descriptor text of RRIP (its standard wording, an interchange constant).
pub const RRIP_DESCRIPTOR: &[u8] =
    b"THE ROCK RIDGE INTERCHANGE PROTOCOL PROVIDES SUPPORT FOR POSIX FILE SYSTEM SEMANTICS";
/// Extension source text of RRIP (its standard wording, an interchange constant).
pub const RRIP_SOURCE: &[u8] = b"PLEASE CONTACT DISC PUBLISHER FOR SPECIFICATION SOURCE.  SEE PUBLISHER IDENTIFIER IN PRIMARY VOLUME DESCRIPTOR FOR CONTACT INFORMATION.";
/// The "ER" entry isoforge writes: RRIP_1991A, version 1 (237 bytes).
pub const RRIP_ER: Er<'static> =
    Er { id: RRIP_ID, descriptor: RRIP_DESCRIPTOR, source: RRIP_SOURCE, version: 1 };
const _: () = assert!(8 + RRIP_ID.len() + RRIP_DESCRIPTOR.len() + RRIP_SOURCE.len() <= 255);

/// The encoded [`RRIP_ER`] entry.
pub fn rrip_er() -> Vec<u8> {
    // Fits one entry: checked at compile time above.
    RRIP_ER.encode().unwrap_or_default()
}

/// Extension identifiers that declare Rock Ridge (RRIP 1.09, 1.10 and 1.12 drafts).
pub const ROCK_RIDGE_IDS: [&[u8]; 3] = [b"RRIP_1991A", b"IEEE_P1282", b"IEEE_1282"];

// ---------------------------------------------------------------------------------------------
// PX

/// Length of the RRIP 1.10 "PX" entry, without the serial number (as xorriso writes it).
pub const PX_LEN_WITHOUT_SERIAL: usize = offset_of!(Px, file_serial_number);

/// "PX": POSIX file attributes (RRIP 1.12 4.1.1, 44 bytes; 36 in RRIP 1.10, without the
/// serial number).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
pub struct Px {
    /// "PX", 44, 1. BP 1–4.
    pub header: SuspHeader,
    /// POSIX file mode (st_mode). BP 5–12.
    pub file_mode: Both32,
    /// POSIX file links (st_nlink). BP 13–20.
    pub file_links: Both32,
    /// POSIX file user ID. BP 21–28.
    pub file_user_id: Both32,
    /// POSIX file group ID. BP 29–36.
    pub file_group_id: Both32,
    /// POSIX file serial number (st_ino). BP 37–44.
    pub file_serial_number: Both32,
}
const _: () = assert!(size_of::<Px>() == 44);

impl FixedEntry for Px {
    const SIGNATURE: &'static [u8; 2] = b"PX";
}

impl Px {
    /// A 44-byte PX.
    pub fn new(mode: u32, links: u32, uid: u32, gid: u32, serial: u32) -> Px {
        Px {
            header: Self::header(),
            file_mode: Both32::new(mode),
            file_links: Both32::new(links),
            file_user_id: Both32::new(uid),
            file_group_id: Both32::new(gid),
            file_serial_number: Both32::new(serial),
        }
    }

    /// Decodes either form: the value and whether it has the serial number (the 44-byte form).
    /// The 36-byte form leaves `file_serial_number` zero.
    pub fn decode_either_form(e: &SuspEntry<'_>) -> Result<(Px, bool), SuspError> {
        if e.bytes().len() >= Self::LEN {
            return Self::decode(e).map(|px| (px, true));
        }
        let mut full = [0u8; size_of::<Px>()];
        let short = e.bytes().get(..PX_LEN_WITHOUT_SERIAL);
        if let Some(short) = short {
            full[..PX_LEN_WITHOUT_SERIAL].copy_from_slice(short);
        }
        match (short, Px::read_from_bytes(&full[..])) {
            (Some(_), Ok(px)) => Ok((px, false)),
            _ => Err(SuspError::TooShort {
                entry: Signature(*Self::SIGNATURE),
                expected: PX_LEN_WITHOUT_SERIAL,
                found: e.bytes().len(),
            }),
        }
    }

    fn both_fields(&self, serial: bool) -> BothFields {
        let mut v = vec![
            ("PX mode", offset_of!(Px, file_mode), self.file_mode),
            ("PX links", offset_of!(Px, file_links), self.file_links),
            ("PX uid", offset_of!(Px, file_user_id), self.file_user_id),
            ("PX gid", offset_of!(Px, file_group_id), self.file_group_id),
        ];
        if serial {
            v.push(("PX serial", offset_of!(Px, file_serial_number), self.file_serial_number));
        }
        v
    }
}

// ---------------------------------------------------------------------------------------------
// PN

/// "PN": device number of a block or character device (RRIP 4.1.2, 20 bytes).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
pub struct Pn {
    /// "PN", 20, 1. BP 1–4.
    pub header: SuspHeader,
    /// High 32 bits of the dev_t. BP 5–12.
    pub dev_t_high: Both32,
    /// Low 32 bits of the dev_t. BP 13–20.
    pub dev_t_low: Both32,
}
const _: () = assert!(size_of::<Pn>() == 20);

impl FixedEntry for Pn {
    const SIGNATURE: &'static [u8; 2] = b"PN";
}

impl Pn {
    /// A PN for device `high:low`.
    pub fn new(high: u32, low: u32) -> Pn {
        Pn { header: Self::header(), dev_t_high: Both32::new(high), dev_t_low: Both32::new(low) }
    }
}

// ---------------------------------------------------------------------------------------------
// CL, PL, RE

/// "CL": the placeholder file of a relocated directory points at it (RRIP 4.1.5.1, 12 bytes).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
pub struct Cl {
    /// "CL", 12, 1. BP 1–4.
    pub header: SuspHeader,
    /// Block of the relocated directory's first extent. BP 5–12.
    pub child_directory_location: Both32,
}
const _: () = assert!(size_of::<Cl>() == 12);

impl FixedEntry for Cl {
    const SIGNATURE: &'static [u8; 2] = b"CL";
}

impl Cl {
    /// A CL pointing at block `lba`.
    pub fn new(lba: u32) -> Cl {
        Cl { header: Self::header(), child_directory_location: Both32::new(lba) }
    }
}

/// "PL": a relocated directory's ".." points at its original parent (RRIP 4.1.5.2, 12 bytes).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
pub struct Pl {
    /// "PL", 12, 1. BP 1–4.
    pub header: SuspHeader,
    /// Block of the original parent's first extent. BP 5–12.
    pub parent_directory_location: Both32,
}
const _: () = assert!(size_of::<Pl>() == 12);

impl FixedEntry for Pl {
    const SIGNATURE: &'static [u8; 2] = b"PL";
}

impl Pl {
    /// A PL pointing at block `lba`.
    pub fn new(lba: u32) -> Pl {
        Pl { header: Self::header(), parent_directory_location: Both32::new(lba) }
    }
}

/// "RE": this directory record is a relocated directory (RRIP 4.1.5.3, 4 bytes).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
pub struct Re {
    /// "RE", 4, 1. BP 1–4.
    pub header: SuspHeader,
}
const _: () = assert!(size_of::<Re>() == 4);

impl FixedEntry for Re {
    const SIGNATURE: &'static [u8; 2] = b"RE";
}

impl Re {
    /// The RE entry.
    pub fn new() -> Re {
        Re { header: Self::header() }
    }
}

impl Default for Re {
    fn default() -> Re {
        Re::new()
    }
}

// ---------------------------------------------------------------------------------------------
// Entries with a flags byte: TF, NM, SL

/// The fixed part of "TF", "NM" and "SL" entries: header and flags (BP 1–5).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
pub struct FlagsHeader {
    /// Signature, length, 1. BP 1–4.
    pub header: SuspHeader,
    /// The entry's flags. BP 5.
    pub flags: u8,
}
const _: () = assert!(size_of::<FlagsHeader>() == 5);

/// Encodes an entry of [`FlagsHeader`] + `body`; `None` past 255 bytes.
fn flags_entry(signature: [u8; 2], flags: u8, body: &[u8]) -> Option<Vec<u8>> {
    let len = u8::try_from(size_of::<FlagsHeader>() + body.len()).ok()?;
    let mut v = FlagsHeader { header: SuspHeader::new(signature, len), flags }.as_bytes().to_vec();
    v.extend_from_slice(body);
    Some(v)
}

/// Decodes the flags and body of a [`FlagsHeader`] entry.
fn decode_flags_entry<'a>(e: &SuspEntry<'a>) -> Result<(u8, &'a [u8]), SuspError> {
    let (h, body) = FlagsHeader::read_from_prefix(e.bytes()).map_err(|_| SuspError::TooShort {
        entry: Signature(e.signature()),
        expected: size_of::<FlagsHeader>(),
        found: e.bytes().len(),
    })?;
    Ok((h.flags, body))
}

/// TF flag: creation time recorded.
pub const TF_CREATION: u8 = 0x01;
/// TF flag: modification time recorded.
pub const TF_MODIFY: u8 = 0x02;
/// TF flag: access time recorded.
pub const TF_ACCESS: u8 = 0x04;
/// TF flag: attribute change time recorded.
pub const TF_ATTRIBUTES: u8 = 0x08;
/// TF flag: the time stamps are in the 17-byte form (ECMA-119 8.4.26.1) instead of 7 bytes.
pub const TF_LONG_FORM: u8 = 0x80;
/// TF flag bits: modify, access and attribute-change times (RRIP 4.1.6).
pub const TF_MODIFY_ACCESS_ATTRIBUTES: u8 = TF_MODIFY | TF_ACCESS | TF_ATTRIBUTES;

/// "TF": time stamps (RRIP 4.1.6): flags (BP 5), then one stamp per flag bit 0–6, in bit
/// order, each 7 bytes (ECMA-119 9.1.5) or 17 with [`TF_LONG_FORM`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tf<'a> {
    /// Which stamps are recorded.
    pub flags: u8,
    /// The stamps, concatenated.
    pub stamps: &'a [u8],
}

impl<'a> Tf<'a> {
    /// Signature of TF entries.
    pub const SIGNATURE: &'static [u8; 2] = b"TF";

    /// The TF isoforge writes: the same 7-byte `date` for modify, access and attribute change
    /// (26 bytes).
    pub fn encode_short(date: [u8; 7]) -> Vec<u8> {
        let stamps = [date; 3].concat();
        // 5 + 21 bytes: within one entry.
        flags_entry(*Self::SIGNATURE, TF_MODIFY_ACCESS_ATTRIBUTES, &stamps).unwrap_or_default()
    }

    /// Decodes a TF entry (the stamps are checked when read, see [`Tf::stamp`]).
    pub fn decode(e: &SuspEntry<'a>) -> Result<Tf<'a>, SuspError> {
        decode_flags_entry(e).map(|(flags, stamps)| Tf { flags, stamps })
    }

    /// The stamp of flag `bit` (one of `TF_CREATION` … 0x40), when recorded and present.
    pub fn stamp(&self, bit: u8) -> Option<&'a [u8]> {
        if self.flags & bit == 0 || bit & 0x7F == 0 || !bit.is_power_of_two() {
            return None;
        }
        let size = if self.flags & TF_LONG_FORM != 0 { 17 } else { 7 };
        let before = (self.flags & 0x7F & (bit - 1)).count_ones() as usize;
        self.stamps.get(before * size..(before + 1) * size)
    }
}

/// NM flag: the name continues in the next NM entry.
pub const NM_CONTINUE: u8 = 0x01;
/// NM flag: the name is "." (the current directory).
pub const NM_CURRENT: u8 = 0x02;
/// NM flag: the name is "..".
pub const NM_PARENT: u8 = 0x04;

/// Most name bytes one "NM" entry carries.
pub const NM_CHUNK: usize = 250;

/// "NM": alternate name (RRIP 4.1.4): flags (BP 5), name content (BP 6 on).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Nm<'a> {
    /// NM flags.
    pub flags: u8,
    /// Name content (this entry's part).
    pub name: &'a [u8],
}

impl<'a> Nm<'a> {
    /// Signature of NM entries.
    pub const SIGNATURE: &'static [u8; 2] = b"NM";

    /// NM entries holding `name`, split with [`NM_CONTINUE`] past [`NM_CHUNK`] bytes.
    pub fn encode(name: &[u8]) -> Vec<Vec<u8>> {
        let chunks: Vec<&[u8]> =
            if name.is_empty() { vec![&[][..]] } else { name.chunks(NM_CHUNK).collect() };
        let n = chunks.len();
        chunks
            .into_iter()
            .enumerate()
            .filter_map(|(i, c)| flags_entry(*Self::SIGNATURE, if i + 1 < n { NM_CONTINUE } else { 0 }, c))
            .collect()
    }

    /// Decodes an NM entry.
    pub fn decode(e: &SuspEntry<'a>) -> Result<Nm<'a>, SuspError> {
        decode_flags_entry(e).map(|(flags, name)| Nm { flags, name })
    }
}

/// SL entry flag, and component flag: continues in the next entry / component record.
pub const SL_CONTINUE: u8 = 0x01;
/// SL component flag: ".".
pub const SL_CURRENT: u8 = 0x02;
/// SL component flag: "..".
pub const SL_PARENT: u8 = 0x04;
/// SL component flag: "/".
pub const SL_ROOT: u8 = 0x08;

/// The fixed part of an SL component record (RRIP 4.1.3.1); the content follows.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
pub struct SlComponentHeader {
    /// Component flags. BP 1.
    pub component_flags: u8,
    /// Length of the component content. BP 2.
    pub component_length: u8,
}
const _: () = assert!(size_of::<SlComponentHeader>() == 2);

/// Most bytes of component records in one "SL" entry (255 − 5 header bytes).
const SL_BODY_MAX: usize = 255 - size_of::<FlagsHeader>();

/// "SL": symbolic link (RRIP 4.1.3): flags (BP 5), component records (BP 6 on).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sl<'a> {
    /// SL flags ([`SL_CONTINUE`]: the component area goes on in the next SL entry).
    pub flags: u8,
    /// Component records: (component flags, content).
    pub components: Vec<(u8, &'a [u8])>,
}

impl<'a> Sl<'a> {
    /// Signature of SL entries.
    pub const SIGNATURE: &'static [u8; 2] = b"SL";

    /// SL entries for a symlink target.
    ///
    /// The target is split at `/` into component records: a leading `/` becomes a ROOT
    /// component, `.` and `..` CURRENT and PARENT, empty components (`a//b`, a trailing `/`)
    /// are dropped. When the records do not fit one entry they go on in further SL entries
    /// whose flags byte says CONTINUE. An entry always ends inside a component (a component
    /// split with the component CONTINUE flag, or a zero-length CONTINUE component): readers
    /// such as libarchive join a continued entry to the previous one without a separator.
    pub fn encode(target: &[u8]) -> Vec<Vec<u8>> {
        let mut comps: Vec<(u8, &[u8])> = Vec::new();
        if target.first() == Some(&b'/') {
            comps.push((SL_ROOT, &[]));
        }
        for part in target.split(|&b| b == b'/') {
            match part {
                b"" => {}
                b"." => comps.push((SL_CURRENT, &[])),
                b".." => comps.push((SL_PARENT, &[])),
                p => comps.push((0, p)),
            }
        }
        let rec = size_of::<SlComponentHeader>();
        let push = |body: &mut Vec<u8>, flags: u8, content: &[u8]| {
            // `content` is at most SL_BODY_MAX - 2 bytes here: the cast cannot truncate.
            let h = SlComponentHeader { component_flags: flags, component_length: content.len() as u8 };
            body.extend_from_slice(h.as_bytes());
            body.extend_from_slice(content);
        };
        let mut bodies: Vec<Vec<u8>> = Vec::new();
        let mut body: Vec<u8> = Vec::new();
        let n = comps.len();
        for (i, (flags, mut content)) in comps.into_iter().enumerate() {
            let last = i + 1 == n;
            loop {
                let room = SL_BODY_MAX - body.len();
                // A whole component fits when it leaves room for a continuation marker (2 bytes)
                // after it, or when it is the last one.
                if rec + content.len() + rec <= room || (last && rec + content.len() <= room) {
                    push(&mut body, flags, content);
                    break;
                }
                // Otherwise end this entry inside the component: its first `room - 2` bytes (or
                // none, for special components) with the CONTINUE flag.
                let take = if flags == 0 { (room - rec).min(content.len()) } else { 0 };
                push(&mut body, SL_CONTINUE, &content[..take]);
                content = &content[take..];
                bodies.push(std::mem::take(&mut body));
            }
        }
        bodies.push(body);
        let n = bodies.len();
        bodies
            .into_iter()
            .enumerate()
            .filter_map(|(i, b)| flags_entry(*Self::SIGNATURE, if i + 1 < n { SL_CONTINUE } else { 0 }, &b))
            .collect()
    }

    /// Decodes an SL entry and its component records.
    pub fn decode(e: &SuspEntry<'a>) -> Result<Sl<'a>, SuspError> {
        let (flags, mut rest) = decode_flags_entry(e)?;
        let mut components = Vec::new();
        while !rest.is_empty() {
            let offset = e.bytes().len() - rest.len();
            let overrun =
                |length| SuspError::SlComponentOverrun { offset, length, entry_len: e.bytes().len() };
            let (h, tail) = SlComponentHeader::read_from_prefix(rest).map_err(|_| overrun(0))?;
            let len = usize::from(h.component_length);
            let content = tail.get(..len).ok_or(overrun(len))?;
            components.push((h.component_flags, content));
            rest = &tail[len..];
        }
        Ok(Sl { flags, components })
    }
}

// ---------------------------------------------------------------------------------------------
// Decoding a whole area

/// One decoded System Use entry.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SystemUse<'a> {
    /// SUSP "SP".
    Sp(Sp),
    /// SUSP "CE".
    Ce(Ce),
    /// SUSP "ER".
    Er(Er<'a>),
    /// SUSP "ST": the last entry of its area.
    St,
    /// RRIP "PX"; `serial` tells the 44-byte form.
    Px {
        /// The entry (serial number zero in the 36-byte form).
        px: Px,
        /// Whether the serial number is recorded.
        serial: bool,
    },
    /// RRIP "PN".
    Pn(Pn),
    /// RRIP "TF".
    Tf(Tf<'a>),
    /// RRIP "NM".
    Nm(Nm<'a>),
    /// RRIP "SL".
    Sl(Sl<'a>),
    /// RRIP "CL".
    Cl(Cl),
    /// RRIP "PL".
    Pl(Pl),
    /// RRIP "RE".
    Re,
    /// An entry this reader does not interpret (RR, ZF, AA, ...).
    Other(Signature),
}

impl<'a> SystemUse<'a> {
    /// Decodes one entry by its signature.
    pub fn decode(e: &SuspEntry<'a>) -> Result<SystemUse<'a>, SuspError> {
        Ok(match &e.signature() {
            b"SP" => SystemUse::Sp(Sp::decode(e)?),
            b"CE" => SystemUse::Ce(Ce::decode(e)?),
            b"ER" => SystemUse::Er(Er::decode(e)?),
            b"ST" => SystemUse::St,
            b"PX" => {
                let (px, serial) = Px::decode_either_form(e)?;
                SystemUse::Px { px, serial }
            }
            b"PN" => SystemUse::Pn(Pn::decode(e)?),
            b"TF" => SystemUse::Tf(Tf::decode(e)?),
            b"NM" => SystemUse::Nm(Nm::decode(e)?),
            b"SL" => SystemUse::Sl(Sl::decode(e)?),
            b"CL" => SystemUse::Cl(Cl::decode(e)?),
            b"PL" => SystemUse::Pl(Pl::decode(e)?),
            b"RE" => SystemUse::Re,
            s => SystemUse::Other(Signature(*s)),
        })
    }

    /// The entry's both-endian fields: (name, offset in the entry, value).
    pub fn both_fields(&self) -> BothFields {
        match self {
            SystemUse::Ce(ce) => ce.both_fields(),
            SystemUse::Px { px, serial } => px.both_fields(*serial),
            SystemUse::Pn(pn) => vec![
                ("PN high", offset_of!(Pn, dev_t_high), pn.dev_t_high),
                ("PN low", offset_of!(Pn, dev_t_low), pn.dev_t_low),
            ],
            SystemUse::Cl(cl) => {
                vec![("CL location", offset_of!(Cl, child_directory_location), cl.child_directory_location)]
            }
            SystemUse::Pl(pl) => {
                vec![("PL location", offset_of!(Pl, parent_directory_location), pl.parent_directory_location)]
            }
            _ => Vec::new(),
        }
    }
}

/// Rock Ridge information gathered from a record's entries (and its continuation areas).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RockRidge {
    /// The "NM" name, concatenated.
    pub name: Option<Vec<u8>>,
    /// PX mode.
    pub mode: Option<u32>,
    /// PX link count.
    pub nlink: Option<u32>,
    /// PX uid.
    pub uid: Option<u32>,
    /// PX gid.
    pub gid: Option<u32>,
    /// PX serial number (44-byte form only).
    pub serial: Option<u32>,
    /// The "SL" target, reassembled.
    pub symlink: Option<Vec<u8>>,
    /// TF modify time, raw 7-byte form.
    pub modify: Option<[u8; 7]>,
    /// Whether an "SP" entry was seen.
    pub has_sp: bool,
    /// Extension identifiers from "ER" entries.
    pub extensions: Vec<Vec<u8>>,
    /// CE pointers found: (lba, offset, length).
    pub continuation: Option<(u32, u32, u32)>,
    /// "CL" location: this file record stands for the directory relocated to that block.
    pub child_link: Option<u32>,
    /// Whether an "RE" entry marks this record as a relocated directory.
    pub relocated: bool,
}

impl RockRidge {
    /// Folds one decoded entry into the summary. Call for every entry of every area, in
    /// order; `continuation` holds the last CE seen (the caller follows it and clears it).
    pub fn absorb(&mut self, e: &SystemUse<'_>) {
        match e {
            SystemUse::Sp(_) => self.has_sp = true,
            SystemUse::Ce(ce) => {
                self.continuation = Some((ce.block_location.le(), ce.offset.le(), ce.length.le()));
            }
            SystemUse::Er(er) => self.extensions.push(er.id.to_vec()),
            SystemUse::Px { px, serial } => {
                self.mode = Some(px.file_mode.le());
                self.nlink = Some(px.file_links.le());
                self.uid = Some(px.file_user_id.le());
                self.gid = Some(px.file_group_id.le());
                self.serial = serial.then(|| px.file_serial_number.le());
            }
            SystemUse::Nm(nm) => {
                let name = self.name.get_or_insert_with(Vec::new);
                if nm.flags & NM_CURRENT != 0 {
                    name.push(b'.');
                } else if nm.flags & NM_PARENT != 0 {
                    name.extend_from_slice(b"..");
                } else {
                    name.extend_from_slice(nm.name);
                }
            }
            SystemUse::Sl(sl) => self.absorb_sl(sl),
            SystemUse::Tf(tf) => {
                if tf.flags & TF_LONG_FORM == 0 {
                    if let Some(d) = tf.stamp(TF_MODIFY) {
                        self.modify = d.try_into().ok();
                    }
                }
            }
            SystemUse::Cl(cl) => self.child_link = Some(cl.child_directory_location.le()),
            SystemUse::Re => self.relocated = true,
            SystemUse::St | SystemUse::Pn(_) | SystemUse::Pl(_) | SystemUse::Other(_) => {}
        }
    }

    fn absorb_sl(&mut self, sl: &Sl<'_>) {
        let target = self.symlink.get_or_insert_with(Vec::new);
        // `pending` is true when the previous component asked to continue.
        let mut pending = target.last() == Some(&0);
        if pending {
            target.pop();
        }
        for &(flags, content) in &sl.components {
            if !pending && !target.is_empty() && target != b"/" {
                target.push(b'/');
            }
            if flags & SL_ROOT != 0 {
                target.clear();
                target.push(b'/');
            } else if flags & SL_CURRENT != 0 {
                target.push(b'.');
            } else if flags & SL_PARENT != 0 {
                target.extend_from_slice(b"..");
            } else {
                target.extend_from_slice(content);
            }
            pending = flags & SL_CONTINUE != 0;
        }
        if pending {
            // Marker byte removed when the next SL entry continues the component.
            target.push(0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::iso9660::susp::{entries, CE_LEN};

    fn decode_all(all: &[Vec<u8>]) -> RockRidge {
        let mut rr = RockRidge::default();
        for area in all {
            let (list, bad) = entries(area);
            assert_eq!(bad, None);
            for e in &list {
                rr.absorb(&SystemUse::decode(e).unwrap());
            }
        }
        rr
    }

    fn one(bytes: &[u8]) -> SystemUse<'_> {
        let (list, bad) = entries(bytes);
        assert_eq!((list.len(), bad), (1, None));
        SystemUse::decode(&list[0]).unwrap()
    }

    #[test]
    fn lengths() {
        assert_eq!(rrip_er().len(), 237);
        assert_eq!(Px::new(0, 0, 0, 0, 0).encode().len(), 44);
        assert_eq!(Tf::encode_short([0; 7]).len(), 26);
        assert_eq!(Ce::new(1, 2, 3).encode().len(), CE_LEN);
        assert_eq!(PX_LEN_WITHOUT_SERIAL, 36);
    }

    #[test]
    fn px_round_trip_both_forms() {
        let b = Px::new(0o100444, 1, 2, 3, 7).encode();
        assert_eq!(&b[..4], b"PX,\x01");
        assert_eq!(&b[36..44], &[7, 0, 0, 0, 0, 0, 0, 7]);
        let rr = decode_all(std::slice::from_ref(&b));
        assert_eq!(
            (rr.mode, rr.nlink, rr.uid, rr.gid, rr.serial),
            (Some(0o100444), Some(1), Some(2), Some(3), Some(7))
        );
        let offsets: Vec<usize> = one(&b).both_fields().iter().map(|f| f.1).collect();
        assert_eq!(offsets, [4, 12, 20, 28, 36]);
        // The 36-byte form (RRIP 1.10, xorriso): no serial.
        let mut short = b[..36].to_vec();
        short[2] = 36;
        let rr = decode_all(&[short.clone()]);
        assert_eq!((rr.mode, rr.serial), (Some(0o100444), None));
        assert_eq!(one(&short).both_fields().len(), 4);
        let mut tiny = b[..20].to_vec();
        tiny[2] = 20;
        let (list, _) = entries(&tiny);
        assert_eq!(
            SystemUse::decode(&list[0]),
            Err(SuspError::TooShort { entry: Signature(*b"PX"), expected: 36, found: 20 })
        );
        assert_eq!(
            SystemUse::decode(&list[0]).unwrap_err().to_string(),
            "PX entry: length 20, expected at least 36"
        );
    }

    #[test]
    fn er_round_trip() {
        let rr = decode_all(&[rrip_er()]);
        assert_eq!(rr.extensions, vec![RRIP_ID.to_vec()]);
        assert_eq!(one(&rrip_er()), SystemUse::Er(RRIP_ER));
    }

    #[test]
    fn tf_round_trip() {
        let date = [80, 1, 1, 0, 0, 0, 0];
        let b = Tf::encode_short(date);
        assert_eq!(&b[..5], &[b'T', b'F', 26, 1, 0x0E]);
        let SystemUse::Tf(tf) = one(&b) else { panic!("not TF") };
        assert_eq!(tf.stamp(TF_MODIFY), Some(&date[..]));
        assert_eq!(tf.stamp(TF_ATTRIBUTES), Some(&date[..]));
        assert_eq!(tf.stamp(TF_CREATION), None);
        assert_eq!(decode_all(&[b]).modify, Some(date));
        // Creation first, then modify: the modify stamp is the second one.
        let body: Vec<u8> = [[1u8; 7], [2u8; 7]].concat();
        let e = flags_entry(*b"TF", TF_CREATION | TF_MODIFY, &body).unwrap();
        assert_eq!(decode_all(&[e]).modify, Some([2; 7]));
        // Long form: 17-byte stamps, no 7-byte modify time.
        let e = flags_entry(*b"TF", TF_MODIFY | TF_LONG_FORM, &[3; 17]).unwrap();
        let SystemUse::Tf(tf) = one(&e) else { panic!("not TF") };
        assert_eq!(tf.stamp(TF_MODIFY), Some(&[3u8; 17][..]));
        assert_eq!(decode_all(&[e]).modify, None);
    }

    #[test]
    fn long_names_split_and_rejoin() {
        let name = vec![b'a'; 255];
        let parts = Nm::encode(&name);
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0][4], NM_CONTINUE);
        assert_eq!(parts[0].len(), 255);
        assert_eq!(decode_all(&parts).name.unwrap(), name);
        assert_eq!(Nm::encode(b""), vec![b"NM\x05\x01\x00".to_vec()]);
        let dot = flags_entry(*b"NM", NM_CURRENT, b"").unwrap();
        assert_eq!(decode_all(&[dot]).name.unwrap(), b".");
    }

    #[test]
    fn symlinks_round_trip() {
        let long = format!("/{}/x/../y", "c".repeat(600));
        let split = format!("../{}/{}/end", "t".repeat(200), "u".repeat(150));
        let dots = format!("{}/../..", "v".repeat(245));
        for t in ["../lib/libc.so.6", "/nix/store/abc-foo/bin", "a", "./x/", &long, &split, &dots] {
            let parts = Sl::encode(t.as_bytes());
            assert!(parts.iter().all(|p| p.len() <= 255));
            let want = t.trim_end_matches('/').to_string();
            let got = String::from_utf8(decode_all(&parts).symlink.unwrap()).unwrap();
            assert_eq!(got, want);
        }
        let b = Sl::encode(b"/a/..");
        assert_eq!(
            one(&b[0]),
            SystemUse::Sl(Sl { flags: 0, components: vec![(SL_ROOT, b""), (0, b"a"), (SL_PARENT, b"")] })
        );
    }

    #[test]
    fn sl_component_overrun() {
        let e = flags_entry(*b"SL", 0, &[0, 5, b'a']).unwrap();
        let (list, _) = entries(&e);
        assert_eq!(
            Sl::decode(&list[0]),
            Err(SuspError::SlComponentOverrun { offset: 5, length: 5, entry_len: 8 })
        );
        let e = flags_entry(*b"SL", 0, &[0, 1, b'a', 0]).unwrap();
        let (list, _) = entries(&e);
        assert_eq!(
            Sl::decode(&list[0]),
            Err(SuspError::SlComponentOverrun { offset: 8, length: 0, entry_len: 9 })
        );
    }

    #[test]
    fn relocation_entries_round_trip() {
        let mut area = Cl::new(40).encode();
        area.extend(Re::new().encode());
        area.extend(Pl::new(30).encode());
        area.extend(Pn::new(1, 2).encode());
        let (list, bad) = entries(&area);
        assert_eq!(bad, None);
        let decoded: Vec<SystemUse<'_>> = list.iter().map(|e| SystemUse::decode(e).unwrap()).collect();
        assert_eq!(
            decoded,
            [
                SystemUse::Cl(Cl::new(40)),
                SystemUse::Re,
                SystemUse::Pl(Pl::new(30)),
                SystemUse::Pn(Pn::new(1, 2))
            ]
        );
        let names: Vec<&str> = decoded.iter().flat_map(|d| d.both_fields()).map(|f| f.0).collect();
        assert_eq!(names, ["CL location", "PL location", "PN high", "PN low"]);
        let mut rr = RockRidge::default();
        decoded.iter().for_each(|d| rr.absorb(d));
        assert_eq!((rr.child_link, rr.relocated), (Some(40), true));
        assert_eq!(one(b"ZF\x04\x01"), SystemUse::Other(Signature(*b"ZF")));
    }
}
