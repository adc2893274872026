//! Read replicas in the PostgreSQL adapter: where reads go, and what
//! happens when a replica fails.
//!
//! A streaming replica cannot be made inside a test, so the "replica" here
//! is a second database with the same schema that the primary's writes do
//! not reach. That makes routing visible: a read served by the replica sees
//! the replica's rows. (Such a database is not in recovery, so its checks
//! measure lag 0; lag itself is unit-tested in `replicas.rs` and checked
//! against real replicas by `scripts/replica-check`.) A replica that goes
//! down is a TCP proxy in front of that database, stopped and started by
//! the test.
//!
//! Needs PostgreSQL (the test kit's); SKIPPED without it unless
//! `STARLING_TEST_REQUIRE_SERVICES=1`.
#![cfg(feature = "postgres")]

mod pg_support;

use std::future::Future;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use starling_domain::oauth::{AccessToken, App};
use starling_domain::{Account, Id, IdGenerator, ScopeSet, Secret, ShardId};
use starling_store::{
    with_primary_reads, GraphStore, NewAccount, PgClusterConfig, PgStore, PgStoreConfig,
    ReplicaState, Store,
};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

/// Checks run this often here, so transitions take a fraction of a second.
const CHECK_EVERY: Duration = Duration::from_millis(50);

fn store_config(primary: &str, replicas: Vec<String>) -> PgStoreConfig {
    PgStoreConfig {
        max_connections_per_pool: 4,
        acquire_timeout: Duration::from_secs(2),
        replica_check_interval: CHECK_EVERY,
        ..PgStoreConfig::new(vec![PgClusterConfig {
            replicas,
            ..PgClusterConfig::new(primary)
        }])
    }
}

async fn wait_for(what: &str, store: &PgStore, ok: impl Fn(&[ReplicaState]) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let states = store.replica_states();
        if ok(&states) {
            return;
        }
        assert!(Instant::now() < deadline, "{what}: still {states:#?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn new_account(ids: &IdGenerator, name: &str) -> NewAccount {
    NewAccount {
        account: Account::new(ids.next(ShardId::for_key(name)), name, None, 0),
        email: format!("{name}@example.com"),
        email_key: format!("{name}@example.com"),
        password_hash: "$argon2id$fake".to_owned(),
        locale: None,
    }
}

/// Runs `f` `n` times; every run must succeed.
async fn all_ok<T, E: std::fmt::Debug, Fut: Future<Output = Result<T, E>>>(
    n: usize,
    f: impl Fn() -> Fut,
) {
    for i in 0..n {
        if let Err(e) = f().await {
            panic!("read {i} failed: {e:?}");
        }
    }
}

#[tokio::test]
async fn reads_go_to_a_replica_in_rotation_and_writes_to_the_primary() {
    let Some((urls, _dbs)) = pg_support::fresh_databases("postgres_replicas", 2).await else {
        return;
    };
    let ids = IdGenerator::new();
    // What only the replica has: an account written there directly.
    let replica_side = PgStore::connect(store_config(&urls[1], vec![]))
        .await
        .expect("connect");
    let bob = new_account(&ids, "bob");
    replica_side.create_account(&bob).await.expect("bob");

    let store = PgStore::connect(store_config(&urls[0], vec![urls[1].clone()]))
        .await
        .expect("connect");
    assert!(store.has_replicas());
    // Not in rotation before it proved healthy (twice).
    assert!(!store.replica_states()[0].in_rotation);
    wait_for("the replica joins", &store, |s| s[0].in_rotation).await;
    let state = &store.replica_states()[0];
    assert_eq!(state.lag, Some(Duration::ZERO));
    assert_eq!((state.put_back, state.taken_out), (1, 0));
    assert!(state.checks >= 2);

    // Writes go to the primary, never to the replica.
    let alice = new_account(&ids, "alice");
    store.create_account(&alice).await.expect("alice");
    assert!(replica_side
        .account(alice.account.id)
        .await
        .expect("read")
        .is_none());

    // Scatter and list reads come from the replica (it has bob, not alice)...
    assert_eq!(store.count_accounts().await.expect("count"), 1);
    let found = store.search_accounts("bob", 5, 0).await.expect("search");
    assert_eq!(found.len(), 1, "bob is on the replica only");
    // ... unless the task's reads are pinned to the primary.
    let pinned = with_primary_reads(async {
        (
            store.count_accounts().await.expect("count"),
            store.search_accounts("bob", 5, 0).await.expect("search"),
        )
    })
    .await;
    assert_eq!(
        (pinned.0, pinned.1.len()),
        (1, 0),
        "the primary has alice only"
    );

    // A point lookup the replica answers comes from it; one it cannot is
    // asked of the primary before "none".
    assert!(store.account(bob.account.id).await.expect("bob").is_some());
    assert!(with_primary_reads(store.account(bob.account.id))
        .await
        .expect("bob")
        .is_none());
    let a = store
        .account(alice.account.id)
        .await
        .expect("alice")
        .expect("found on the primary");
    assert_eq!(a.username, "alice");
    assert!(store
        .account_by_username("alice")
        .await
        .expect("by name")
        .is_some());
    assert!(store
        .login_by_username("alice")
        .await
        .expect("login")
        .is_some());
    assert!(store
        .login_by_email("alice@example.com")
        .await
        .expect("login")
        .is_some());
    assert!(store
        .account(ids.next(ShardId::for_key("nobody")))
        .await
        .expect("nobody")
        .is_none());

    // A multi-get takes what the replica has and asks the primary for the
    // rest.
    let mut both: Vec<String> = store
        .accounts(&[alice.account.id, bob.account.id])
        .await
        .expect("multi-get")
        .into_iter()
        .map(|a| a.username)
        .collect();
    both.sort();
    assert_eq!(both, ["alice", "bob"]);

    // OAuth rows made a moment ago (here: never replicated) are found.
    let app_id = ids.next(ShardId::for_key("app"));
    let client = Secret::generate(app_id.shard());
    let app = App {
        id: app_id,
        client_id: client.expose().to_owned(),
        client_secret_hash: Secret::generate(app_id.shard()).hash(),
        name: "test".into(),
        website: None,
        redirect_uris: vec!["urn:ietf:wg:oauth:2.0:oob".into()],
        scopes: ScopeSet::parse("read write").expect("scopes"),
        created_at_ms: 0,
    };
    store.create_app(&app).await.expect("app");
    assert!(store
        .app_by_client_id(app_id.shard(), &app.client_id)
        .await
        .expect("app")
        .is_some());
    let token = Secret::generate(alice.account.id.shard());
    store
        .create_token(
            token.shard(),
            &AccessToken {
                token_hash: token.hash(),
                app_id,
                account_id: Some(alice.account.id),
                scopes: app.scopes,
                created_at_ms: 0,
            },
        )
        .await
        .expect("token");
    let found = store
        .token(token.shard(), &token.hash())
        .await
        .expect("token lookup")
        .expect("the token is found on the primary");
    assert_eq!(found.account_id, Some(alice.account.id));

    store.close().await;
    assert!(
        store.count_accounts().await.is_err(),
        "closed: nothing is read"
    );
    replica_side.close().await;
}

/// A TCP proxy to PostgreSQL that the test can stop (refusing connections
/// and cutting those open, as a replica that died) and start again.
struct Proxy {
    addr: SocketAddr,
    upstream: String,
    tasks: Option<JoinSet<()>>,
}

impl Proxy {
    async fn start(upstream: &str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("address");
        let mut proxy = Self {
            addr,
            upstream: upstream.to_owned(),
            tasks: None,
        };
        proxy.serve(listener);
        proxy
    }

    fn serve(&mut self, listener: TcpListener) {
        let upstream = self.upstream.clone();
        let mut tasks = JoinSet::new();
        tasks.spawn(async move {
            let mut links = JoinSet::new();
            while let Ok((mut client, _)) = listener.accept().await {
                let upstream = upstream.clone();
                links.spawn(async move {
                    if let Ok(mut server) = TcpStream::connect(&upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
            }
        });
        self.tasks = Some(tasks);
    }

    /// Refuses connections and cuts the open ones.
    fn stop(&mut self) {
        // Dropping the set aborts the accept loop, which drops the listener
        // and the links it holds.
        self.tasks = None;
    }

    async fn restart(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(5);
        let listener = loop {
            match TcpListener::bind(self.addr).await {
                Ok(l) => break l,
                Err(e) => {
                    assert!(Instant::now() < deadline, "rebinding {}: {e}", self.addr);
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        };
        self.serve(listener);
    }

    /// `url` with its host and port replaced by the proxy's.
    fn url_for(&self, url: &str) -> String {
        let mut u = url::Url::parse(url).expect("a URL");
        u.set_host(Some("127.0.0.1")).expect("host");
        u.set_port(Some(self.addr.port())).expect("port");
        u.to_string()
    }
}

fn host_port(url: &str) -> String {
    let u = url::Url::parse(url).expect("a URL");
    format!(
        "{}:{}",
        u.host_str().unwrap_or("127.0.0.1"),
        u.port().unwrap_or(5432)
    )
}

#[tokio::test]
async fn a_replica_that_fails_leaves_the_rotation_and_comes_back_when_healthy() {
    let Some((urls, _dbs)) = pg_support::fresh_databases("postgres_replicas", 2).await else {
        return;
    };
    let ids = IdGenerator::new();
    let replica_side = PgStore::connect(store_config(&urls[1], vec![]))
        .await
        .expect("connect");
    replica_side
        .create_account(&new_account(&ids, "only_on_the_replica"))
        .await
        .expect("account");
    let mut proxy = Proxy::start(&host_port(&urls[1])).await;
    let store = PgStore::connect(store_config(&urls[0], vec![proxy.url_for(&urls[1])]))
        .await
        .expect("connect");
    store
        .create_account(&new_account(&ids, "alice"))
        .await
        .expect("alice");
    store
        .create_account(&new_account(&ids, "bob"))
        .await
        .expect("bob");
    wait_for("the replica joins", &store, |s| s[0].in_rotation).await;
    // Warm the replica's pool: its connections are cut below.
    assert_eq!(store.count_accounts().await.expect("count"), 1);

    // The replica dies: reads keep succeeding, from the primary.
    proxy.stop();
    all_ok(20, || store.count_accounts()).await;
    wait_for("the replica leaves", &store, |s| !s[0].in_rotation).await;
    assert_eq!(
        store.count_accounts().await.expect("count"),
        2,
        "the primary answers"
    );
    let state = &store.replica_states()[0];
    assert_eq!(state.taken_out, 1);
    // Several failed checks later it is still out (and counted out once).
    let checks = state.checks;
    wait_for("more checks", &store, |s| s[0].checks >= checks + 3).await;
    let state = &store.replica_states()[0];
    assert!(!state.in_rotation);
    assert_eq!(state.taken_out, 1);
    assert!(state.last_error.is_some(), "{state:?}");
    assert_eq!(state.lag, None);

    // Back: in rotation after two healthy checks, and read from again.
    proxy.restart().await;
    wait_for("the replica is back", &store, |s| s[0].in_rotation).await;
    let state = &store.replica_states()[0];
    assert_eq!((state.taken_out, state.put_back), (1, 2));
    assert_eq!(store.count_accounts().await.expect("count"), 1);
    store.close().await;
    replica_side.close().await;
}

#[tokio::test]
async fn a_replica_never_reachable_stays_out_and_reads_use_the_primary() {
    let Some((urls, _dbs)) = pg_support::fresh_databases("postgres_replicas", 2).await else {
        return;
    };
    let ids = IdGenerator::new();
    // Two replicas: one fine, one where nothing listens.
    let store = PgStore::connect(store_config(
        &urls[0],
        vec![
            "postgres://postgres@127.0.0.1:1/nothing".into(),
            urls[1].clone(),
        ],
    ))
    .await
    .expect("connect");
    let alice = new_account(&ids, "alice");
    store.create_account(&alice).await.expect("alice");
    wait_for("the good replica joins", &store, |s| {
        s[1].in_rotation && s[0].checks >= 3
    })
    .await;
    let down = &store.replica_states()[0];
    assert!(!down.in_rotation);
    assert_eq!((down.taken_out, down.put_back), (0, 0));
    assert!(
        down.last_error
            .as_deref()
            .is_some_and(|e| e.contains("cannot connect")),
        "{down:?}"
    );
    // Round-robin skips the one out of rotation: every read sees the good
    // replica (which lacks alice, so the lookup falls back to the primary).
    for _ in 0..6 {
        assert_eq!(store.count_accounts().await.expect("count"), 0);
        assert!(store
            .account(alice.account.id)
            .await
            .expect("alice")
            .is_some());
    }
    let ids_read: Vec<Id> = store
        .accounts(&[alice.account.id])
        .await
        .expect("multi-get")
        .iter()
        .map(|a| a.id)
        .collect();
    assert_eq!(ids_read, [alice.account.id]);
    store.close().await;
}

#[tokio::test]
async fn without_replicas_nothing_is_checked() {
    let Some((store, _dbs)) = pg_support::fresh_store("postgres_replicas", 1, false).await else {
        return;
    };
    assert!(!store.has_replicas());
    assert!(store.replica_states().is_empty());
    assert_eq!(store.count_accounts().await.expect("count"), 0);
}
