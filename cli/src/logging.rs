//! Log output: text for people (the per-transaction lines, as before), or one JSON object
//! per line for log shippers, with the client of each line as a field.

use std::fmt;

use tracing::{Event, Subscriber};
use tracing_subscriber::{
    fmt::{
        format::Writer,
        time::{FormatTime, SystemTime},
        FmtContext, FormatEvent, FormatFields,
    },
    registry::LookupSpan,
    EnvFilter,
};

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// `TIME LEVEL message`, one line per client transaction.
    Text,
    /// One JSON object per line: timestamp, level, message, and `span` with the client's
    /// fields (`mac` for DHCP, `client` address for TFTP and HTTP).
    Json,
}

pub fn init(verbose: u8, is_node: bool, format: LogFormat) {
    let default = match verbose {
        // A node logs each client transaction at info; one-shot commands stay quiet.
        // iroh's own info lines are about its internals (sockets, paths), not clients.
        0 if is_node => "info,iroh_blobs=warn,iroh=warn,noq=warn,noq_proto=warn",
        0 => "warn",
        1 => "info,iroh_blobs=warn,iroh=warn,noq=warn,noq_proto=warn",
        _ => "debug",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    use std::io::IsTerminal;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(format == LogFormat::Text && std::io::stderr().is_terminal());
    match format {
        LogFormat::Text => builder.event_format(Text).init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .with_target(false)
            .init(),
    }
}

/// The text line without span prefixes: the message already names the client, and the
/// span exists for the JSON fields.
struct Text;

impl<S, N> FormatEvent<S, N> for Text
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        SystemTime.format_time(&mut writer)?;
        write!(writer, " {:>5} ", event.metadata().level())?;
        ctx.field_format().format_fields(writer.by_ref(), event)?;
        writeln!(writer)
    }
}
