//! ISO 9660 (ECMA-119) level 3 with Rock Ridge (RRIP 1.09/SUSP 1.10), Joliet and El Torito.
