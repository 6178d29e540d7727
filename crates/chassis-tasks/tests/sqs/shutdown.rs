//! Shutdown is bounded by its deadline on SQS (issue 15 §6): an endpoint that
//! accepts connections and never answers hangs the receive; the worker
//! abandons it at the deadline instead of waiting for the SDK's attempt
//! timeout (the long-poll wait + 10 s, retried).

use std::time::{Duration, Instant};

use chassis_tasks::{Config, Handlers, SqsQueue, Worker};
use tokio_util::sync::CancellationToken;

use crate::moto::client_for;

#[tokio::test]
async fn a_receive_from_an_endpoint_that_never_answers_is_abandoned_at_the_deadline() {
    // Accepts connections, reads nothing, answers nothing, keeps them open.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept() {
            held.push(socket);
        }
    });
    let queue = SqsQueue::from_url(client_for(&endpoint), format!("{endpoint}/123456789012/silent"));
    let mut config = Config::new("silent");
    config.wait_time_secs = 1;
    config.shutdown_deadline_secs = 2;
    let worker = Worker::new(queue, Handlers::new(), config).unwrap();
    let stop = CancellationToken::new();
    let handle = tokio::spawn(worker.run(stop.clone()));
    tokio::time::sleep(Duration::from_secs(1)).await; // the first receive is waiting
    let stopped = Instant::now();
    stop.cancel();
    let returned = tokio::time::timeout(Duration::from_secs(60), handle).await;
    let took = stopped.elapsed();
    assert!(returned.is_ok(), "the worker had not returned 60 s after the stop");
    // The deadline is 2 s; the SDK alone would wait 11 s per attempt.
    assert!(took < Duration::from_secs(6), "the stop took {took:?} with a 2 s deadline");
}
