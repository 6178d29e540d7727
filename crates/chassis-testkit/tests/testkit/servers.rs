use chassis_testkit::Moto;

#[test]
fn moto_listens_on_a_loopback_port_and_stops_on_drop() {
    let moto = Moto::start().unwrap_or_else(|e| panic!("{e}"));
    let addr: std::net::SocketAddr = moto.endpoint().trim_start_matches("http://").parse().unwrap();
    assert!(addr.ip().is_loopback());
    assert!(std::net::TcpStream::connect(addr).is_ok());
    drop(moto);
    assert!(std::net::TcpStream::connect(addr).is_err(), "killed on drop");
}

#[cfg(feature = "postgres")]
#[tokio::test]
async fn a_postgres_schema_per_test_dropped_after() {
    use chassis_testkit::PgSchema;

    #[allow(clippy::disallowed_methods)] // the test's own switch, as the other PostgreSQL tests
    let server = std::env::var("CHASSIS_TEST_POSTGRES_URL").unwrap_or_else(|_| PgSchema::DEFAULT_URL.into());
    let (a, b) = (PgSchema::create(&server).await.unwrap(), PgSchema::create(&server).await.unwrap());
    assert_ne!(a.name(), b.name());
    let pool = sqlx::PgPool::connect(a.url()).await.unwrap();
    sqlx::query("CREATE TABLE t (x int)").execute(&pool).await.unwrap();
    let schema: (String,) = sqlx::query_as("SELECT current_schema()::text").fetch_one(&pool).await.unwrap();
    assert_eq!(schema.0, a.name());
    pool.close().await;
    let name = a.name().to_owned();
    a.drop_schema().await.unwrap();
    let admin = sqlx::PgPool::connect(&server).await.unwrap();
    let left: (i64,) = sqlx::query_as("SELECT count(*) FROM pg_namespace WHERE nspname = $1")
        .bind(&name)
        .fetch_one(&admin)
        .await
        .unwrap();
    assert_eq!(left.0, 0);
    b.drop_schema().await.unwrap();
}

#[tokio::test]
async fn a_missing_program_says_what_to_install() {
    let error = chassis_testkit::Etcd::start_with("/nonexistent/etcd").await.unwrap_err();
    assert!(error.to_string().contains("apt-get install -y etcd-server"), "{error}");
    let error = Moto::start_with("/nonexistent/moto_server").unwrap_err();
    assert!(error.to_string().contains("pip install 'moto[server]'"), "{error}");
}
