use linli_server::{Config, ConfigError, USAGE, log, serve};

fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let config = match Config::from_args(&args, |k| std::env::var(k).ok()) {
        Ok(c) => c,
        Err(ConfigError::Help) => {
            println!("{USAGE}");
            return std::process::ExitCode::SUCCESS;
        }
        Err(ConfigError::Bad(msg)) => {
            eprintln!("linli-server: {msg}\n{USAGE}");
            return std::process::ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("linli-server: cannot start the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let shutdown = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    match runtime.block_on(serve(config, shutdown)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(msg) => {
            log("error", "fatal", serde_json::json!({ "error": msg }));
            std::process::ExitCode::FAILURE
        }
    }
}
