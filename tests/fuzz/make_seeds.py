#!/usr/bin/env python3
"""Writes small valid seed inputs for the fuzz targets (tests/fuzz/corpus/<target>/): a tiny
Llama GGUF with an SPM vocabulary, a tiny Hugging Face folder (config.json + safetensors) joined
by a NUL byte as fuzz_hf_folder reads it, the safetensors alone, chat templates and request
bodies. The fuzzers
mutate these; nothing here is a reference for correctness. Run: tests/fuzz/make_seeds.py"""
import json, os, re, struct, random, shutil, glob

HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS = os.path.join(HERE, "corpus")
FIXTURES = os.path.join(HERE, "..", "..", "..", "shared", "fixtures")
rng = random.Random(1)

V, D, F, H, KV, HD = 16, 8, 16, 2, 1, 4  # vocab, hidden, ffn, heads, kv heads, head dim


def f32(n):
    return struct.pack("<%df" % n, *[rng.uniform(-0.5, 0.5) for _ in range(n)])


def gguf_str(s):
    b = s.encode()
    return struct.pack("<Q", len(b)) + b


def gguf_kv(k, t, payload):
    return gguf_str(k) + struct.pack("<I", t) + payload


def tiny_gguf(moe=False):
    arch = "llama"
    kv = [gguf_kv("general.architecture", 8, gguf_str(arch))]
    u32 = lambda k, v: kv.append(gguf_kv(k, 4, struct.pack("<I", v)))
    f = lambda k, v: kv.append(gguf_kv(k, 6, struct.pack("<f", v)))
    u32(arch + ".block_count", 1)
    u32(arch + ".embedding_length", D)
    u32(arch + ".feed_forward_length", F)
    u32(arch + ".attention.head_count", H)
    u32(arch + ".attention.head_count_kv", KV)
    u32(arch + ".context_length", 64)
    f(arch + ".attention.layer_norm_rms_epsilon", 1e-5)
    f(arch + ".rope.freq_base", 10000.0)
    if moe:
        u32(arch + ".expert_count", 2)
        u32(arch + ".expert_used_count", 1)
    toks = ["<unk>", "<s>", "</s>"] + ["<0x%02X>" % i for i in range(4)] + ["\u2581a", "\u2581b", "a", "b", "\u2581", "ab", "\u2581ab", "c", "d"]
    kv.append(gguf_kv("tokenizer.ggml.model", 8, gguf_str("llama")))
    kv.append(gguf_kv("tokenizer.ggml.tokens", 9, struct.pack("<IQ", 8, len(toks)) + b"".join(gguf_str(t) for t in toks)))
    kv.append(gguf_kv("tokenizer.ggml.scores", 9, struct.pack("<IQ", 6, len(toks)) + struct.pack("<%df" % len(toks), *[-float(i) for i in range(len(toks))])))
    types = [2, 3, 3] + [6] * 4 + [1] * (len(toks) - 7)
    kv.append(gguf_kv("tokenizer.ggml.token_type", 9, struct.pack("<IQ", 5, len(toks)) + struct.pack("<%di" % len(toks), *types)))
    u32("tokenizer.ggml.bos_token_id", 1)
    u32("tokenizer.ggml.eos_token_id", 2)
    tensors = [("token_embd.weight", [D, V]), ("output_norm.weight", [D]), ("output.weight", [D, V]),
               ("blk.0.attn_norm.weight", [D]), ("blk.0.attn_q.weight", [D, H * HD]),
               ("blk.0.attn_k.weight", [D, KV * HD]), ("blk.0.attn_v.weight", [D, KV * HD]),
               ("blk.0.attn_output.weight", [H * HD, D]), ("blk.0.ffn_norm.weight", [D])]
    if moe:
        tensors += [("blk.0.ffn_gate_inp.weight", [D, 2]), ("blk.0.ffn_gate_exps.weight", [D, F, 2]),
                    ("blk.0.ffn_up_exps.weight", [D, F, 2]), ("blk.0.ffn_down_exps.weight", [F, D, 2])]
    else:
        tensors += [("blk.0.ffn_gate.weight", [D, F]), ("blk.0.ffn_up.weight", [D, F]), ("blk.0.ffn_down.weight", [F, D])]
    infos, data = b"", b""
    for name, ne in tensors:
        n = 1
        for d in ne:
            n *= d
        while len(data) % 32:
            data += b"\0"
        infos += gguf_str(name) + struct.pack("<I", len(ne)) + struct.pack("<%dQ" % len(ne), *ne) + struct.pack("<IQ", 0, len(data))
        data += f32(n)
    out = struct.pack("<IIQQ", 0x46554747, 3, len(tensors), len(kv)) + b"".join(kv) + infos
    while len(out) % 32:
        out += b"\0"
    return out + data


def tiny_safetensors():
    L = "model.layers.0."
    shapes = {"model.embed_tokens.weight": [V, D], "model.norm.weight": [D], "lm_head.weight": [V, D],
              L + "input_layernorm.weight": [D], L + "post_attention_layernorm.weight": [D],
              L + "self_attn.q_proj.weight": [H * HD, D], L + "self_attn.k_proj.weight": [KV * HD, D],
              L + "self_attn.v_proj.weight": [KV * HD, D], L + "self_attn.o_proj.weight": [D, H * HD],
              L + "mlp.gate_proj.weight": [F, D], L + "mlp.up_proj.weight": [F, D], L + "mlp.down_proj.weight": [D, F]}
    header, data = {}, b""
    for name, shape in shapes.items():
        n = 1
        for d in shape:
            n *= d
        header[name] = {"dtype": "F32", "shape": shape, "data_offsets": [len(data), len(data) + 4 * n]}
        data += f32(n)
    h = json.dumps(header).encode()
    while len(h) % 8:
        h += b" "
    return struct.pack("<Q", len(h)) + h + data


def tiny_config():
    return json.dumps({"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": D,
                       "intermediate_size": F, "num_attention_heads": H, "num_key_value_heads": KV,
                       "head_dim": HD, "num_hidden_layers": 1, "vocab_size": V, "rms_norm_eps": 1e-6,
                       "rope_theta": 10000.0, "max_position_embeddings": 64, "tie_word_embeddings": False}).encode()


def request_bodies():
    """Request bodies for fuzz_request: every raw-string body of tests/test_server_request.cpp (the
    fragments that start with ',' completed into a chat request, as its chat() does), plus the
    shapes the API tests in tests/api send."""
    src = open(os.path.join(HERE, "..", "test_server_request.cpp")).read()
    msgs = '"messages":[{"role":"user","content":"hi"}]'
    bodies = []
    for b in re.findall(r'R"\((.*?)\)"', src, re.S):
        bodies.append("{" + msgs + b + "}" if b.startswith(",") else b)
    bodies += ['{"model":"m","prompt":"Once upon a time","max_tokens":8,"temperature":0,"stream":true,'
               '"stream_options":{"include_usage":true},"logprobs":2,"seed":7}',
               '{"prompt":[1,15043,3186],"max_tokens":2,"stop":["\\n"]}',
               '{"content":"Hello world","add_special":true,"parse_special":false}',
               '{"tokens":[1,15043,3186]}',
               '{"model":"m","messages":[{"role":"system","content":"Be brief."},{"role":"user",'
               '"content":"2+2?"}],"max_completion_tokens":4,"logprobs":true,"top_logprobs":2,'
               '"chat_template_kwargs":{"enable_thinking":true},"top_k":40,"min_p":0.05}']
    return bodies


def put(target, name, data):
    d = os.path.join(CORPUS, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def main():
    g, gm = tiny_gguf(), tiny_gguf(moe=True)
    for t in ("gguf", "gguf_model"):
        put(t, "tiny-llama.gguf", g)
        put(t, "tiny-mixtral.gguf", gm)
    st, cfg = tiny_safetensors(), tiny_config()
    put("safetensors", "tiny-llama.safetensors", st)
    put("hf_folder", "tiny-llama.cfg-st", cfg + b"\0" + st)
    # Real configs of every fixture family with the tiny tensors: the loaders' config paths.
    for c in sorted(glob.glob(os.path.join(FIXTURES, "models", "*", "config.json"))):
        fam = os.path.basename(os.path.dirname(c))
        put("hf_folder", fam + ".cfg-st", open(c, "rb").read() + b"\0" + st)
    # Chat templates: the official ones the tests embed, as written in tokenizer_config.json.
    for c in sorted(glob.glob(os.path.join(FIXTURES, "models", "*", "tokenizer_config.json"))):
        t = json.load(open(c)).get("chat_template")
        if isinstance(t, str):
            put("jinja", os.path.basename(os.path.dirname(c)) + ".jinja", t.encode())
    put("jinja", "constructs.jinja", b"{% set ns = namespace(a=1) %}{% macro m(x, y=2) %}{{ x ~ y }}{% endmacro %}"
        b"{% for i in range(3) if i is odd %}{{ loop.index }}{{ m(i) | upper | center(5) }}{% else %}-{% endfor %}"
        b"{{ [1, 2, 3][::-1] | join(',') }}{{ {'a': 1} | tojson(indent=2) }}{{ 'x' * 3 }}{{ 7 // -2 }}{{ 2 ** 10 }}"
        b"{{ messages | selectattr('role', 'eq', 'user') | map(attribute='content') | list }}")
    # Tokenizer inputs: the upstream test strings (first byte selects the vocabulary).
    for inp in sorted(glob.glob(os.path.join(FIXTURES, "tokenizers", "*.inp")))[:2]:
        for k, s in enumerate(open(inp, "rb").read().split(b"\n__ggml_vocab_test__\n")[:24]):
            put("tokenizer", "%s-%02d" % (os.path.basename(inp)[:-4], k), bytes([k % 8]) + s)
    for k, b in enumerate(request_bodies()):
        put("request", "body-%02d.json" % k, b.encode())


if __name__ == "__main__":
    main()
