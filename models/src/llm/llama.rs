//! The in-process back-end: llama.cpp through `llama-cpp-2` (the `llama` feature).
//!
//! One model is loaded once and shared; one worker thread owns the llama.cpp context and runs
//! continuous batching: every step it admits waiting requests into free sequence slots, puts
//! one token of every generating sequence (and prompt chunks of new ones) into one batch,
//! decodes it once and samples each sequence. Throughput therefore grows with the number of
//! concurrent sessions, up to `parallel` sequences.
//!
//! Invariants: the context never leaves its thread (llama.cpp contexts are not thread-safe);
//! the async side only tokenises (read-only on the shared model) and exchanges messages with
//! the worker; a request whose stream is dropped is noticed at the next step and its sequence
//! freed; user text cannot inject control tokens (`<|im_start|>`...), because every control
//! token's text is removed from message contents before the chat template is applied; text is
//! released only in whole UTF-8 characters and never past a stop sequence; every failure of
//! llama.cpp becomes an [`LlmError::Model`] for the affected requests, never a panic.

use std::collections::VecDeque;
use std::num::NonZeroU32;
use std::path::Path;
use std::sync::mpsc as std_mpsc;
use std::sync::{Arc, OnceLock};

use async_trait::async_trait;
use llama_cpp_2::context::params::LlamaContextParams;
use llama_cpp_2::llama_backend::LlamaBackend as CppBackend;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::model::params::LlamaModelParams;
use llama_cpp_2::model::{LlamaChatMessage, LlamaChatTemplate, LlamaModel};
use llama_cpp_2::sampling::LlamaSampler;
use llama_cpp_2::token::LlamaToken;
use tokio::sync::mpsc;

use super::{
    ChatMessage, Completion, FinishReason, LlamaConfig, LlmBackend, LlmError, LlmRequest,
    StreamEvent, TokenCounter, TokenStream, Usage, collect_stream,
};

/// llama.cpp's global state: initialised once per process, never freed.
static CPP_BACKEND: OnceLock<Result<CppBackend, String>> = OnceLock::new();

fn cpp_backend() -> Result<&'static CppBackend, LlmError> {
    CPP_BACKEND
        .get_or_init(|| {
            let mut backend = CppBackend::init().map_err(|e| e.to_string())?;
            // llama.cpp logs every tensor at load; kefu's own logs say what matters.
            backend.void_logs();
            Ok(backend)
        })
        .as_ref()
        .map_err(|e| LlmError::Model {
            detail: format!("llama.cpp could not start: {e}"),
        })
}

/// One generation handed to the worker.
struct Job {
    prompt: Vec<LlamaToken>,
    max_tokens: u32,
    temperature: Option<f32>,
    stop: Vec<String>,
    events: mpsc::UnboundedSender<Result<StreamEvent, LlmError>>,
}

/// The shared model and what the async side needs of it.
struct Shared {
    model: LlamaModel,
    template: Option<LlamaChatTemplate>,
    /// Texts of control tokens, longest first, removed from user-supplied contents.
    control_texts: Vec<String>,
}

/// llama.cpp in-process, several sequences decoded together.
pub struct LlamaBackend {
    shared: Arc<Shared>,
    jobs: std_mpsc::SyncSender<Job>,
    name: String,
    model_name: String,
    context_tokens: usize,
}

impl std::fmt::Debug for LlamaBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LlamaBackend")
            .field("name", &self.name)
            .field("context_tokens", &self.context_tokens)
            .finish_non_exhaustive()
    }
}

impl LlamaBackend {
    /// Loads the model and starts the batching worker.
    pub fn new(config: LlamaConfig) -> Result<Self, LlmError> {
        config.validate()?;
        let cpp = cpp_backend()?;
        if !config.model_path.is_file() {
            return Err(LlmError::Config {
                backend: "llama",
                field: "model_path",
                reason: format!("{} is not a readable file", config.model_path.display()),
            });
        }
        let model =
            LlamaModel::load_from_file(cpp, &config.model_path, &LlamaModelParams::default())
                .map_err(|e| LlmError::Model {
                    detail: format!("cannot load {}: {e}", config.model_path.display()),
                })?;
        let template = model.chat_template(None).ok();
        let mut control_texts: Vec<String> = model
            .tokens(true)
            .filter(|(t, _)| model.vocab().is_control(*t))
            .filter_map(|(_, bytes)| String::from_utf8(bytes).ok())
            .filter(|s| s.chars().count() >= 2)
            .collect();
        control_texts.sort_by_key(|s| std::cmp::Reverse(s.len()));
        control_texts.dedup();
        let shared = Arc::new(Shared {
            model,
            template,
            control_texts,
        });
        let model_name = config
            .model_name
            .clone()
            .unwrap_or_else(|| file_stem(&config.model_path));
        let (jobs, queue) = std_mpsc::sync_channel(config.max_queue.max(1));
        let worker_shared = shared.clone();
        let worker_config = config.clone();
        // A failure to create the context is reported back before `new` returns.
        let (ready_tx, ready_rx) = std_mpsc::sync_channel(1);
        std::thread::Builder::new()
            .name("kefu-llama".into())
            .spawn(move || worker(worker_shared, worker_config, queue, ready_tx))
            .map_err(|e| LlmError::Model {
                detail: format!("cannot start the llama worker: {e}"),
            })?;
        ready_rx.recv().map_err(|_| LlmError::Model {
            detail: "the llama worker stopped while starting".into(),
        })??;
        tracing::info!(model = %config.model_path.display(), parallel = config.parallel,
            threads = config.threads, "Local model loaded");
        Ok(Self {
            shared,
            jobs,
            name: format!("llama:{model_name}"),
            model_name,
            context_tokens: config.context_tokens,
        })
    }

    /// The prompt's tokens: chat template applied, control-token text removed from contents.
    fn prompt_tokens(&self, messages: &[ChatMessage]) -> Result<Vec<LlamaToken>, LlmError> {
        let clean = |text: &str| {
            let mut text = text.replace('\0', "");
            for control in &self.shared.control_texts {
                text = text.replace(control.as_str(), "");
            }
            text
        };
        let prompt = match &self.shared.template {
            Some(template) => {
                let chat = messages
                    .iter()
                    .map(|m| LlamaChatMessage::new(m.role.as_str().to_owned(), clean(&m.content)))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| LlmError::InvalidRequest {
                        reason: e.to_string(),
                    })?;
                self.shared
                    .model
                    .apply_chat_template(template, &chat, true)
                    .map_err(|e| LlmError::Model {
                        detail: format!("the chat template failed: {e}"),
                    })?
            }
            None => {
                // No template in the file: ChatML, what most small instruct models use.
                let mut p = String::new();
                for m in messages {
                    p.push_str(&format!(
                        "<|im_start|>{}\n{}<|im_end|>\n",
                        m.role.as_str(),
                        clean(&m.content)
                    ));
                }
                p.push_str("<|im_start|>assistant\n");
                p
            }
        };
        Ok(self
            .shared
            .model
            .vocab()
            .tokenize(prompt.as_bytes(), true, true))
    }
}

fn file_stem(path: &Path) -> String {
    path.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "local".into())
}

impl TokenCounter for LlamaBackend {
    fn count(&self, text: &str) -> usize {
        self.shared
            .model
            .vocab()
            .tokenize(text.as_bytes(), false, false)
            .len()
    }
}

#[async_trait]
impl LlmBackend for LlamaBackend {
    fn name(&self) -> &str {
        &self.name
    }

    fn default_model(&self) -> &str {
        &self.model_name
    }

    async fn complete(&self, req: LlmRequest) -> Result<Completion, LlmError> {
        let stream = self.stream(req).await?;
        collect_stream(stream, &self.name, &self.model_name).await
    }

    async fn stream(&self, req: LlmRequest) -> Result<TokenStream, LlmError> {
        req.validate()?;
        let prompt = self.prompt_tokens(&req.messages)?;
        let needed = prompt.len() + req.max_tokens as usize;
        if prompt.len() + 1 >= self.context_tokens {
            return Err(LlmError::ContextOverflow {
                needed,
                limit: self.context_tokens,
            });
        }
        let (events, rx) = mpsc::unbounded_channel();
        let job = Job {
            prompt,
            max_tokens: req.max_tokens,
            temperature: req.temperature,
            stop: req.stop,
            events,
        };
        self.jobs.try_send(job).map_err(|e| match e {
            std_mpsc::TrySendError::Full(_) => LlmError::Overloaded {
                backend: self.name.clone(),
                detail: "the local model's queue is full".into(),
            },
            std_mpsc::TrySendError::Disconnected(_) => LlmError::Model {
                detail: "the llama worker has stopped".into(),
            },
        })?;
        let mut rx = rx;
        Ok(Box::pin(futures::stream::poll_fn(move |cx| {
            rx.poll_recv(cx)
        })))
    }
}

/// A sequence being generated.
struct Slot {
    job: Job,
    sampler: LlamaSampler,
    /// Prompt tokens not yet decoded.
    pending: VecDeque<LlamaToken>,
    /// Next position in the sequence.
    pos: i32,
    /// The token to feed next (after the prompt).
    last: Option<LlamaToken>,
    generated: u32,
    /// Bytes of an incomplete UTF-8 character.
    partial: Vec<u8>,
    /// Text generated, not yet sent (held back while it may be the start of a stop sequence).
    unsent: String,
    /// Batch index whose logits belong to this sequence in the current step.
    logits_at: Option<i32>,
}

fn sampler_for(temperature: Option<f32>, seed: u32) -> LlamaSampler {
    match temperature {
        Some(t) if t > 0.0 => LlamaSampler::chain_simple([
            LlamaSampler::top_k(40),
            LlamaSampler::top_p(0.95, 1),
            LlamaSampler::temp(t),
            LlamaSampler::dist(seed),
        ]),
        _ => LlamaSampler::greedy(),
    }
}

fn worker(
    shared: Arc<Shared>,
    config: LlamaConfig,
    queue: std_mpsc::Receiver<Job>,
    ready: std_mpsc::SyncSender<Result<(), LlmError>>,
) {
    let Ok(cpp) = cpp_backend() else {
        let _ = ready.send(Err(LlmError::Model {
            detail: "llama.cpp is not initialised".into(),
        }));
        return;
    };
    let parallel = config.parallel;
    let n_ctx = (config.context_tokens * parallel) as u32;
    let n_batch = (config.context_tokens.max(512)) as u32;
    let params = LlamaContextParams::default()
        .with_n_ctx(NonZeroU32::new(n_ctx))
        .with_n_batch(n_batch)
        .with_n_ubatch(n_batch.min(512))
        .with_n_seq_max(parallel as u32)
        // One KV cache shared by all sequences: a batch with one token of each sequence is
        // then one micro-batch (split per sequence otherwise, which defeats batching).
        .with_kv_unified(true)
        .with_n_threads(config.threads as i32)
        .with_n_threads_batch(config.batch_threads as i32);
    let mut ctx = match shared.model.new_context(cpp, params) {
        Ok(ctx) => ctx,
        Err(e) => {
            let _ = ready.send(Err(LlmError::Model {
                detail: format!("cannot create the llama context: {e}"),
            }));
            return;
        }
    };
    let _ = ready.send(Ok(()));
    let vocab = shared.model.vocab();
    let mut batch = LlamaBatch::new(n_batch as usize, parallel as i32);
    let mut slots: Vec<Option<Slot>> = (0..parallel).map(|_| None).collect();
    let mut seed = config.seed;
    loop {
        // Admit new jobs into free slots; block only when there is nothing to do.
        let idle = slots.iter().all(Option::is_none);
        let mut incoming = Vec::new();
        if idle {
            match queue.recv() {
                Ok(job) => incoming.push(job),
                Err(_) => return, // the back-end was dropped
            }
        }
        let free = slots.iter().filter(|s| s.is_none()).count();
        while incoming.len() < free {
            match queue.try_recv() {
                Ok(job) => incoming.push(job),
                Err(_) => break,
            }
        }
        for job in incoming {
            let Some(index) = slots.iter().position(Option::is_none) else {
                break;
            };
            // A leftover from the previous sequence in this slot must not leak into this one.
            let _ = ctx.clear_kv_cache_seq(Some(index as u32), None, None);
            seed = seed.wrapping_add(1);
            slots[index] = Some(Slot {
                sampler: sampler_for(job.temperature, seed),
                pending: job.prompt.iter().copied().collect(),
                job,
                pos: 0,
                last: None,
                generated: 0,
                partial: Vec::new(),
                unsent: String::new(),
                logits_at: None,
            });
        }

        // Drop sequences nobody listens to any more.
        for (i, slot) in slots.iter_mut().enumerate() {
            if slot.as_ref().is_some_and(|s| s.job.events.is_closed()) {
                *slot = None;
                let _ = ctx.clear_kv_cache_seq(Some(i as u32), None, None);
            }
        }

        // One batch: one token per generating sequence, then prompt chunks with what is left.
        batch.clear();
        let mut room = n_batch as usize;
        let mut add_failed = false;
        for (i, slot) in slots.iter_mut().enumerate() {
            let Some(s) = slot else { continue };
            s.logits_at = None;
            if let Some(token) = s.last.take() {
                add_failed |= batch.add(token, s.pos, &[i as i32], true).is_err();
                s.logits_at = Some(batch.n_tokens() - 1);
                s.pos += 1;
                room -= 1;
            }
        }
        for (i, slot) in slots.iter_mut().enumerate() {
            let Some(s) = slot else { continue };
            while room > 0 && !s.pending.is_empty() {
                let Some(token) = s.pending.pop_front() else {
                    break;
                };
                let last = s.pending.is_empty();
                add_failed |= batch.add(token, s.pos, &[i as i32], last).is_err();
                if last {
                    s.logits_at = Some(batch.n_tokens() - 1);
                }
                s.pos += 1;
                room -= 1;
            }
        }
        if batch.n_tokens() == 0 {
            continue;
        }
        let failure = if add_failed {
            Some("the batch overflowed".to_owned())
        } else {
            ctx.decode(&mut batch).err().map(|e| e.to_string())
        };
        if let Some(detail) = failure {
            tracing::warn!(%detail, "llama.cpp decode failed; failing the running generations");
            for (i, slot) in slots.iter_mut().enumerate() {
                if let Some(s) = slot.take() {
                    let _ = s.job.events.send(Err(LlmError::Model {
                        detail: detail.clone(),
                    }));
                    let _ = ctx.clear_kv_cache_seq(Some(i as u32), None, None);
                }
            }
            continue;
        }

        // Sample every sequence whose logits were computed.
        for (i, slot) in slots.iter_mut().enumerate() {
            let Some(s) = slot else { continue };
            let Some(at) = s.logits_at else { continue };
            let token = s.sampler.sample(&ctx, at);
            s.sampler.accept(token);
            let finish = if vocab.is_eog(token) {
                Some(FinishReason::Stop)
            } else {
                s.generated += 1;
                s.partial.extend(vocab.token_to_piece(token, false, None));
                let stopped = take_text(s);
                if stopped {
                    Some(FinishReason::Stop)
                } else if s.generated >= s.job.max_tokens
                    || s.pos as usize + 1 >= config.context_tokens
                {
                    Some(FinishReason::Length)
                } else {
                    s.last = Some(token);
                    None
                }
            };
            if let Some(finish_reason) = finish {
                if !s.unsent.is_empty() {
                    let _ = s
                        .job
                        .events
                        .send(Ok(StreamEvent::Delta(std::mem::take(&mut s.unsent))));
                }
                let usage = Usage {
                    prompt_tokens: s.job.prompt.len() as u32,
                    completion_tokens: s.generated,
                };
                let _ = s.job.events.send(Ok(StreamEvent::Done {
                    finish_reason,
                    usage,
                }));
                *slot = None;
                let _ = ctx.clear_kv_cache_seq(Some(i as u32), None, None);
            }
        }
    }
}

/// Moves whole characters from `partial` to `unsent`, cuts at a stop sequence (returns true),
/// and sends what can no longer be the start of a stop sequence.
fn take_text(s: &mut Slot) -> bool {
    let valid = match std::str::from_utf8(&s.partial) {
        Ok(text) => text.len(),
        Err(e) if e.error_len().is_none() => e.valid_up_to(),
        // Bytes that can never become UTF-8 (a model emitting garbage): drop them.
        Err(e) => e.valid_up_to() + e.error_len().unwrap_or(1),
    };
    let bytes: Vec<u8> = s.partial.drain(..valid).collect();
    s.unsent.push_str(&String::from_utf8_lossy(&bytes));
    if let Some(at) = s
        .job
        .stop
        .iter()
        .filter_map(|stop| s.unsent.find(stop.as_str()))
        .min()
    {
        s.unsent.truncate(at);
        return true;
    }
    let hold = s
        .job
        .stop
        .iter()
        .map(String::len)
        .max()
        .unwrap_or(1)
        .saturating_sub(1);
    let mut send_to = s.unsent.len().saturating_sub(hold);
    while !s.unsent.is_char_boundary(send_to) {
        send_to -= 1;
    }
    if send_to > 0 {
        let rest = s.unsent.split_off(send_to);
        let text = std::mem::replace(&mut s.unsent, rest);
        let _ = s.job.events.send(Ok(StreamEvent::Delta(text)));
    }
    false
}
