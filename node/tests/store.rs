//! The store's promises, tested through its public API: only signed, trusted, newer,
//! unexpired releases whose every byte matches get in; damage is found; retention and GC
//! reclaim space; one process per data dir.

use std::{
    fs,
    path::{Path, PathBuf},
};

use netboot_node::{
    config::KeepVersions,
    publish::{publish_to_bundle, publish_to_store, FileArg, PublishSpec},
    store::{AcceptError, Problem, Store, StoreError, StoreOptions, BUNDLE_RELEASE_FILE},
};
use netboot_proto::{build_and_sign, FileEntry, Refusal, ReleaseSpec, SecretKey, TrustedKeys};

fn key(seed: u8) -> SecretKey {
    SecretKey::from_seed([seed; 32])
}

fn options(dir: &Path, trusted: &[&SecretKey], keep: usize) -> StoreOptions {
    StoreOptions {
        data_dir: dir.to_path_buf(),
        trusted: TrustedKeys::new(trusted.iter().map(|k| k.public())),
        keep_versions: KeepVersions::new(keep).unwrap(),
    }
}

/// Deterministic, incompressible-looking content.
fn content(seed: u64, len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 8);
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// Writes `data` to `dir/name` and returns it as a publish input named `name` in the image.
fn write(dir: &Path, name: &str, data: &[u8]) -> FileArg {
    let path = dir.join(name);
    fs::write(&path, data).unwrap();
    format!("{name}={}", path.display()).parse().unwrap()
}

fn linux_spec(name: &str, kernel: FileArg, initrd: FileArg) -> PublishSpec {
    PublishSpec {
        name: name.parse().unwrap(),
        version: None,
        kernel: Some(kernel),
        initrds: vec![initrd],
        cmdline: "console=ttyS0 root=live:{{image_url}}/root.sfs".into(),
        iso: None,
        files: vec![],
        expires_in: None,
    }
}

fn blob_files(data_dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(data_dir.join("blobs/data"))
        .map(|d| {
            d.filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.ends_with(".data"))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

fn data_name(data: &[u8]) -> String {
    format!("{}.data", blake3::hash(data).to_hex())
}

#[tokio::test]
async fn publish_list_reopen_verify() {
    let tmp = tempfile::tempdir().unwrap();
    let (src, data) = (tmp.path().join("src"), tmp.path().join("data"));
    fs::create_dir(&src).unwrap();
    let publisher = key(1);
    let store = Store::open(options(&data, &[&publisher], 2)).await.unwrap();
    let spec = linux_spec(
        "debian",
        write(&src, "vmlinuz", &content(1, 300_000)),
        write(&src, "initrd.img", &content(2, 5_000)),
    );
    let accepted = publish_to_store(&store, &publisher, &spec, &mut |_| {})
        .await
        .unwrap();
    assert_eq!(accepted.version, 1);
    let releases = store.releases();
    assert_eq!(releases.len(), 1);
    for f in &releases[0].verified.files {
        let served = fs::read(store.blob_path(&f.hash)).unwrap();
        assert_eq!(
            blake3::hash(&served),
            f.hash,
            "blob file for {} holds the signed bytes",
            f.path
        );
    }
    store.close().await;

    let store = Store::open(options(&data, &[&publisher], 2)).await.unwrap();
    assert_eq!(store.releases().len(), 1, "release survives a restart");
    assert!(store.problems().is_empty());
    let report = store.verify(&mut |_| {});
    assert!(report.is_clean(), "{report:?}");
    assert_eq!(report.files, 2);
    // The next publish of the same name gets the next version by default.
    let accepted = publish_to_store(&store, &publisher, &spec, &mut |_| {})
        .await
        .unwrap();
    assert_eq!(accepted.version, 2);
    store.close().await;
}

#[tokio::test]
async fn two_images_sharing_a_kernel_store_it_once() {
    let tmp = tempfile::tempdir().unwrap();
    let (src, data) = (tmp.path().join("src"), tmp.path().join("data"));
    fs::create_dir(&src).unwrap();
    let publisher = key(1);
    let store = Store::open(options(&data, &[&publisher], 2)).await.unwrap();
    let kernel = write(&src, "vmlinuz", &content(7, 2_000_000));
    let a = linux_spec(
        "rescue",
        kernel.clone(),
        write(&src, "initrd-a", &content(8, 100_000)),
    );
    let b = linux_spec(
        "installer",
        kernel,
        write(&src, "initrd-b", &content(9, 100_000)),
    );
    publish_to_store(&store, &publisher, &a, &mut |_| {})
        .await
        .unwrap();
    publish_to_store(&store, &publisher, &b, &mut |_| {})
        .await
        .unwrap();
    assert_eq!(store.releases().len(), 2);
    let mut expected = vec![
        data_name(&content(7, 2_000_000)),
        data_name(&content(8, 100_000)),
        data_name(&content(9, 100_000)),
    ];
    expected.sort();
    assert_eq!(
        blob_files(&data),
        expected,
        "three distinct files, the shared kernel once"
    );
    store.close().await;
}

#[tokio::test]
async fn untrusted_publisher_is_refused_and_nothing_is_visible() {
    let tmp = tempfile::tempdir().unwrap();
    let (src, data) = (tmp.path().join("src"), tmp.path().join("data"));
    fs::create_dir(&src).unwrap();
    let (trusted, stranger) = (key(1), key(2));
    let store = Store::open(options(&data, &[&trusted], 2)).await.unwrap();
    let spec = linux_spec(
        "debian",
        write(&src, "vmlinuz", &content(1, 1000)),
        write(&src, "initrd.img", &content(2, 1000)),
    );
    let err = publish_to_store(&store, &stranger, &spec, &mut |_| {})
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains(&stranger.public().to_string()),
        "{err}"
    );
    assert!(err.to_string().contains("not a trusted publisher"), "{err}");
    assert!(store.releases().is_empty());
    assert!(!data.join("releases/debian").exists());
    assert!(
        blob_files(&data).is_empty(),
        "refused before hashing: nothing was copied in"
    );

    // The same through a bundle signed by the stranger.
    let bundle = tmp.path().join("bundle");
    publish_to_bundle(&bundle, &stranger, &spec, &mut |_| {}).unwrap();
    let err = store
        .import_bundle(&bundle, &mut |_, _| {})
        .await
        .unwrap_err();
    assert!(
        matches!(err, AcceptError::Refused(Refusal::Untrusted(k)) if k == stranger.public()),
        "{err}"
    );
    assert!(store.releases().is_empty());
    store.close().await;
}

/// Bundles of `debian` v1 and v2 (same files), in `tmp`.
fn two_versions(tmp: &Path, publisher: &SecretKey) -> (PathBuf, PathBuf) {
    let src = tmp.join("src");
    fs::create_dir_all(&src).unwrap();
    let mut spec = linux_spec(
        "debian",
        write(&src, "vmlinuz", &content(1, 1000)),
        write(&src, "initrd.img", &content(2, 1000)),
    );
    let mut bundle = |v: u64| {
        spec.version = Some(v);
        let out = tmp.join(format!("bundle-{v}"));
        publish_to_bundle(&out, publisher, &spec, &mut |_| {}).unwrap();
        out
    };
    (bundle(1), bundle(2))
}

#[tokio::test]
async fn replayed_or_equal_versions_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let publisher = key(1);
    let (v1, v2) = two_versions(tmp.path(), &publisher);
    let store = Store::open(options(&data, &[&publisher], 2)).await.unwrap();
    store.import_bundle(&v2, &mut |_, _| {}).await.unwrap();
    for old in [&v1, &v2] {
        let err = store.import_bundle(old, &mut |_, _| {}).await.unwrap_err();
        assert!(
            matches!(
                err,
                AcceptError::Refused(Refusal::NotNewer { current: 2, .. })
            ),
            "{err}"
        );
    }
    assert_eq!(
        store.versions().get(&"debian".parse().unwrap()),
        Some(&vec![2])
    );
    store.close().await;
    // Rollback protection survives a restart.
    let store = Store::open(options(&data, &[&publisher], 2)).await.unwrap();
    let err = store.import_bundle(&v1, &mut |_, _| {}).await.unwrap_err();
    assert!(
        matches!(err, AcceptError::Refused(Refusal::NotNewer { .. })),
        "{err}"
    );
    store.close().await;
}

#[tokio::test]
async fn expired_release_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let publisher = key(1);
    // Signed long ago with an expiry in the past: a captured old release replayed today.
    let payload = content(3, 4000);
    let release = build_and_sign(
        ReleaseSpec {
            name: "old".parse().unwrap(),
            version: 1,
            created: 1_000_000,
            expires: Some(2_000_000),
            publisher: publisher.public(),
            files: vec![FileEntry {
                path: "f".parse().unwrap(),
                size: payload.len() as u64,
                hash: blake3::hash(&payload),
            }],
            boot: None,
        },
        &publisher,
    )
    .unwrap();
    let bundle = tmp.path().join("bundle");
    fs::create_dir_all(bundle.join("files")).unwrap();
    fs::write(bundle.join("files/f"), &payload).unwrap();
    fs::write(bundle.join(BUNDLE_RELEASE_FILE), release.signed().encode()).unwrap();
    let store = Store::open(options(&data, &[&publisher], 2)).await.unwrap();
    let err = store
        .import_bundle(&bundle, &mut |_, _| {})
        .await
        .unwrap_err();
    assert!(
        matches!(err, AcceptError::Refused(Refusal::Expired { .. })),
        "{err}"
    );
    assert!(store.releases().is_empty());
    assert!(
        blob_files(&data).is_empty(),
        "refused before any file was read"
    );
    store.close().await;
}

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            fs::copy(entry.path(), target).unwrap();
        }
    }
}

#[tokio::test]
async fn a_flipped_bit_in_any_bundle_file_or_the_release_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    fs::create_dir(&src).unwrap();
    let publisher = key(1);
    let spec = linux_spec(
        "debian",
        write(&src, "vmlinuz", &content(1, 200_000)),
        write(&src, "initrd.img", &content(2, 3000)),
    );
    let pristine = tmp.path().join("pristine");
    publish_to_bundle(&pristine, &publisher, &spec, &mut |_| {}).unwrap();

    for (i, target) in ["files/vmlinuz", "files/initrd.img", BUNDLE_RELEASE_FILE]
        .iter()
        .enumerate()
    {
        for (j, fraction) in [0.0, 0.5, 1.0].iter().enumerate() {
            let bundle = tmp.path().join(format!("b-{i}-{j}"));
            copy_dir(&pristine, &bundle);
            let path = bundle.join(target);
            let mut bytes = fs::read(&path).unwrap();
            let at = ((bytes.len() - 1) as f64 * fraction) as usize;
            bytes[at] ^= 0x10;
            fs::write(&path, &bytes).unwrap();
            let data = tmp.path().join(format!("data-{i}-{j}"));
            let store = Store::open(options(&data, &[&publisher], 2)).await.unwrap();
            let err = store
                .import_bundle(&bundle, &mut |_, _| {})
                .await
                .unwrap_err();
            if *target == BUNDLE_RELEASE_FILE {
                assert!(
                    matches!(err, AcceptError::Decode(..)),
                    "{target}@{at}: {err}"
                );
            } else {
                assert!(
                    matches!(err, AcceptError::HashMismatch { .. }),
                    "{target}@{at}: {err}"
                );
                let file = target.trim_start_matches("files/");
                assert!(
                    err.to_string().contains(file),
                    "error names the file: {err}"
                );
            }
            assert!(store.releases().is_empty(), "{target}");
            store.close().await;
            // Nothing of it after a restart either.
            let store = Store::open(options(&data, &[&publisher], 2)).await.unwrap();
            assert!(store.releases().is_empty() && store.problems().is_empty());
            store.close().await;
        }
    }
    // The untouched bundle imports fine.
    let store = Store::open(options(&tmp.path().join("data-ok"), &[&publisher], 2))
        .await
        .unwrap();
    store
        .import_bundle(&pristine, &mut |_, _| {})
        .await
        .unwrap();
    assert_eq!(store.releases().len(), 1);
    store.close().await;
}

#[tokio::test]
async fn damage_on_disk_is_found_and_a_damaged_release_file_is_not_served() {
    let tmp = tempfile::tempdir().unwrap();
    let (src, data) = (tmp.path().join("src"), tmp.path().join("data"));
    fs::create_dir(&src).unwrap();
    let publisher = key(1);
    let store = Store::open(options(&data, &[&publisher], 2)).await.unwrap();
    let a = linux_spec(
        "a",
        write(&src, "vmlinuz", &content(1, 500_000)),
        write(&src, "initrd-a", &content(2, 1000)),
    );
    let b = linux_spec(
        "b",
        write(&src, "k2", &content(3, 1000)),
        write(&src, "initrd-b", &content(4, 1000)),
    );
    publish_to_store(&store, &publisher, &a, &mut |_| {})
        .await
        .unwrap();
    publish_to_store(&store, &publisher, &b, &mut |_| {})
        .await
        .unwrap();
    // Behind the store's back: one bit of a's kernel on disk.
    let kernel = store.blob_path(&blake3::hash(&content(1, 500_000)));
    let mut bytes = fs::read(&kernel).unwrap();
    bytes[123_456] ^= 1;
    fs::write(&kernel, &bytes).unwrap();
    let report = store.verify(&mut |_| {});
    assert!(!report.is_clean());
    assert_eq!(report.damage.len(), 1, "{:?}", report.damage);
    assert_eq!(report.damage[0].name.as_str(), "a");
    assert_eq!(report.damage[0].path.as_str(), "vmlinuz");
    assert!(report.damage[0].what.contains("content damaged"));
    store.close().await;

    // And one bit of b's release file.
    let file = data.join("releases/b/00000000000000000001.release");
    let mut bytes = fs::read(&file).unwrap();
    bytes[40] ^= 4;
    fs::write(&file, &bytes).unwrap();
    let store = Store::open(options(&data, &[&publisher], 2)).await.unwrap();
    let names: Vec<String> = store
        .releases()
        .iter()
        .map(|r| r.verified.name.to_string())
        .collect();
    assert_eq!(names, ["a"], "the damaged release is not servable");
    assert!(matches!(&store.problems()[..], [Problem::Damaged { file: f, .. }] if *f == file));
    assert!(!store.verify(&mut |_| {}).is_clean());
    // A damaged newest release still blocks a replay of an older version.
    assert_eq!(store.high_water(&"b".parse().unwrap()), Some(1));
    store.close().await;
}

#[tokio::test]
async fn retention_keeps_newest_versions_and_collects_their_blobs() {
    let tmp = tempfile::tempdir().unwrap();
    let (src, data) = (tmp.path().join("src"), tmp.path().join("data"));
    fs::create_dir(&src).unwrap();
    let publisher = key(1);
    let store = Store::open(options(&data, &[&publisher], 2)).await.unwrap();
    let kernel = write(&src, "vmlinuz", &content(1, 100_000));
    for v in 1..=3u64 {
        let spec = linux_spec(
            "deb",
            kernel.clone(),
            write(&src, "initrd.img", &content(100 + v, 50_000)),
        );
        let accepted = publish_to_store(&store, &publisher, &spec, &mut |_| {})
            .await
            .unwrap();
        assert_eq!(accepted.dropped, if v == 3 { vec![1] } else { vec![] });
    }
    assert_eq!(
        store.versions().get(&"deb".parse().unwrap()),
        Some(&vec![2, 3])
    );
    assert!(!data
        .join("releases/deb/00000000000000000001.release")
        .exists());
    let files = blob_files(&data);
    assert!(
        !files.contains(&data_name(&content(101, 50_000))),
        "v1's own initrd was collected: {files:?}"
    );
    assert!(
        files.contains(&data_name(&content(1, 100_000))),
        "the kernel shared with v2/v3 stays"
    );
    assert_eq!(files.len(), 3, "{files:?}");
    assert!(store.verify(&mut |_| {}).is_clean());
    store.close().await;
    // Lowering keep_versions applies at the next start.
    let store = Store::open(options(&data, &[&publisher], 1)).await.unwrap();
    assert_eq!(
        store.versions().get(&"deb".parse().unwrap()),
        Some(&vec![3])
    );
    assert_eq!(blob_files(&data).len(), 2);
    store.close().await;
}

#[tokio::test]
async fn a_second_opener_of_the_data_dir_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let publisher = key(1);
    let store = Store::open(options(&data, &[&publisher], 2)).await.unwrap();
    let err = Store::open(options(&data, &[&publisher], 2))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Busy { .. }), "{err}");
    assert!(
        err.to_string()
            .contains(&format!("pid {}", std::process::id())),
        "{err}"
    );
    store.close().await;
    // Released on close.
    Store::open(options(&data, &[&publisher], 2))
        .await
        .unwrap()
        .close()
        .await;
}

#[tokio::test]
async fn a_foreign_directory_is_not_taken_over() {
    let tmp = tempfile::tempdir().unwrap();
    fs::write(tmp.path().join("thesis.tex"), b"precious").unwrap();
    let err = Store::open(options(tmp.path(), &[&key(1)], 2))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::UnknownFormat { .. }), "{err}");
    assert_eq!(
        fs::read(tmp.path().join("thesis.tex")).unwrap(),
        b"precious"
    );
    let left: Vec<_> = fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(left, ["thesis.tex"], "a refused directory is left as found");
}

#[tokio::test]
async fn a_deleted_release_file_does_not_lower_the_version_floor() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let publisher = key(1);
    let (v1, v2) = two_versions(tmp.path(), &publisher);
    let store = Store::open(options(&data, &[&publisher], 2)).await.unwrap();
    store.import_bundle(&v2, &mut |_, _| {}).await.unwrap();
    let v2_file = store.releases()[0].file.clone();
    store.close().await;
    fs::remove_file(&v2_file).unwrap();
    let store = Store::open(options(&data, &[&publisher], 2)).await.unwrap();
    assert!(store.releases().is_empty());
    assert_eq!(store.high_water(&"debian".parse().unwrap()), Some(2));
    let err = store.import_bundle(&v1, &mut |_, _| {}).await.unwrap_err();
    assert!(
        matches!(
            err,
            AcceptError::Refused(Refusal::NotNewer { current: 2, .. })
        ),
        "{err}"
    );
    store.close().await;
}

/// Publishes two releases sharing a kernel, and a third whose only file will be damaged.
async fn three_releases(tmp: &Path, data: &Path, publisher: &SecretKey) -> Vec<(String, Vec<u8>)> {
    let src = tmp.join("src");
    fs::create_dir_all(&src).unwrap();
    let store = Store::open(options(data, &[publisher], 2)).await.unwrap();
    let kernel = write(&src, "vmlinuz", &content(7, 300_000));
    for (name, seed) in [("rescue", 8), ("installer", 9)] {
        let spec = linux_spec(
            name,
            kernel.clone(),
            write(&src, name, &content(seed, 50_000)),
        );
        publish_to_store(&store, publisher, &spec, &mut |_| {})
            .await
            .unwrap();
    }
    let mut iso = linux_spec("doomed", kernel.clone(), kernel.clone());
    iso.kernel = None;
    iso.initrds = vec![];
    iso.cmdline = String::new();
    iso.files = vec![write(&src, "doomed.img", &content(10, 40_000))];
    publish_to_store(&store, publisher, &iso, &mut |_| {})
        .await
        .unwrap();
    store.close().await;
    vec![
        ("vmlinuz".into(), content(7, 300_000)),
        ("rescue".into(), content(8, 50_000)),
        ("installer".into(), content(9, 50_000)),
        ("doomed.img".into(), content(10, 40_000)),
    ]
}

#[tokio::test]
async fn a_damaged_or_missing_blob_index_is_named_and_repair_restores_what_verifies() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let publisher = key(1);
    let files = three_releases(tmp.path(), &data, &publisher).await;
    let db = data.join("blobs/blobs.db");

    // Damage: a page of garbage where redb keeps its tree (it panics on this).
    let mut bytes = fs::read(&db).unwrap();
    bytes[4096..8192].fill(0x5a);
    fs::write(&db, &bytes).unwrap();
    let err = Store::open(options(&data, &[&publisher], 2))
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, StoreError::IndexDamaged { .. }), "{text}");
    assert!(
        text.contains(&db.display().to_string()) && text.contains("netboot repair"),
        "{text}"
    );
    assert!(!text.contains('\n'), "one line: {text}");

    // And one release's data damaged behind the store's back.
    fs::write(
        data.join(format!("blobs/data/{}", data_name(&files[3].1))),
        b"rot",
    )
    .unwrap();
    let report = netboot_node::store::repair(&options(&data, &[&publisher], 2))
        .await
        .unwrap();
    let mut restored: Vec<String> = report
        .restored
        .iter()
        .map(|(n, v)| format!("{n} v{v}"))
        .collect();
    restored.sort();
    assert_eq!(restored, ["installer v1", "rescue v1"], "{report:?}");
    assert_eq!(report.failed.len(), 1, "{report:?}");
    assert!(report.failed[0].1.contains("doomed.img"), "{report:?}");
    assert_eq!(report.blobs_verified, 4, "every blob re-hashed once");

    let check = |store: &Store| {
        assert_eq!(store.releases().len(), 2);
        for r in store.releases() {
            for f in &r.verified.files {
                let served = fs::read(store.blob_path(&f.hash)).unwrap();
                assert!(files.iter().any(|(_, d)| *d == served));
                assert_eq!(blake3::hash(&served), f.hash);
            }
        }
        assert_eq!(store.problems().len(), 1, "doomed stays not servable");
        assert!(store.verify(&mut |_| {}).damage.is_empty());
    };
    let store = Store::open(options(&data, &[&publisher], 2)).await.unwrap();
    check(&store);
    store.close().await;

    // Deleted: refused with its own sentence (not "0 releases"), then repaired the same way.
    fs::remove_file(&db).unwrap();
    let err = Store::open(options(&data, &[&publisher], 2))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::IndexMissing { .. }), "{err}");
    assert!(err.to_string().contains("netboot repair"), "{err}");
    let report = netboot_node::store::repair(&options(&data, &[&publisher], 2))
        .await
        .unwrap();
    assert_eq!(report.restored.len(), 2, "{report:?}");
    let store = Store::open(options(&data, &[&publisher], 2)).await.unwrap();
    check(&store);
    store.close().await;
    assert!(!data.join("blobs/repair").exists());
}

#[tokio::test]
async fn staged_files_of_an_unfinished_publish_are_invisible_and_collected() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let publisher = key(1);
    let store = Store::open(options(&data, &[&publisher], 2)).await.unwrap();
    let source: PathBuf = tmp.path().join("x");
    fs::write(&source, content(5, 70_000)).unwrap();
    let staged = store.stage_file(&source, &mut |_| {}).await.unwrap();
    assert_eq!(staged.hash, blake3::hash(&content(5, 70_000)));
    assert_eq!(blob_files(&data).len(), 1);
    drop(staged);
    assert!(store.releases().is_empty());
    store.collect_garbage().await.unwrap();
    assert!(blob_files(&data).is_empty(), "{:?}", blob_files(&data));
    store.close().await;
}
