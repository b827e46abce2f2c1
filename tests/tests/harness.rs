//! The harness itself: a real influxd starts, takes writes, survives a wipe and restart.

use tests::Influxd;

#[test]
fn influxd_starts_writes_and_wipes() {
    let dir = tempfile::tempdir().unwrap();
    let mut influxd = Influxd::start("127.0.0.1:28086", dir.path());
    influxd.create_database("db");
    let r = influxd.http().write("db=db", "m v=1 1").unwrap();
    assert_eq!(r.status, 204, "{}", r.body);
    assert_eq!(influxd.http().rows("db", "m").len(), 1);
    influxd.kill();
    influxd.wipe();
    influxd.start_again();
    let r = influxd.http().write("db=db", "m v=1 1").unwrap();
    assert_eq!(
        r.status, 404,
        "after a wipe the database is gone: {}",
        r.body
    );
}
