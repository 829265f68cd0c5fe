//! The real binary driven by the Rust `zookeeper-client` crate: every create mode, Stat rules,
//! errors, multi, watches, ACLs, sessions.

use std::time::Duration;

use paddock_tests::ServerProcess;
use zookeeper_client as zk;

async fn connect(server: &ServerProcess) -> zk::Client {
    zk::Client::connector()
        .with_session_timeout(Duration::from_millis(4000))
        .connect(&server.connect_string())
        .await
        .expect("connect")
}

fn open() -> zk::CreateOptions<'static> {
    zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all())
}

async fn next_event(w: zk::OneshotWatcher) -> zk::WatchedEvent {
    tokio::time::timeout(Duration::from_secs(10), w.changed()).await.expect("watch event within 10 s")
}

#[tokio::test(flavor = "multi_thread")]
async fn every_create_mode_makes_the_right_node() {
    let server = ServerProcess::paddock(2, "");
    let c = connect(&server).await;
    c.create("/modes", b"", &open()).await.expect("parent");
    let (_, seq) = c
        .create("/modes/s-", b"", &zk::CreateMode::PersistentSequential.with_acls(zk::Acls::anyone_all()))
        .await
        .expect("seq");
    assert_eq!(seq.into_i64(), 0, "suffix is the parent's count of creations so far");
    let (stat, _) = c
        .create("/modes/e", b"", &zk::CreateMode::Ephemeral.with_acls(zk::Acls::anyone_all()))
        .await
        .expect("ephemeral");
    assert_eq!(stat.ephemeral_owner, c.session_id().0);
    let (_, seq) = c
        .create("/modes/es-", b"", &zk::CreateMode::EphemeralSequential.with_acls(zk::Acls::anyone_all()))
        .await
        .expect("eseq");
    assert_eq!(seq.into_i64(), 2);
    let (stat, _) = c
        .create("/modes/c", b"", &zk::CreateMode::Container.with_acls(zk::Acls::anyone_all()))
        .await
        .expect("container");
    assert_eq!(stat.ephemeral_owner, 0, "containers report no owner");
    let ttl = zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all()).with_ttl(Duration::from_secs(60));
    let (stat, _) = c.create("/modes/t", b"", &ttl).await.expect("ttl");
    assert_eq!(stat.ephemeral_owner, 0, "TTL nodes report no owner");
    let mut children = c.list_children("/modes").await.expect("ls");
    children.sort();
    assert_eq!(children, vec!["c", "e", "es-0000000002", "s-0000000000", "t"]);
    assert_eq!(c.list_ephemerals("/modes").await.expect("ephemerals").len(), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn stat_fields_follow_zookeepers_rules() {
    let server = ServerProcess::paddock(2, "");
    let c = connect(&server).await;
    let (created, _) = c.create("/st", b"abc", &open()).await.expect("create");
    assert_eq!(created.czxid, created.mzxid);
    assert_eq!(created.pzxid, created.czxid, "a new node's pzxid is its czxid");
    assert_eq!((created.version, created.cversion, created.aversion), (0, 0, 0));
    assert_eq!((created.data_length, created.num_children), (3, 0));
    assert_eq!(created.ctime, created.mtime);

    let set = c.set_data("/st", b"abcdef", Some(0)).await.expect("set");
    assert_eq!(set.version, 1);
    assert!(set.mzxid > created.mzxid);
    assert_eq!((set.czxid, set.ctime, set.data_length), (created.czxid, created.ctime, 6));
    assert_eq!(set.pzxid, created.pzxid, "setData leaves pzxid alone");

    c.create("/st/a", b"", &open()).await.expect("child a");
    let (child_b, _) = c.create("/st/b", b"", &open()).await.expect("child b");
    c.delete("/st/a", None).await.expect("delete a");
    let (_, parent) = c.get_data("/st").await.expect("get");
    assert_eq!(parent.num_children, 1);
    assert_eq!(parent.cversion, 3, "two creations and one deletion");
    assert!(parent.pzxid > child_b.czxid, "pzxid moves on delete");
    assert_eq!(parent.mzxid, set.mzxid, "children do not touch mzxid");

    c.set_acl("/st", &zk::Acls::anyone_all(), Some(0)).await.expect("setacl");
    let (_, st) = c.get_acl("/st").await.expect("getacl");
    assert_eq!(st.aversion, 1);
    assert_eq!(st.version, 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn errors_are_zookeepers() {
    let server = ServerProcess::paddock(2, "");
    let c = connect(&server).await;
    c.create("/err", b"", &open()).await.expect("create");
    assert_eq!(c.create("/err", b"", &open()).await.map(|_| ()), Err(zk::Error::NodeExists));
    assert_eq!(c.create("/nope/x", b"", &open()).await.map(|_| ()), Err(zk::Error::NoNode));
    assert_eq!(c.set_data("/err", b"", Some(5)).await.map(|_| ()), Err(zk::Error::BadVersion));
    c.create("/err/c", b"", &open()).await.expect("child");
    assert_eq!(c.delete("/err", None).await, Err(zk::Error::NotEmpty));
    assert_eq!(c.delete("/err/c", Some(7)).await, Err(zk::Error::BadVersion));
    c.create("/eph", b"", &zk::CreateMode::Ephemeral.with_acls(zk::Acls::anyone_all())).await.expect("eph");
    assert_eq!(c.create("/eph/x", b"", &open()).await.map(|_| ()), Err(zk::Error::NoChildrenForEphemerals));
    assert_eq!(c.get_data("/missing").await.map(|_| ()), Err(zk::Error::NoNode));
    let creator = zk::CreateMode::Persistent.with_acls(zk::Acls::creator_all());
    assert_eq!(c.create("/noauth", b"", &creator).await.map(|_| ()), Err(zk::Error::InvalidAcl));
    assert_eq!(c.set_data("/zookeeper/config", b"x", None).await.map(|_| ()), Err(zk::Error::NoAuth));
}

#[tokio::test(flavor = "multi_thread")]
async fn multi_is_all_or_nothing() {
    let server = ServerProcess::paddock(2, "");
    let c = connect(&server).await;
    let mut w = c.new_multi_writer();
    w.add_create("/m", b"1", &open()).expect("op");
    w.add_create("/m/a", b"2", &open()).expect("op");
    w.add_set_data("/m", b"3", Some(0)).expect("op");
    w.add_check_version("/m/a", 0).expect("op");
    let results = w.commit().await.expect("multi commits");
    assert_eq!(results.len(), 4);
    let (data, stat) = c.get_data("/m").await.expect("get");
    assert_eq!((data.as_slice(), stat.version), (&b"3"[..], 1));

    let mut w = c.new_multi_writer();
    w.add_create("/m/b", b"", &open()).expect("op");
    w.add_delete("/m/missing", None).expect("op");
    w.add_set_data("/m", b"4", None).expect("op");
    let err = w.commit().await.expect_err("multi fails");
    assert!(matches!(err, zk::MultiWriteError::OperationFailed { index: 1, source: zk::Error::NoNode }), "{err:?}");
    assert_eq!(c.check_stat("/m/b").await.expect("exists"), None, "the create before the failure was rolled back");
    assert_eq!(c.get_data("/m").await.expect("get").1.version, 1);

    let mut r = c.new_multi_reader();
    r.add_get_data("/m").expect("op");
    r.add_get_children("/m").expect("op");
    r.add_get_data("/m/none").expect("op");
    let results = r.commit().await.expect("multiRead");
    assert!(matches!(&results[1], zk::MultiReadResult::Children { children } if children == &vec!["a".to_string()]));
    assert!(matches!(&results[2], zk::MultiReadResult::Error { err: zk::Error::NoNode }));
}

#[tokio::test(flavor = "multi_thread")]
async fn one_shot_watches_fire_once_with_the_right_type() {
    let server = ServerProcess::paddock(2, "");
    let c = connect(&server).await;
    let other = connect(&server).await;
    let (_, exists_watch) = c.check_and_watch_stat("/w").await.expect("exists watch");
    other.create("/w", b"", &open()).await.expect("create");
    let e = next_event(exists_watch).await;
    assert_eq!((e.event_type, e.path.as_str()), (zk::EventType::NodeCreated, "/w"));

    let (_, _, data_watch) = c.get_and_watch_data("/w").await.expect("data watch");
    let (_, child_watch) = c.list_and_watch_children("/w").await.expect("child watch");
    other.set_data("/w", b"x", None).await.expect("set");
    assert_eq!(next_event(data_watch).await.event_type, zk::EventType::NodeDataChanged);
    other.create("/w/k", b"", &open()).await.expect("child");
    assert_eq!(next_event(child_watch).await.event_type, zk::EventType::NodeChildrenChanged);

    let (_, _, gone) = c.get_and_watch_data("/w/k").await.expect("watch child");
    other.delete("/w/k", None).await.expect("delete");
    assert_eq!(next_event(gone).await.event_type, zk::EventType::NodeDeleted);
}

#[tokio::test(flavor = "multi_thread")]
async fn persistent_recursive_watch_sees_the_subtree_but_not_child_events() {
    let server = ServerProcess::paddock(2, "");
    let c = connect(&server).await;
    let other = connect(&server).await;
    c.create("/r", b"", &open()).await.expect("create");
    let mut w = c.watch("/r", zk::AddWatchMode::PersistentRecursive).await.expect("addWatch");
    other.create("/r/a", b"", &open()).await.expect("a");
    other.create("/r/a/b", b"", &open()).await.expect("b");
    other.set_data("/r/a/b", b"x", None).await.expect("set");
    other.delete("/r/a/b", None).await.expect("delete");
    let mut seen = Vec::new();
    for _ in 0..4 {
        let e = tokio::time::timeout(Duration::from_secs(10), w.changed()).await.expect("event");
        seen.push((e.event_type, e.path));
    }
    assert_eq!(
        seen,
        vec![
            (zk::EventType::NodeCreated, "/r/a".to_string()),
            (zk::EventType::NodeCreated, "/r/a/b".to_string()),
            (zk::EventType::NodeDataChanged, "/r/a/b".to_string()),
            (zk::EventType::NodeDeleted, "/r/a/b".to_string()),
        ]
    );

    let mut p = c.watch("/r/a", zk::AddWatchMode::Persistent).await.expect("persistent");
    other.create("/r/a/c", b"", &open()).await.expect("c");
    let e = tokio::time::timeout(Duration::from_secs(10), p.changed()).await.expect("event");
    assert_eq!((e.event_type, e.path.as_str()), (zk::EventType::NodeChildrenChanged, "/r/a"));
}

#[tokio::test(flavor = "multi_thread")]
async fn digest_acls_guard_nodes_and_super_digest_overrides() {
    // super:test, the digest from ZooKeeper's administrator guide.
    let server =
        ServerProcess::paddock(2, "DigestAuthenticationProvider.superDigest=super:D/InIHSb7yEEbrWz8b9l71RjZJU=");
    let owner = zk::Client::connector()
        .with_auth("digest", b"alice:secret")
        .connect(&server.connect_string())
        .await
        .expect("alice");
    let creator = zk::CreateMode::Persistent.with_acls(zk::Acls::creator_all());
    owner.create("/private", b"s", &creator).await.expect("create with auth ACL");
    let (acl, _) = owner.get_acl("/private").await.expect("getacl");
    assert_eq!(acl[0].scheme(), "digest");
    assert!(acl[0].id().starts_with("alice:"));

    let stranger = connect(&server).await;
    assert_eq!(stranger.get_data("/private").await.map(|_| ()), Err(zk::Error::NoAuth));
    assert_eq!(stranger.set_data("/private", b"x", None).await.map(|_| ()), Err(zk::Error::NoAuth));
    assert!(stranger.check_stat("/private").await.expect("exists needs no ACL").is_some());

    let admin = zk::Client::connector()
        .with_auth("digest", b"super:test")
        .connect(&server.connect_string())
        .await
        .expect("super");
    assert_eq!(admin.get_data("/private").await.expect("super reads").0, b"s");
    let users = owner.list_auth_users().await.expect("whoami");
    assert!(users.iter().any(|u| u.scheme() == "digest" && u.user() == "alice"), "{users:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn closing_a_session_removes_its_ephemerals_and_tells_watchers() {
    let server = ServerProcess::paddock(2, "");
    let owner = connect(&server).await;
    let watcher = connect(&server).await;
    owner.create("/lease", b"", &zk::CreateMode::Ephemeral.with_acls(zk::Acls::anyone_all())).await.expect("eph");
    let (_, _, w) = watcher.get_and_watch_data("/lease").await.expect("watch");
    drop(owner);
    assert_eq!(next_event(w).await.event_type, zk::EventType::NodeDeleted);
    assert_eq!(watcher.check_stat("/lease").await.expect("exists"), None);
}

#[tokio::test(flavor = "multi_thread")]
async fn sync_then_read_sees_the_latest_write_of_another_session() {
    let server = ServerProcess::paddock(2, "");
    let writer = connect(&server).await;
    let reader = connect(&server).await;
    writer.create("/sync", b"1", &open()).await.expect("create");
    writer.set_data("/sync", b"2", None).await.expect("set");
    reader.sync("/sync").await.expect("sync");
    assert_eq!(reader.get_data("/sync").await.expect("read").0, b"2");
    assert_eq!(reader.count_descendants_number("/").await.expect("count"), 4, "/sync and the three /zookeeper nodes");
    let (config, _) = reader.get_config().await.expect("/zookeeper/config exists");
    assert!(config.is_empty());
}
