//! What every `ObjectStore` adapter must do, as tests any adapter runs over its own backend
//! (the filesystem in ferry-local's tests, S3 on moto in ferry-aws's): conditional writes,
//! listings, and ferry's records built on top of them holding under concurrent writers. A new
//! backend (DynamoDB, GCS, Azure Blob) passes these before anything else.

use ferry_core::audit::{Draft, EventFilter, EventKind};
use ferry_core::ids::{Actor, PipelineName, ReleaseId, Sha256Digest};
use ferry_core::ports::{AuditLog, ObjectStore, Write};

/// Create-if-absent, replace- and delete-if-version, listings by prefix from a marker, and
/// several reads at once, on a store with nothing under `prefix` yet.
pub fn object_store(o: &dyn ObjectStore, prefix: &str) {
    let k = |rel: &str| format!("{prefix}{rel}");
    let Write::Done(v1) = o.create(&k("a/b.json"), b"one").unwrap() else { panic!("not created") };
    assert_eq!(o.create(&k("a/b.json"), b"two").unwrap(), Write::Conflict, "create-if-absent");
    assert_eq!(o.get(&k("a/b.json")).unwrap().unwrap().bytes, b"one", "the first write stays");
    let Write::Done(v2) = o.replace(&k("a/b.json"), b"two", &v1).unwrap() else { panic!("not replaced") };
    assert_eq!(o.replace(&k("a/b.json"), b"three", &v1).unwrap(), Write::Conflict, "replace-if-version");
    assert_eq!(o.delete(&k("a/b.json"), &v1).unwrap(), Write::Conflict, "delete-if-version");
    assert_eq!(o.replace(&k("absent.json"), b"x", &v1).unwrap(), Write::Conflict, "nothing to replace");
    o.create(&k("a/c/d.json"), b"d").unwrap();
    o.create(&k("ab.json"), b"e").unwrap();
    assert_eq!(o.list(&k("a/"), None).unwrap(), [k("a/b.json"), k("a/c/d.json")], "a prefix, at any depth");
    assert_eq!(o.list(&k("a"), None).unwrap(), [k("a/b.json"), k("a/c/d.json"), k("ab.json")]);
    assert_eq!(o.list(&k("a/"), Some(&k("a/b.json"))).unwrap(), [k("a/c/d.json")], "after a marker");
    let many = o.get_many(&[k("ab.json"), k("missing"), k("a/b.json")]).unwrap();
    let bytes: Vec<Option<Vec<u8>>> = many.into_iter().map(|m| m.map(|o| o.bytes)).collect();
    assert_eq!(bytes, [Some(b"e".to_vec()), None, Some(b"two".to_vec())], "in the order asked");
    assert_eq!(o.delete(&k("a/b.json"), &v2).unwrap(), Write::Done(v2));
    assert!(o.get(&k("a/b.json")).unwrap().is_none());
}

/// `writers` threads, each with a log of its own from `open` (as separate processes would
/// have), append `each` events at once, in appends of one to three events (writer 0's name a
/// release): one chain, every full segment sealed, the release's events found through the
/// index, each append's events consecutive.
pub fn concurrent_appends(open: &(dyn Fn() -> Box<dyn AuditLog> + Sync), writers: usize, each: usize, segment_size: u64) {
    let p: PipelineName = "p".parse().unwrap();
    let r = ReleaseId::for_manifest(&Sha256Digest::of(b"conformance"));
    std::thread::scope(|scope| {
        for t in 0..writers {
            let (p, r) = (&p, &r);
            scope.spawn(move || {
                let audit = open();
                let actor: Actor = format!("writer-{t}").parse().unwrap();
                let mut i = 0;
                while i < each {
                    let n = (1 + (i + t) % 3).min(each - i);
                    let drafts: Vec<Draft> = (i..i + n)
                        .map(|j| {
                            let d = Draft::new(EventKind::Build, &actor, p).details(serde_json::json!({"i": j}));
                            if t == 0 { d.release(r) } else { d }
                        })
                        .collect();
                    let events = audit.append_all(drafts).unwrap();
                    assert_eq!(events.len(), n);
                    assert!(events.windows(2).all(|w| w[1].seq == w[0].seq + 1 && w[1].prev_hash == w[0].hash), "one append, one run");
                    i += n;
                }
            });
        }
    });
    let audit = open();
    let n = (writers * each) as u64;
    let report = audit.verify(None).unwrap();
    assert_eq!((report.events, report.first_bad.clone()), (n, None), "{report:?}");
    assert_eq!(report.sealed_segments, n / segment_size, "every full segment is sealed: {report:?}");
    let mine = audit.events(&EventFilter { release: Some(r), ..EventFilter::default() }).unwrap();
    assert_eq!(mine.len(), each, "a release's events come through the index");
    assert!(mine.windows(2).all(|w| w[0].seq < w[1].seq));
}
