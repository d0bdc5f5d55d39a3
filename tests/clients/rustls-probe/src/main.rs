//! `rustls-probe URL [BODY] [N]`: N (default 1) concurrent requests through reqwest + rustls
//! (aws-lc-rs) on a multi-threaded tokio runtime, as Codex CLI runs them; POST when a body is
//! given. Accepts any certificate (the test servers are local). Prints status and body length.

#[tokio::main(flavor = "multi_thread", worker_threads = 4)]
async fn main() {
    let mut args = std::env::args().skip(1);
    let url = args.next().expect("usage: rustls-probe URL [BODY] [N]");
    let body = args.next().filter(|b| !b.is_empty());
    let n: usize = args.next().map_or(1, |n| n.parse().expect("N"));
    rustls::crypto::aws_lc_rs::default_provider()
        .install_default()
        .expect("a crypto provider was already installed");
    let client = reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        // One connection per concurrent request, so that the pairing of directions is tested.
        .pool_max_idle_per_host(0)
        .build()
        .expect("client");
    let tasks: Vec<_> = (0..n)
        .map(|_| {
            let req = match &body {
                Some(b) => client
                    .post(&url)
                    .header("content-type", "application/json")
                    .body(b.clone()),
                None => client.get(&url),
            };
            tokio::spawn(async move {
                let resp = req.send().await.expect("request");
                let status = resp.status().as_u16();
                (status, resp.bytes().await.expect("body").len())
            })
        })
        .collect();
    for t in tasks {
        let (status, len) = t.await.expect("task");
        println!("{status} {len}");
    }
}
