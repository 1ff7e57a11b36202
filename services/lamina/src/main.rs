//! The one Lamina binary.

use clap::Parser as _;
use lamina::cli::{Cli, Command};
use lamina::serve::{ServeOptions, start};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(args) => {
            tracing_subscriber::fmt()
                .with_env_filter(
                    tracing_subscriber::EnvFilter::try_from_default_env()
                        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
                )
                .with_writer(std::io::stderr)
                .init();
            let opts = ServeOptions {
                data_dir: args.data_dir,
                listen: args.listen,
                region: args.region,
                database_url: args.database_url,
                admin_token: args.admin_token,
                master_key: args.master_key,
                max_memory_mb: args.max_memory_mb,
                max_timeout_s: args.max_timeout,
                exec: {
                    if args.insecure_shared_network {
                        tracing::warn!("--insecure-shared-network: sandboxes may share the host's network");
                    }
                    let base = lamina_exec_host::Config {
                        cpu_quota: args.cpu_quota,
                        allow_host_ports: args.sandbox_allow_host_ports.clone(),
                        blocked_networks: args.sandbox_blocked_networks.clone(),
                        insecure_shared_network: args.insecure_shared_network,
                        idle_timeout: std::time::Duration::from_secs(args.idle_timeout_secs),
                        ..lamina_exec_host::Config::default()
                    };
                    match &args.config {
                        Some(path) => lamina::config_file::FileConfig::load(path)?.apply(base)?,
                        None => base,
                    }
                },
                queue: lamina_async_queue::QueueConfig {
                    retry_delays: match &args.async_retry_delays {
                        Some(text) => lamina_async_queue::QueueConfig::parse_delays(text)?,
                        None => lamina_async_queue::QueueConfig::default().retry_delays,
                    },
                    ..lamina_async_queue::QueueConfig::default()
                },
                async_worker: true,
            };
            let data_dir = opts.data_dir.clone();
            let region = opts.region.clone();
            let running = start(opts).await?;
            let creds = std::fs::canonicalize(data_dir.join("credentials")).unwrap_or(data_dir.join("credentials"));
            println!("Lamina is listening on http://{}", running.addr);
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
    }
}

async fn wait_for_signal() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => return std::future::pending().await,
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}
