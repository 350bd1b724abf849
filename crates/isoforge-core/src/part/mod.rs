//! MBR and GPT for the system area of hybrid images (filled in by the hybrid-boot issue).
