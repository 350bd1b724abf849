//! FAT12/16/32 image builder for the EFI system partition (filled in by the hybrid-boot issue).
