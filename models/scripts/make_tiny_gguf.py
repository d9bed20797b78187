#!/usr/bin/env python3
"""Make a tiny but real llama-architecture GGUF model for kefu's tests and benchmark.

Model weights cannot be downloaded where kefu is built, so the tests make their own: a
byte-level BPE vocabulary trained (with the `tokenizers` package) on a little Chinese and
English customer-service text, stored as a `gpt2` tokenizer with its merges, and random
weights in llama's tensor layout (written with the `gguf` package). llama.cpp loads it like
any other model; it generates fluent nonsense, which is all a test of the plumbing needs.

Usage: make_tiny_gguf.py OUT.gguf [--preset tiny|bench|bench-small] [--seed N] [--tokenizer-json OUT.json]

Presets: `tiny` (default; 2 layers, 64 wide, f32, ~150k parameters, < 1 MB) for tests;
`bench` (16 layers, 1024 wide, f32, ~188M parameters, ~750 MB, made in a temporary directory)
for the batching benchmark; `bench-small` (4 layers of the same width, ~48M parameters,
~190 MB), the benchmark's earlier model. In a model as small as `tiny`, llama.cpp's per-token
overhead outweighs the weights, so batching cannot show. `bench-small` fits in a large server
CPU's last-level cache (480 MB on the machines kefu is built on), so one sequence then reads its
weights at cache speed, which no deployed model does; `bench` does not fit, and, as in real
models (Qwen2.5-0.5B in Q4_K_M is ~400 MB, a 7B model ~4 GB), reading the weights from memory
dominates each step of one sequence.

Requires: pip install gguf==0.17.1 tokenizers==0.23.3 numpy==2.4.6 (pinned in .ci/run).
Deterministic for a given seed.
"""

import argparse
import sys

import numpy as np

try:
    import gguf
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
except ImportError as exc:  # the error says what to install, not just what is missing
    sys.exit(f"missing Python package ({exc}); pip install gguf tokenizers numpy")

CORPUS = [
    "您好，请问有什么可以帮您？",
    "我的订单什么时候发货？一般在付款后四十八小时内发货。",
    "如何申请退货？七天无理由退货，请在订单页面点击申请退货。",
    "退款多久到账？退款会在三到五个工作日内原路退回。",
    "可以修改收货地址吗？发货前可以在订单详情里修改地址。",
    "谢谢，再见！感谢您的耐心，祝您生活愉快。",
    "请提供您的订单号，我帮您查询物流信息。",
    "转人工客服，正在为您转接人工客服，请稍候。",
    "Hello, how can I help you today?",
    "Where is my order? Orders ship within 48 hours of payment.",
    "How do I return an item? You can return it within 7 days from the order page.",
    "When will I get my refund? Refunds arrive in 3 to 5 business days.",
    "Can I change my shipping address? Yes, before the parcel ships.",
    "Thank you, goodbye! Have a nice day.",
    "Please give me your order number and I will check the tracking.",
    "I want to talk to a human agent. Connecting you to an agent now.",
]

SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]

# Shapes per preset: (embedding, layers, heads, kv heads, feed-forward, float type).
PRESETS = {
    "tiny": (64, 2, 4, 2, 128, "f32"),
    "bench": (1024, 16, 8, 4, 2816, "f32"),
    "bench-small": (1024, 4, 8, 4, 2816, "f32"),
}
N_CTX = 4096
VOCAB_SIZE = 400


def train_tokenizer() -> Tokenizer:
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE,
        special_tokens=SPECIALS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(CORPUS * 4, trainer=trainer)
    return tok


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--preset", choices=sorted(PRESETS), default="tiny")
    ap.add_argument("--tokenizer-json")
    ap.add_argument(
        "--quant",
        choices=["bf16", "q8_0", "q4_0"],
        help="store the weight matrices quantised (as deployed models are), not as floats",
    )
    ap.add_argument(
        "--never-end",
        action="store_true",
        help="zero the output rows of the special tokens, so greedy decoding never picks an "
        "end-of-generation token: every sequence runs to max_tokens (benchmarks compare like "
        "with like)",
    )
    args = ap.parse_args()
    n_embd, n_layer, n_head, n_head_kv, n_ff, ftype = PRESETS[args.preset]
    wtype = np.float16 if ftype == "f16" else np.float32

    tok = train_tokenizer()
    if args.tokenizer_json:
        tok.save(args.tokenizer_json)
    vocab = tok.get_vocab()
    n_vocab = len(vocab)
    tokens = [""] * n_vocab
    for piece, idx in vocab.items():
        tokens[idx] = piece
    types = [
        gguf.TokenType.CONTROL if t in SPECIALS else gguf.TokenType.NORMAL for t in tokens
    ]
    merges = [" ".join(pair) if isinstance(pair, (list, tuple)) else pair
              for pair in __import__("json").loads(tok.to_str())["model"]["merges"]]

    w = gguf.GGUFWriter(args.out, "llama")
    w.add_name(f"kefu-{args.preset}")
    w.add_context_length(N_CTX)
    w.add_embedding_length(n_embd)
    w.add_block_count(n_layer)
    w.add_feed_forward_length(n_ff)
    w.add_head_count(n_head)
    w.add_head_count_kv(n_head_kv)
    w.add_rope_dimension_count(n_embd // n_head)
    w.add_rope_freq_base(10000.0)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_vocab_size(n_vocab)
    qtype = {
        "bf16": gguf.GGMLQuantizationType.BF16,
        "q8_0": gguf.GGMLQuantizationType.Q8_0,
        "q4_0": gguf.GGMLQuantizationType.Q4_0,
    }.get(args.quant)
    if qtype == gguf.GGMLQuantizationType.BF16:
        w.add_file_type(gguf.LlamaFileType.MOSTLY_BF16)
    elif qtype == gguf.GGMLQuantizationType.Q8_0:
        w.add_file_type(gguf.LlamaFileType.MOSTLY_Q8_0)
    elif qtype == gguf.GGMLQuantizationType.Q4_0:
        w.add_file_type(gguf.LlamaFileType.MOSTLY_Q4_0)
    else:
        w.add_file_type(
            gguf.LlamaFileType.MOSTLY_F16 if ftype == "f16" else gguf.LlamaFileType.ALL_F32
        )

    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("default")
    w.add_token_list(tokens)
    w.add_token_types(types)
    w.add_token_merges(merges)
    eot = vocab["<|im_end|>"]
    w.add_bos_token_id(vocab["<|endoftext|>"])
    w.add_eos_token_id(eot)
    w.add_add_bos_token(False)
    w.add_chat_template(
        "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
        "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
    )

    rng = np.random.default_rng(args.seed)

    def mat(rows: int, cols: int) -> np.ndarray:
        return (rng.standard_normal((rows, cols), dtype=np.float32) / np.sqrt(cols)).astype(wtype)

    def add_matrix(name: str, data: np.ndarray) -> None:
        # Norms stay f32 (llama.cpp expects that); matrices are quantised when asked.
        if qtype is None:
            w.add_tensor(name, data)
        else:
            w.add_tensor(name, gguf.quants.quantize(data.astype(np.float32), qtype), raw_dtype=qtype)

    head_dim = n_embd // n_head
    add_matrix("token_embd.weight", mat(n_vocab, n_embd))
    w.add_tensor("output_norm.weight", np.ones(n_embd, dtype=np.float32))
    output = mat(n_vocab, n_embd)
    if args.never_end:
        # Their logit is then exactly 0, below the largest of ~400 random logits, so greedy
        # decoding never ends a sequence early. Drawn first and zeroed after, so the random
        # stream (and every other weight) is the same as without the flag.
        output[[vocab[t] for t in SPECIALS], :] = 0
    add_matrix("output.weight", output)
    for i in range(n_layer):
        w.add_tensor(f"blk.{i}.attn_norm.weight", np.ones(n_embd, dtype=np.float32))
        add_matrix(f"blk.{i}.attn_q.weight", mat(n_embd, n_embd))
        add_matrix(f"blk.{i}.attn_k.weight", mat(n_head_kv * head_dim, n_embd))
        add_matrix(f"blk.{i}.attn_v.weight", mat(n_head_kv * head_dim, n_embd))
        add_matrix(f"blk.{i}.attn_output.weight", mat(n_embd, n_embd))
        w.add_tensor(f"blk.{i}.ffn_norm.weight", np.ones(n_embd, dtype=np.float32))
        add_matrix(f"blk.{i}.ffn_gate.weight", mat(n_ff, n_embd))
        add_matrix(f"blk.{i}.ffn_up.weight", mat(n_ff, n_embd))
        add_matrix(f"blk.{i}.ffn_down.weight", mat(n_embd, n_ff))

    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    print(f"wrote {args.out}: preset {args.preset}, {n_vocab} tokens, {len(merges)} merges")


if __name__ == "__main__":
    main()
