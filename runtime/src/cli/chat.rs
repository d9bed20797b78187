//! `kefu chat DIR`: a terminal conversation with a bot through the production engine (the
//! same understanding and interpreter as `kefu serve`), one line per message.
//!
//! Works interactively and with piped input (`printf '你好\n/quit\n' | kefu chat DIR`): the
//! `you>` prompt is only printed when stdin is a terminal, bot replies are printed as
//! `bot> text` lines on stdout. Commands: `/debug` toggles a line per turn with intent,
//! confidence, language, emotion (when a model provides it), active flow, slots and bot
//! version; `/reset` starts a new conversation; `/quit` (or end of input) leaves.

use std::io::{BufRead, IsTerminal, Write};
use std::path::Path;
use std::process::ExitCode;

use std::sync::Arc;

use kefu_actors::engine::{EngineState, FlowEngine, TurnMeta, TurnReport};
use kefu_flows::Lang;

/// Options of a chat session.
pub(crate) struct ChatOptions {
    /// Show the understanding of each message from the start.
    pub(crate) debug: bool,
    /// The channel messages come from (reply variants may depend on it).
    pub(crate) channel: String,
    /// The conversation's language before the first message.
    pub(crate) lang: Option<Lang>,
    /// The user the conversation belongs to (skills such as `orders` answer for this user).
    pub(crate) user: String,
}

/// Loads the bot and chats over stdin/stdout until `/quit` or end of input.
pub(crate) fn run(dir: &Path, options: ChatOptions) -> ExitCode {
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    // The built-in skills, as under `kefu serve` (tickets kept in memory for the chat).
    let tickets: Arc<dyn kefu_tickets::TicketStore> =
        Arc::new(kefu_tickets::MemoryTicketStore::new());
    let mut builtins = match rt.block_on(kefu_runtime::builtin::builtin_skills(dir, tickets, None))
    {
        Ok(b) => b,
        Err(e) => {
            eprintln!("error: the built-in skills could not start: {e}");
            return ExitCode::from(2);
        }
    };
    let host = Arc::new(std::mem::take(&mut builtins.host));
    if let Err(e) = rt.block_on(host.start()) {
        eprintln!("error: the built-in skills could not start: {e}");
        return ExitCode::from(2);
    }
    let engine = match FlowEngine::load(dir) {
        Ok(e) => e.with_skills(host),
        Err(e) => {
            eprintln!("the bot in {} does not load:\n{e}", dir.display());
            return ExitCode::from(1);
        }
    };
    let stdin = std::io::stdin();
    let interactive = stdin.is_terminal();
    let mut out = std::io::stdout().lock();
    let result = chat(&engine, &rt, stdin.lock(), &mut out, interactive, options);
    drop(builtins);
    match result {
        Ok(()) => ExitCode::SUCCESS,
        // A closed stdout (`kefu chat | head`) is a normal way to stop.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

fn fresh_state(options: &ChatOptions) -> EngineState {
    EngineState {
        lang: options.lang.map(|l| l.as_str().to_owned()),
        ..EngineState::default()
    }
}

/// The chat loop over any reader and writer.
fn chat(
    engine: &FlowEngine,
    rt: &tokio::runtime::Runtime,
    input: impl BufRead,
    out: &mut impl Write,
    interactive: bool,
    mut options: ChatOptions,
) -> std::io::Result<()> {
    writeln!(out, "kefu chat: {}", engine.summary())?;
    writeln!(
        out,
        "commands: /debug (toggle details), /reset (new conversation), /quit"
    )?;
    let mut state = fresh_state(&options);
    let mut lines = input.lines();
    loop {
        if interactive {
            write!(out, "you> ")?;
        }
        out.flush()?;
        let Some(line) = lines.next() else {
            break;
        };
        let line = line?;
        let text = line.trim();
        match text {
            "" => continue,
            "/quit" | "/exit" | "/q" => break,
            "/debug" => {
                options.debug = !options.debug;
                writeln!(out, "(debug {})", if options.debug { "on" } else { "off" })?;
                continue;
            }
            "/reset" => {
                state = fresh_state(&options);
                writeln!(out, "(new conversation)")?;
                continue;
            }
            "/help" => {
                writeln!(
                    out,
                    "commands: /debug, /reset, /quit; anything else is sent to the bot"
                )?;
                continue;
            }
            t if t.starts_with('/') && !t.contains(' ') => {
                writeln!(out, "(unknown command {t}; try /help)")?;
                continue;
            }
            _ => {}
        }
        let meta = TurnMeta {
            user: &options.user,
            session: "chat",
            channel: &options.channel,
            ..TurnMeta::default()
        };
        let report = rt.block_on(engine.step(&mut state, text, &meta));
        for reply in &report.handled.replies {
            writeln!(out, "bot> {}", reply.text)?;
        }
        if let Some(reason) = &report.handoff {
            writeln!(out, "(handed off to a human agent: {reason})")?;
        }
        if report.ended {
            writeln!(out, "(conversation ended)")?;
        }
        if options.debug {
            writeln!(out, "{}", debug_line(&report, &state))?;
        }
    }
    Ok(())
}

/// One line of what the engine understood and where the dialog is.
fn debug_line(report: &TurnReport, state: &EngineState) -> String {
    let (intent, confidence, lang) = match &report.handled.nlu {
        Some(n) => (
            n.intent.as_deref().unwrap_or("(none)"),
            n.confidence,
            n.lang.as_str(),
        ),
        None => ("(none)", 0.0, "?"),
    };
    let slots = if state.dialog.slots.is_empty() {
        "{}".to_owned()
    } else {
        let parts: Vec<String> = state
            .dialog
            .slots
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        format!("{{{}}}", parts.join(", "))
    };
    let stack: Vec<&str> = state.dialog.stack.iter().map(|f| f.flow.as_str()).collect();
    // How each `generate:` step was answered (model rung or the flow's fallback, and why), and
    // an intent the model chose for a low-confidence message.
    let llm = report
        .generations
        .iter()
        .map(|g| format!(" generate=\"{g}\""))
        .chain(
            report
                .intent_choice
                .iter()
                .map(|c| format!(" intent_choice=\"{c}\"")),
        )
        .collect::<String>();
    format!(
        "  [intent={intent} confidence={confidence:.2} lang={lang} emotion={} flow={}{} slots={slots}{}{llm} bot={}]",
        report.emotion.as_deref().unwrap_or("n/a"),
        report.handled.active_flow.as_deref().unwrap_or("-"),
        if stack.is_empty() {
            String::new()
        } else {
            format!(" interrupted={}", stack.join(">"))
        },
        if report.calls.is_empty() {
            String::new()
        } else {
            let calls: Vec<String> = report
                .calls
                .iter()
                .map(|(s, o)| format!("{s}:{o}"))
                .collect();
            format!(" calls={}", calls.join(","))
        },
        report.bot_version,
    )
}
