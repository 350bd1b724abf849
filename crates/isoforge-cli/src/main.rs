//! The `isoforge` command: parse, call the library, print.
//!
//! Exit status: 0 success, 2 bad input or failure (messages name the path or argument),
//! and 1 is kept for "differences/problems found" answers of `diff` and `verify`.

mod cmd;
mod flags;

use clap::{Parser, Subcommand};

/// Build, inspect and compare bootable hybrid ISO images.
#[derive(Parser, Debug)]
#[command(name = "isoforge", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Build an ISO image.
    Build(Box<flags::low::BuildArgs>),
    /// Build a FAT image (an EFI system partition) from a directory.
    Fat(cmd::fat::FatArgs),
    /// Build the store squashfs (closure + nix-path-registration) alone.
    Squashfs(cmd::squashfs::SquashfsArgs),
    /// Build the NixOS netboot files: bzImage, initrd with the store appended, netboot.ipxe.
    Netboot(Box<cmd::netboot::NetbootArgs>),
    /// Describe every structure of an image (system area, descriptors, El Torito, trees, FAT).
    Inspect(cmd::inspect::InspectArgs),
    /// Check an image's consistency: exit 0 clean, 1 problems found, 2 unreadable.
    Verify(cmd::verify::VerifyArgs),
    /// Name every differing byte range of two images: exit 0 identical, 1 different, 2 error.
    Diff(cmd::diff::DiffArgs),
    /// Look at or shrink a block cache of compressed squashfs blocks: `stats`, `gc`.
    Cache(cmd::cache::CacheArgs),
}

fn main() {
    let cli = Cli::parse();
    let result = match &cli.command {
        Command::Build(args) => cmd::build::run(args).map(|()| 0),
        Command::Fat(args) => cmd::fat::run(args).map(|()| 0),
        Command::Squashfs(args) => cmd::squashfs::run(args).map(|()| 0),
        Command::Netboot(args) => cmd::netboot::run(args).map(|()| 0),
        Command::Inspect(args) => cmd::inspect::run(args),
        Command::Verify(args) => cmd::verify::run(args),
        Command::Diff(args) => cmd::diff::run(args),
        Command::Cache(args) => cmd::cache::run(args).map(|()| 0),
    };
    match result {
        Ok(code) => std::process::exit(code),
        Err(e) => fail(&e),
    }
}

/// Prints the error and exits 2; a closed stdout (`isoforge ... | head`) is not a failure.
fn fail(e: &anyhow::Error) -> ! {
    if e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    }) {
        std::process::exit(0);
    }
    eprintln!("isoforge: error: {}", message(e));
    std::process::exit(2);
}

/// The error and its causes joined by ": ", as `{:#}` joins them, but without a cause that
/// the error before it already ends with: the library's errors name their cause in their own
/// message (`cannot read x: No such file or directory (os error 2)`) and also return it as
/// their `source`, which `{:#}` would print a second time.
fn message(e: &anyhow::Error) -> String {
    let mut out = String::new();
    let mut last = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if last == text || last.ends_with(&format!(": {text}")) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
        last = text;
    }
    out
}
