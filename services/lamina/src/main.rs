//! The one Lamina binary.

use clap::Parser as _;
use lamina::cli::{Cli, Command};
use lamina::serve::{ServeOptions, start};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    lamina::distributed::cluster::die_with_cluster()?;
    let telemetry = if matches!(cli.command, Command::Account(_)) {
        None
    } else {
        Some(lamina::telemetry::init(cli.log_format, lamina::telemetry::service_name(&cli.command))?)
    };
    let result = run(cli.command).await;
    if let Some(telemetry) = telemetry {
        telemetry.shutdown().await;
    }
    result
}

async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Serve(args) => {
            let opts = ServeOptions {
                data_dir: args.data_dir,
                listen: args.listen,
                admin_listen: args.http.admin_listen,
                s3_listen: args.s3.s3_listen,
                s3_public_url: args.s3.s3_public_url.clone(),
                s3_base_domain: args.s3.s3_base_domain.clone(),
                http: args.http.limits(),
                region: args.region,
                database_url: args.database_url.as_ref().map(|s| s.expose().to_owned()),
                admin_token: args.admin_token.as_ref().map(|s| s.expose().to_owned()),
                master_key: args.master_key.as_ref().map(|s| s.expose().to_owned()),
                max_memory_mb: args.max_memory_mb,
                max_timeout_s: args.max_timeout,
                exec: args.exec.config(args.config.as_deref())?,
                queue: lamina_async_queue::QueueConfig {
                    retry_delays: match &args.async_retry_delays {
                        Some(text) => lamina_async_queue::QueueConfig::parse_delays(text)?,
                        None => lamina_async_queue::QueueConfig::default().retry_delays,
                    },
                    ..lamina_async_queue::QueueConfig::default()
                },
                async_worker: true,
                function_telemetry: args.telemetry.function_telemetry,
                log_limits: args.logs.limits(),
            };
            let data_dir = opts.data_dir.clone();
            let region = opts.region.clone();
            let running = start(opts).await?;
            let creds = std::fs::canonicalize(data_dir.join("credentials")).unwrap_or(data_dir.join("credentials"));
            println!("Lamina is listening on http://{}", running.addr);
            println!("Admin API and metrics on http://{} (operators only)", running.admin_addr);
            println!("S3 API on http://{}", running.s3_addr);
            println!(
                "Try: AWS_SHARED_CREDENTIALS_FILE={} aws --profile lamina --region {region} --endpoint-url http://{} lambda list-functions",
                creds.display(),
                running.addr
            );
            let stop = running.shutdown.clone();
            tokio::spawn(async move {
                wait_for_signal().await;
                tracing::info!("shutting down");
                stop.cancel();
            });
            running.wait().await
        }
        Command::Account(cmd) => lamina::cli::run_account(cmd).await,
        Command::Cluster(args) => lamina::distributed::cluster::run(args, wait_for_signal()).await,
        Command::Frontend(args) => lamina::distributed::run_frontend(args, wait_for_signal()).await,
        Command::Metadata(args) => lamina::distributed::run_metadata(args, wait_for_signal()).await,
        Command::CodeStorage(args) => lamina::distributed::run_code_storage(args, wait_for_signal()).await,
        Command::InvokeRouter(args) => lamina::distributed::run_router(args, wait_for_signal()).await,
        Command::AsyncQueue(args) => lamina::distributed::run_queue(args, wait_for_signal()).await,
        Command::ExecHost(args) => lamina::distributed::run_exec_host(args, wait_for_signal()).await,
    }
}

/// Installs the SIGTERM/SIGINT handlers now (a signal during start-up must not kill the process
/// unstopped); the returned future completes on the first signal.
fn wait_for_signal() -> impl std::future::Future<Output = ()> {
    let term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate());
    let int = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt());
    async move {
        match (term, int) {
            (Ok(mut term), Ok(mut int)) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = int.recv() => {}
                }
            }
            _ => std::future::pending().await,
        }
    }
}
