use super::*;
use crate::closure::base32;

const HA: &str = "afiv9c5qxzab30yk1im4qf9y95dhz8h4";
const HB: &str = "j6jap9cbcfc4bynkg71skzrfz7xabhq6";
const HC: &str = "1lad8q202diczbw4krd4nz24al7rdmbg";

fn parse(text: &str) -> Result<Closure, ClosureError> {
    Closure::parse(Path::new("in.txt"), text.as_bytes(), &ClosureOptions::default())
}

fn err(text: &str) -> String {
    parse(text).unwrap_err().to_string()
}

fn names(c: &Closure) -> Vec<&str> {
    c.paths().iter().map(StorePath::name).collect()
}

#[test]
fn list_sorted_deduplicated() {
    let text = format!("/nix/store/{HB}-b\n\n   \n/nix/store/{HA}-a\n/nix/store/{HB}-b\n/nix/store/{HC}-c");
    let c = parse(&text).unwrap();
    assert_eq!(c.format(), InputFormat::PathList);
    assert_eq!(names(&c), ["c", "a", "b"]);
    // Lines of first mentions.
    assert_eq!((c.line(0), c.line(1), c.line(2)), (Some(6), Some(4), Some(1)));
    assert!(!c.has_references());
    assert_eq!(c.full_path(1), format!("/nix/store/{HA}-a"));
    assert_eq!(c.host_path(&c.paths()[1]), PathBuf::from(format!("/nix/store/{HA}-a")));
    assert!(parse("").unwrap().is_empty());
    assert!(parse("\n\n").unwrap().is_empty());
}

#[test]
fn list_errors_name_file_and_line() {
    let cases = [
        (format!("/nix/store/{HA}-a\nnix/store/{HB}-b\n"), "in.txt:2: \"nix/store/"),
        (format!("{HA}-a\n"), "in.txt:1: \"afiv9c5qxzab30yk1im4qf9y95dhz8h4-a\" is a relative path"),
        ("\n\nhello world\n".to_string(), "in.txt:3: \"hello world\" is not a store path"),
        ("/tmp/x\n".to_string(), "in.txt:1: /tmp/x is not in the store /nix/store"),
        (
            format!("/nix/store/{HA}-a/bin/sh\n"),
            "in.txt:1: /nix/store/afiv9c5qxzab30yk1im4qf9y95dhz8h4-a/bin/sh is a path inside the store path",
        ),
        ("/nix/store/foo\n".to_string(), "in.txt:1: invalid store path name \"foo\""),
        (format!("/nix/store/{}e-a\n", &HA[..31]), "in.txt:1: invalid store path name"),
        (format!("/nix/store/{HA}-a b\n"), "only 0-9 a-z A-Z"),
        (format!("/nix/store/{HA}-a\n/nix/store/{HA}-\u{e9}\n"), "in.txt:2:"),
    ];
    for (text, want) in cases {
        let e = err(&text);
        assert!(e.contains(want), "{text:?}: {e}");
    }
    let e = Closure::parse(Path::new("f"), b"/nix/store/\xff\n", &ClosureOptions::default()).unwrap_err();
    assert_eq!(e.to_string(), "f:1: the line is not UTF-8 text");
}

#[test]
fn store_dir_and_root() {
    let opts = ClosureOptions { store_dir: "/gnu/store".into(), store_root: PathBuf::from("/srv/chroot") };
    let c = Closure::parse(Path::new("x"), format!("/gnu/store/{HA}-a\n").as_bytes(), &opts).unwrap();
    assert_eq!(c.host_path(&c.paths()[0]), PathBuf::from(format!("/srv/chroot/gnu/store/{HA}-a")));
    let e = Closure::parse(Path::new("x"), format!("/nix/store/{HA}-a\n").as_bytes(), &opts).unwrap_err();
    assert!(e.to_string().contains("is not in the store /gnu/store"), "{e}");
    let bad = ClosureOptions { store_dir: "/nix/store/".into(), ..ClosureOptions::default() };
    let e = Closure::parse(Path::new("x"), b"", &bad).unwrap_err();
    assert!(matches!(e, ClosureError::BadStoreDir { .. }), "{e}");
}

fn graph() -> String {
    // As Nix 2.8 writes exportReferencesGraph: c -> {a, c}, b -> {a}, a -> {}.
    format!(
        "/nix/store/{HA}-a\n\n0\n/nix/store/{HB}-b\n\n1\n/nix/store/{HA}-a\n\
         /nix/store/{HC}-c\n\n2\n/nix/store/{HA}-a\n/nix/store/{HC}-c\n"
    )
}

#[test]
fn references_graph() {
    let c = parse(&graph()).unwrap();
    assert_eq!(c.format(), InputFormat::ReferencesGraph);
    assert_eq!(names(&c), ["c", "a", "b"]);
    assert_eq!(c.references(0), Some(&[0u32, 1][..]));
    assert_eq!(c.references(1), Some(&[][..]));
    assert_eq!(c.references(2), Some(&[1u32][..]));
    assert_eq!(c.line(0), Some(8));
    assert_eq!(c.nar(0), None);
    // Concatenated graphs (as old closureInfo did with several roots) collapse.
    let twice = format!("{}{}", graph(), graph());
    let c2 = parse(&twice).unwrap();
    assert_eq!(c2.paths(), c.paths());
    assert_eq!(c2.references(0), c.references(0));
}

#[test]
fn graph_errors() {
    let g = graph();
    let cases = [
        (g.replace("\n1\n", "\nx\n"), "in.txt:6: expected a reference count (a decimal number), found \"x\""),
        (g.replace("\n1\n", "\n-1\n"), "in.txt:6: expected a reference count"),
        (g[..g.len() - 1 - HC.len() - 13].to_string(), "in.txt:12: the file ends where a reference was expected"),
        (
            format!("/nix/store/{HA}-a\n\n1\n/nix/store/{HB}-b\n"),
            "in.txt:4: reference /nix/store/j6jap9cbcfc4bynkg71skzrfz7xabhq6-b of /nix/store/afiv9c5qxzab30yk1im4qf9y95dhz8h4-a is not in the closure",
        ),
        (
            format!("{g}/nix/store/{HA}-a\n\n1\n/nix/store/{HA}-a\n"),
            "in.txt:13: /nix/store/afiv9c5qxzab30yk1im4qf9y95dhz8h4-a was already described at line 1 with different references",
        ),
        (format!("{}/tmp/a\n/nix/store/{HC}-c\n", &g[..g.len() - 92]), "in.txt:11: /tmp/a is not in the store"),
        (format!("/nix/store/{HA}-a\n/tmp/drv\n0\n"), "in.txt:2: /tmp/drv is not in the store"),
    ];
    for (text, want) in cases {
        let e = err(&text);
        assert!(e.contains(want), "{text:?}:\n{e}");
    }
}

fn registration_text(hash: &str) -> String {
    format!(
        "/nix/store/{HA}-a\n{hash}\n120\n\n0\n/nix/store/{HB}-b\n{hash}\n4\n/nix/store/{HB}-b.drv\n2\n\
         /nix/store/{HA}-a\n/nix/store/{HB}-b\n"
    )
}

#[test]
fn registration_forms() {
    let hex = "3a739bf4a8006a8a818f574058f99fd37b0abea61f9bad2a3f88253899faf6a4";
    let nix = "sha256:197nzackh9c87wmav6qzlsz0lyykkzwmhh2piy0qlsh0m3s9nwrs";
    for h in [hex.to_string(), nix.to_string(), format!("sha256:{hex}")] {
        let c = parse(&registration_text(&h)).unwrap();
        assert_eq!(c.format(), InputFormat::Registration, "{h}");
        assert_eq!(c.nar(0).map(|n| (n.0.to_hex(), n.1)), Some((hex.to_string(), 120)));
        assert_eq!(c.nar(1).map(|n| n.1), Some(4));
        assert_eq!(c.references(1), Some(&[0u32, 1][..]));
    }
    let e = Closure::parse_as(
        InputFormat::Registration,
        Path::new("r"),
        registration_text("sha256:zz").as_bytes(),
        &ClosureOptions::default(),
    )
    .unwrap_err();
    assert_eq!(e.to_string(), "r:2: expected a SHA-256 NAR hash, found \"sha256:zz\"");
    let e = err(&registration_text(nix).replace("\n120\n", "\n12x\n"));
    assert!(e.contains("in.txt:3: expected a NAR size"), "{e}");
}

#[test]
fn closure_info_dir() {
    let tmp = isoforge_testing::tempdir();
    let dir = tmp.path();
    let nix = "sha256:197nzackh9c87wmav6qzlsz0lyykkzwmhh2piy0qlsh0m3s9nwrs";
    fs::write(dir.join("registration"), registration_text(nix)).unwrap();
    fs::write(dir.join("store-paths"), format!("/nix/store/{HA}-a\n/nix/store/{HB}-b\n")).unwrap();
    let c = Closure::load(dir, &ClosureOptions::default()).unwrap();
    assert_eq!(c.format(), InputFormat::ClosureInfo);
    assert_eq!(c.registration_file(), Some(dir.join("registration").as_path()));
    assert_eq!(c.source(), dir.join("store-paths"));
    assert_eq!(c.references(1), Some(&[0u32, 1][..]));

    fs::write(dir.join("store-paths"), format!("/nix/store/{HA}-a\n/nix/store/{HB}-b\n/nix/store/{HC}-c\n"))
        .unwrap();
    let e = Closure::load(dir, &ClosureOptions::default()).unwrap_err().to_string();
    assert!(
        e.ends_with(&format!(
            "store-paths:3: /nix/store/{HC}-c is in the closure but not in the registration"
        )),
        "{e}"
    );
    fs::write(dir.join("store-paths"), format!("/nix/store/{HB}-b\n")).unwrap();
    let e = Closure::load(dir, &ClosureOptions::default()).unwrap_err().to_string();
    assert!(
        e.ends_with(&format!(
            "registration:1: /nix/store/{HA}-a is in the registration but not in the closure"
        )),
        "{e}"
    );

    // The same check for a registration given apart.
    let list = Closure::parse(
        Path::new("list"),
        format!("/nix/store/{HA}-a\n/nix/store/{HB}-b\n").as_bytes(),
        &ClosureOptions::default(),
    )
    .unwrap();
    list.check_registration(&dir.join("registration")).unwrap();
    let e = c.check_registration(&dir.join("store-paths")).unwrap_err().to_string();
    assert!(e.ends_with("store-paths:2: the file ends where a NAR hash was expected"), "{e}");

    fs::remove_file(dir.join("store-paths")).unwrap();
    let e = Closure::load(dir, &ClosureOptions::default()).unwrap_err().to_string();
    assert!(e.contains("not a closureInfo directory: it has no file store-paths"), "{e}");
    let e = Closure::load(&dir.join("nope"), &ClosureOptions::default()).unwrap_err().to_string();
    assert!(e.starts_with("cannot read "), "{e}");
}

#[test]
fn check_host_names_line() {
    let tmp = isoforge_testing::tempdir();
    let store = tmp.path().join("nix/store");
    fs::create_dir_all(&store).unwrap();
    fs::write(store.join(format!("{HA}-a")), b"").unwrap();
    std::os::unix::fs::symlink("/nonexistent", store.join(format!("{HB}-b"))).unwrap();
    let opts = ClosureOptions { store_root: tmp.path().to_path_buf(), ..ClosureOptions::default() };
    let text = format!("/nix/store/{HA}-a\n/nix/store/{HB}-b\n");
    let c = Closure::parse(Path::new("list"), text.as_bytes(), &opts).unwrap();
    c.check_host().unwrap();
    let text = format!("{text}\n/nix/store/{HC}-c\n");
    let c = Closure::parse(Path::new("list"), text.as_bytes(), &opts).unwrap();
    let e = c.check_host().unwrap_err().to_string();
    assert!(e.starts_with(&format!("list:4: /nix/store/{HC}-c is not on the host (looked for ")), "{e}");
}

/// 100,000 paths (and each listed twice) parse fast: no quadratic step anywhere.
#[test]
fn hundred_thousand_paths() {
    let mut text = String::new();
    let mut graph = String::new();
    for i in 0..100_000u32 {
        let mut h = [0u8; 20];
        h[..4].copy_from_slice(&i.wrapping_mul(2_654_435_761).to_le_bytes());
        h[4..8].copy_from_slice(&i.to_be_bytes());
        let p = format!("/nix/store/{}-package-{i}\n", base32::encode(&h));
        text.push_str(&p);
        graph.push_str(&p);
        graph.push_str("\n1\n");
        graph.push_str(&p);
    }
    let doubled = format!("{text}{text}");
    let start = std::time::Instant::now();
    let c = parse(&doubled).unwrap();
    let list_time = start.elapsed();
    assert_eq!(c.len(), 100_000);
    assert!(c.paths().windows(2).all(|w| w[0] < w[1]));
    let start = std::time::Instant::now();
    let g = parse(&graph).unwrap();
    let graph_time = start.elapsed();
    assert_eq!(g.paths(), c.paths());
    assert!((0..g.len()).all(|i| g.references(i) == Some(&[i as u32][..])));
    eprintln!("200,000 lines: {list_time:?}; graph of 100,000 blocks: {graph_time:?}");
    assert!(list_time.as_secs() < 5 && graph_time.as_secs() < 5, "{list_time:?} {graph_time:?}");
}

/// Issue 11: an input that lists no store path is an error naming the file, in every form
/// (a list, closureInfo's `store-paths`, an exportReferencesGraph file of blank lines).
#[test]
fn empty_closure_is_an_error_naming_the_file() {
    let tmp = isoforge_testing::tempdir();
    let dir = tmp.path();
    for (name, text) in [("empty", ""), ("blank", "\n\n  \n"), ("crlf-blank", "\r\n\r\n")] {
        let f = dir.join(name);
        fs::write(&f, text).unwrap();
        let e = Closure::load(&f, &ClosureOptions::default()).unwrap_err();
        assert!(matches!(&e, ClosureError::Empty { file } if *file == f), "{name}: {e}");
        assert_eq!(
            e.to_string(),
            format!("{}: the closure is empty: the file lists no store paths", f.display())
        );
    }
    let info = dir.join("info");
    fs::create_dir(&info).unwrap();
    fs::write(info.join("store-paths"), "").unwrap();
    fs::write(info.join("registration"), "").unwrap();
    let e = Closure::load(&info, &ClosureOptions::default()).unwrap_err();
    assert!(matches!(&e, ClosureError::Empty { file } if *file == info.join("store-paths")), "{e}");
    // Parsing alone (no file) still allows an empty set.
    assert!(parse("").unwrap().is_empty());
}

/// Issue 11: CRLF line ends work in every input that is only parsed (a store path holds no
/// `\r`), and the lines are the same as with LF.
#[test]
fn crlf_inputs_parse_like_lf() {
    let list = format!("/nix/store/{HB}-b\r\n\r\n/nix/store/{HA}-a\r\n");
    let c = parse(&list).unwrap();
    assert_eq!((names(&c), c.line(0), c.line(1)), (vec!["a", "b"], Some(3), Some(1)));
    let g = parse(&graph().replace('\n', "\r\n")).unwrap();
    assert_eq!(g.format(), InputFormat::ReferencesGraph);
    let lf = parse(&graph()).unwrap();
    assert_eq!((names(&g), g.references(2)), (names(&lf), lf.references(2)));
    let nix = "sha256:197nzackh9c87wmav6qzlsz0lyykkzwmhh2piy0qlsh0m3s9nwrs";
    let r = parse(&registration_text(nix).replace('\n', "\r\n")).unwrap();
    assert_eq!(r.format(), InputFormat::Registration);
    assert_eq!(r.nar(0).map(|n| n.1), Some(120));
}

/// Issue 11: a registration copied into the image verbatim (closureInfo's, or
/// `--registration`) with CRLF line ends is an error that says CRLF and names the line.
#[test]
fn crlf_registration_is_an_error() {
    let tmp = isoforge_testing::tempdir();
    let dir = tmp.path();
    let nix = "sha256:197nzackh9c87wmav6qzlsz0lyykkzwmhh2piy0qlsh0m3s9nwrs";
    let text = registration_text(nix);
    // Only from the third line on: the error names the first CRLF line.
    let (head, tail) = text.split_at(text.match_indices('\n').nth(1).unwrap().0 + 1);
    fs::write(dir.join("registration"), format!("{head}{}", tail.replace('\n', "\r\n"))).unwrap();
    fs::write(dir.join("store-paths"), format!("/nix/store/{HA}-a\n/nix/store/{HB}-b\n")).unwrap();
    let e = Closure::load(dir, &ClosureOptions::default()).unwrap_err();
    assert!(matches!(&e, ClosureError::CrlfRegistration { line: 3, .. }), "{e}");
    assert!(e.to_string().contains("registration:3: the registration has CRLF line ends"), "{e}");
    let list = parse(&format!("/nix/store/{HA}-a\n/nix/store/{HB}-b\n")).unwrap();
    let e = list.check_registration(&dir.join("registration")).unwrap_err();
    assert!(matches!(&e, ClosureError::CrlfRegistration { line: 3, .. }), "{e}");
}
