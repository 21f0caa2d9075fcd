//! ferry's records (ferry-core's storage layer) over the filesystem adapter: state updates are
//! never lost, exactly one process takes a stale lock over, and the audit log seals segments
//! and stays one chain under concurrent writers.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use ferry_core::audit::{Draft, EventFilter, EventKind};
use ferry_core::ids::{Actor, PipelineName, ReleaseId, Sha256Digest, StageName};
use ferry_core::ports::{Acquired, LockInfo, ObjectStore, Write};
use ferry_core::state::{StageRecord, StageStatus, Step};
use ferry_core::storage::{self, Backing, Records};
use ferry_local::liveness::ProcessLiveness;
use ferry_local::objects::FsObjects;

fn records(dir: &std::path::Path, segment_size: u64) -> Records {
    storage::open(Backing {
        objects: Arc::new(FsObjects::new(dir.join("store"))),
        audit: Arc::new(FsObjects::new(dir.join("audit"))),
        trust: Arc::new(FsObjects::new(dir.join("trust"))),
        liveness: Arc::new(ProcessLiveness::default()),
        clock: Arc::new(ferry_core::clock::SystemClock),
        segment_size,
        after_write: None,
        keep_copies: None,
    })
}

fn ids() -> (PipelineName, StageName, ReleaseId, Actor) {
    let r = ReleaseId::for_manifest(&Sha256Digest::of(b"m"));
    ("p".parse().unwrap(), "prod".parse().unwrap(), r, "a".parse().unwrap())
}

#[test]
fn a_write_based_on_a_stale_version_conflicts_instead_of_losing_an_update() {
    let dir = tempfile::tempdir().unwrap();
    let state = records(dir.path(), 1000).state;
    let (p, s, r, a) = ids();
    let mut rec = StageRecord::new(&p, &r, &s, &a, ferry_core::clock::Timestamp::from_unix(1_767_000_000));
    let Write::Done(v1) = state.write_stage(&rec, None).unwrap() else { panic!("not written") };
    rec.apply(Step::BeginDeploy { fresh: true }).unwrap();
    assert_eq!(state.write_stage(&rec, None).unwrap(), Write::Conflict, "create-if-absent");
    let Write::Done(v2) = state.write_stage(&rec, Some(&v1)).unwrap() else { panic!("not written") };
    rec.apply(Step::Stop { before: "deploy action 0".into(), reason: "test".into() }).unwrap();
    assert_eq!(state.write_stage(&rec, Some(&v1)).unwrap(), Write::Conflict, "replace-if-unchanged");
    let read = state.read_stage(&p, &r, &s).unwrap().unwrap();
    assert_eq!((read.revision, read.value.status()), (v2, StageStatus::InProgress));
}

#[test]
fn a_held_lock_is_reported_with_its_holder_and_is_not_stale_while_we_live() {
    let dir = tempfile::tempdir().unwrap();
    let locks = records(dir.path(), 1000).locks;
    let (p, s, r, a) = ids();
    let Acquired::Taken(ours) = locks.try_acquire(&p, &s, &r, &a, Duration::from_secs(60)).unwrap() else { panic!("not taken") };
    let b: Actor = "b".parse().unwrap();
    match locks.try_acquire(&p, &s, &r, &b, Duration::from_secs(60)).unwrap() {
        Acquired::Held { lock, stale, .. } => {
            assert_eq!(lock.holder, a);
            assert!(!stale);
        }
        Acquired::Taken(_) => panic!("a second holder got the lock"),
    }
    assert!(locks.take_over(&ours, &b, Duration::from_secs(60)).unwrap().is_none(), "a live lock cannot be taken over");
    locks.release(&ours).unwrap();
    assert!(matches!(locks.try_acquire(&p, &s, &r, &b, Duration::from_secs(60)).unwrap(), Acquired::Taken(_)));
}

#[test]
fn a_lock_of_a_dead_process_is_stale_and_only_one_process_takes_it_over() {
    let dir = tempfile::tempdir().unwrap();
    let locks = records(dir.path(), 1000).locks;
    let (p, s, r, a) = ids();
    let mut dead = LockInfo::new(
        &p,
        &s,
        &r,
        &a,
        ferry_core::ports::Clock::now(&ferry_core::clock::SystemClock),
        Duration::from_secs(3600),
        &ferry_local::liveness::host_name(),
        "t".into(),
    );
    dead.pid = u32::MAX - 1; // no such process
    let objects = FsObjects::new(dir.path().join("store"));
    objects.create("locks/p/prod.lock", &serde_json::to_vec(&dead).unwrap()).unwrap();
    let Some((_, stale)) = locks.inspect(&p, &s).unwrap() else { panic!("no lock") };
    assert!(stale);
    let winners: Vec<bool> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..8)
            .map(|i| {
                let (locks, dead) = (&locks, &dead);
                scope.spawn(move || locks.take_over(dead, &format!("t{i}").parse().unwrap(), Duration::from_secs(60)).unwrap().is_some())
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(winners.iter().filter(|w| **w).count(), 1, "{winners:?}");
}

#[test]
fn the_directory_adapter_passes_the_object_store_conformance_tests() {
    let dir = tempfile::tempdir().unwrap();
    ferry_testkit::conformance::object_store(&FsObjects::new(dir.path().to_owned()), "c/");
    ferry_testkit::conformance::concurrent_appends(&|| records(dir.path(), 5).audit, 4, 10, 5);
}

#[test]
fn events_after_a_position_are_read_from_there() {
    let dir = tempfile::tempdir().unwrap();
    let audit = records(dir.path(), 5).audit;
    let (p, _, _, a) = ids();
    for _ in 0..40 {
        audit.append(Draft::new(EventKind::Build, &a, &p)).unwrap();
    }
    let after = audit.events(&EventFilter { after: Some(33), ..EventFilter::default() }).unwrap();
    assert_eq!(after.iter().map(|e| e.seq).collect::<Vec<_>>(), (34..=40).collect::<Vec<_>>());
}

#[test]
fn an_edited_line_of_a_sealed_segment_is_pinpointed() {
    let dir = tempfile::tempdir().unwrap();
    let audit = records(dir.path(), 4).audit;
    let (p, _, _, a) = ids();
    for i in 0..10 {
        audit.append(Draft::new(EventKind::Build, &a, &p).details(serde_json::json!({"i": i}))).unwrap();
    }
    let seg = dir.path().join("audit/segments/00000001.jsonl");
    let text = std::fs::read_to_string(&seg).unwrap().replace("\"i\":6", "\"i\":60");
    std::fs::write(&seg, text).unwrap();
    let bad = audit.verify(None).unwrap().first_bad.unwrap();
    assert_eq!(bad.seq, 7, "{bad:?}");
    assert!(bad.problem.contains("does not match its own hash"), "{bad:?}");
    // Removing a whole sealed segment (and its events) shows as a gap.
    std::fs::remove_file(&seg).unwrap();
    std::fs::remove_dir_all(dir.path().join("audit/events/00000001")).unwrap();
    let bad = audit.verify(None).unwrap().first_bad.unwrap();
    assert_eq!(bad.seq, 5, "{bad:?}");
}

#[test]
fn a_log_image_is_what_appends_would_have_written() {
    let dir = tempfile::tempdir().unwrap();
    let (p, _, r, a) = ids();
    let drafts = (0..23).map(|i| {
        let d = Draft::new(EventKind::Build, &a, &p).details(serde_json::json!({"i": i}));
        if i % 7 == 0 { d.release(&r) } else { d }
    });
    let root = dir.path().join("audit");
    let n = storage::audit::write_image(drafts, 5, ferry_core::clock::Timestamp::from_unix(1_767_000_000), &mut |key, bytes| {
        let path = root.join(&key);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, bytes).unwrap();
        Ok(())
    })
    .unwrap();
    assert_eq!(n, 23);
    let audit = records(dir.path(), 1000).audit;
    let report = audit.verify(None).unwrap();
    assert_eq!((report.events, report.sealed_segments, report.first_bad.clone()), (23, 4, None), "{report:?}");
    assert_eq!(audit.events(&EventFilter { release: Some(r.clone()), ..EventFilter::default() }).unwrap().len(), 4);
    // And it goes on from there: the 25th event seals the fifth segment.
    for _ in 0..2 {
        audit.append(Draft::new(EventKind::Build, &a, &p)).unwrap();
    }
    assert_eq!(audit.verify(None).unwrap().sealed_segments, 5);
}

#[test]
fn an_append_of_several_events_is_one_object_cut_at_a_segments_end_and_one_write_while_alone() {
    let dir = tempfile::tempdir().unwrap();
    let audit = records(dir.path(), 5).audit;
    let (p, _, _, a) = ids();
    let drafts = |n: usize| (0..n).map(|i| Draft::new(EventKind::Build, &a, &p).details(serde_json::json!({"i": i}))).collect::<Vec<_>>();
    let events = audit.append_all(drafts(7)).unwrap();
    assert_eq!(events.iter().map(|e| e.seq).collect::<Vec<_>>(), (1..=7).collect::<Vec<_>>());
    let objects = FsObjects::new(dir.path().join("audit"));
    assert_eq!(objects.list("events/", None).unwrap(), ["events/00000000/000000000001.json", "events/00000001/000000000006.json"]);
    let lines = |key: &str| String::from_utf8(objects.get(key).unwrap().unwrap().bytes).unwrap().lines().count();
    assert_eq!((lines("events/00000000/000000000001.json"), lines("events/00000001/000000000006.json")), (5, 2));
    let report = audit.verify(None).unwrap();
    assert_eq!((report.events, report.sealed_segments, report.first_bad.clone()), (7, 1, None), "{report:?}");
    // Alone, the writer knows where its appends end: the next one is a single create.
    let before = std::fs::read_dir(dir.path().join("audit/events/00000001")).unwrap().count();
    audit.append_all(drafts(2)).unwrap();
    assert_eq!(std::fs::read_dir(dir.path().join("audit/events/00000001")).unwrap().count(), before + 1);
    // The head lags until the writer goes away (a command ends), then names its last event.
    let head = || serde_json::from_slice::<serde_json::Value>(&objects.get("head.json").unwrap().unwrap().bytes).unwrap()["seq"].clone();
    assert_eq!(head(), 7, "moved when the append sealed segment 0");
    drop(audit);
    assert_eq!(head(), 9);
}

#[test]
fn writers_that_do_not_see_each_other_walk_past_each_others_appends() {
    let dir = tempfile::tempdir().unwrap();
    let (p, _, _, a) = ids();
    let (one, two) = (records(dir.path(), 4).audit, records(dir.path(), 4).audit);
    let drafts = |who: &str, n: usize| {
        (0..n).map(|_| Draft::new(EventKind::Build, &a, &p).details(serde_json::json!({"by": who}))).collect::<Vec<_>>()
    };
    one.append_all(drafts("one", 2)).unwrap();
    // `two` starts where the (lagging) head says, finds `one`'s events and goes on after them.
    assert_eq!(two.append_all(drafts("two", 3)).unwrap()[0].seq, 3);
    // `one` remembers where its own appends ended, which is stale now: it walks on too.
    assert_eq!(one.append_all(drafts("one", 1)).unwrap()[0].seq, 6);
    assert_eq!(two.append(Draft::new(EventKind::Build, &a, &p)).unwrap().seq, 7);
    let report = records(dir.path(), 4).audit.verify(None).unwrap();
    assert_eq!((report.events, report.sealed_segments, report.first_bad.clone()), (7, 1, None), "{report:?}");
}
