//! Both live-event adapters against one conformance suite: in process, and
//! core NATS (two connections, as two processes; skipped without a NATS
//! server, failing instead with `STARLING_TEST_REQUIRE_SERVICES=1`).

mod in_process {
    use starling_bus::{InProcessLive, LiveBus};

    async fn fresh() -> Option<(Box<dyn LiveBus>, Box<dyn LiveBus>, ())> {
        let live = InProcessLive::new();
        Some((Box::new(live.clone()), Box::new(live), ()))
    }

    starling_bus::live_conformance_suite!(fresh);

    #[tokio::test]
    async fn topics_nobody_hears_are_forgotten() {
        let live = InProcessLive::new();
        let sub = live.subscribe("user.1").await.expect("subscribe");
        let sub2 = live.subscribe("user.1").await.expect("subscribe");
        assert_eq!(live.topics_heard(), 1);
        drop(sub);
        assert_eq!(live.topics_heard(), 1);
        drop(sub2);
        assert_eq!(live.topics_heard(), 0);
    }
}

mod nats {
    use starling_bus::{LiveBus, NatsLive};
    use starling_testkit::Service;

    async fn fresh() -> Option<(Box<dyn LiveBus>, Box<dyn LiveBus>, ())> {
        let url = starling_testkit::require(Service::Nats, "live_conformance")?;
        let prefix = starling_testkit::unique_name("starling-live-test").replace('_', "-");
        let a = NatsLive::connect(&url, &prefix).await.expect("connect");
        let b = NatsLive::connect(&url, &prefix).await.expect("connect");
        Some((Box::new(a), Box::new(b), ()))
    }

    starling_bus::live_conformance_suite!(fresh);
}
