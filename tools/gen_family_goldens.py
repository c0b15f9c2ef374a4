#!/usr/bin/env python3
"""Generate tiny golden-reference models for the GPT-2 / OPT / BLOOM / GPT-NeoX /
Falcon families of the qmodel runtime.

What it writes
--------------
For every variant in VARIANTS, a folder OUT_DIR/<variant>/ containing:

  config.json        exactly as transformers' save_pretrained() writes it
  model.safetensors  fp32 weights, exactly as save_pretrained(safe_serialization=True)
                     writes them (tied lm_head weights are NOT stored separately)
  (generation_config.json, if save_pretrained writes one -- kept as written)
  logits.f32         raw little-endian float32, shape [18, vocab] (row-major):
                     model(prompt_ids).logits[0] of ONE forward pass over the prompt
  golden.json        {"variant", "family", "transformers_version", "torch_version",
                      "seed", "prompt_ids" (18 ints), "greedy_ids" (24 ints),
                      "logits_shape" [18, vocab], "min_top1_margin" (over the 24
                      greedy steps), "min_prompt_top1_margin" (over the 18 rows of
                      logits.f32), "config_class", "num_params"}

The models are random-initialised from the config classes (nothing is
downloaded). Every parameter is re-initialised so that it matters:
Linear / Conv1D weights ~ N(0, W_GAIN/sqrt(fan_in)) with W_GAIN = 2 (an untied
lm_head: 3/sqrt(fan_in)), token embeddings N(0, EMB_STD = 0.5), learned position
embeddings N(0, 0.5), norm weights 1 + 0.2*N(0,1), every bias (norm biases
included) 0.1*N(0,1). Tied weights stay tied (the tied lm_head is the embedding).
Why W_GAIN = 2 and EMB_STD = 0.5: with a gain of 1 the tied-embedding models
(GPT-2, OPT pre-LN, BLOOM, Falcon) are dominated by the token's own embedding in
the residual stream and greedy decoding repeats one token forever, which makes
a poor golden; the larger block outputs give varied continuations while the
hidden-state std stays around 2-5.

greedy_ids are produced by a manual loop (no generate(), no EOS stopping): at
each step the model runs on the whole sequence so far (no KV cache), the argmax
of the last position's logits is appended. A seed is accepted only if at every
greedy step AND at every prompt position (the rows of logits.f32) the top-1
logit beats the second by >= MIN_MARGIN (3e-2), and the 24 greedy tokens contain
at least MIN_DISTINCT (8) distinct ids; otherwise the variant's seed is bumped
(up to 20 tries). The seed used is recorded in golden.json. With the same
transformers/torch versions the output is bit-for-bit reproducible.

All computation: CPU, torch.float32, eval mode, eager attention.

How to run
----------
    /tmp/tv/bin/python tools/gen_family_goldens.py [OUT_DIR] [--only v1,v2]

OUT_DIR defaults to tests/goldens/families (relative to the repo root).
"""

import argparse
import json
import math
import os
import shutil
import sys

import numpy as np
import torch
import transformers
from transformers import (
    AutoModelForCausalLM,
    BloomConfig,
    FalconConfig,
    GPT2Config,
    GPTNeoXConfig,
    OPTConfig,
)

PROMPT_LEN = 18
NEW_TOKENS = 24
MIN_MARGIN = 3e-2  # the brief asked for >= 1e-2; 3e-2 costs only a few extra seeds
MAX_SEED_TRIES = 20
# Init scales (see module docstring); overridable from the environment for experiments.
W_GAIN = float(os.environ.get("W_GAIN", "2.0"))
EMB_STD = float(os.environ.get("EMB_STD", "0.5"))
MIN_DISTINCT = int(os.environ.get("MIN_DISTINCT", "8"))

# Common small token ids so that config.json stays self-consistent (all < vocab).
_TOK = dict(bos_token_id=1, eos_token_id=2)


def _variants():
    """name -> (family, base_seed, config factory)."""
    return {
        "gpt2": ("gpt2", 1001, lambda: GPT2Config(
            vocab_size=400, n_positions=64, n_embd=64, n_layer=2, n_head=4, n_inner=128,
            activation_function="gelu_new", resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
            tie_word_embeddings=True, **_TOK)),
        "opt_postln_proj": ("opt", 2001, lambda: OPTConfig(
            vocab_size=400, hidden_size=64, word_embed_proj_dim=32, num_hidden_layers=2,
            ffn_dim=128, num_attention_heads=4, max_position_embeddings=64,
            do_layer_norm_before=False, activation_function="relu", enable_bias=True,
            dropout=0.0, attention_dropout=0.0, tie_word_embeddings=True,
            pad_token_id=1, bos_token_id=2, eos_token_id=2)),
        "opt_preln": ("opt", 3001, lambda: OPTConfig(
            vocab_size=400, hidden_size=64, word_embed_proj_dim=64, num_hidden_layers=2,
            ffn_dim=160, num_attention_heads=4, max_position_embeddings=64,
            do_layer_norm_before=True, activation_function="relu", enable_bias=True,
            dropout=0.0, attention_dropout=0.0, tie_word_embeddings=True,
            pad_token_id=1, bos_token_id=2, eos_token_id=2)),
        # 6 heads (not a power of two) -> exercises the extra ALiBi slopes.
        # hidden 48 (head_dim 8) instead of 96 to keep the committed size small
        # (BLOOM's MLP is hard-wired to 4*hidden).
        "bloom": ("bloom", 4001, lambda: BloomConfig(
            vocab_size=400, hidden_size=48, n_layer=2, n_head=6,
            hidden_dropout=0.0, attention_dropout=0.0, tie_word_embeddings=True, **_TOK)),
        # apply_residual_connection_post_layernorm: the residual is the normalised input.
        "bloom_residual_postln": ("bloom", 4101, lambda: BloomConfig(
            vocab_size=400, hidden_size=48, n_layer=2, n_head=6, apply_residual_connection_post_layernorm=True,
            hidden_dropout=0.0, attention_dropout=0.0, tie_word_embeddings=True, **_TOK)),
        # GPT-2 without 1/sqrt(d) attention scaling, fp32-upcast attention reordering on.
        "gpt2_unscaled": ("gpt2", 1101, lambda: GPT2Config(
            vocab_size=400, n_embd=64, n_layer=2, n_head=4, n_positions=64, n_inner=128,
            activation_function="gelu_new", scale_attn_weights=False, reorder_and_upcast_attn=True,
            resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, **_TOK)),
        "gpt_neox": ("gpt_neox", 5001, lambda: GPTNeoXConfig(
            vocab_size=400, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
            intermediate_size=160, hidden_act="gelu", max_position_embeddings=64,
            rope_parameters={"rope_type": "default", "rope_theta": 10000.0,
                             "partial_rotary_factor": 0.25},
            use_parallel_residual=True, tie_word_embeddings=False,
            attention_dropout=0.0, hidden_dropout=0.0, **_TOK)),
        "gpt_neox_seq": ("gpt_neox", 6001, lambda: GPTNeoXConfig(
            vocab_size=400, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
            intermediate_size=160, hidden_act="gelu_new", max_position_embeddings=64,
            rope_parameters={"rope_type": "default", "rope_theta": 10000.0,
                             "partial_rotary_factor": 0.5},
            use_parallel_residual=False, tie_word_embeddings=False,
            attention_dropout=0.0, hidden_dropout=0.0, **_TOK)),
        "falcon7b": ("falcon", 7001, lambda: FalconConfig(
            vocab_size=400, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
            ffn_hidden_size=128, multi_query=True, parallel_attn=True,
            new_decoder_architecture=False, alibi=False, bias=False,
            max_position_embeddings=64, tie_word_embeddings=True, **_TOK)),
        "falcon_newarch": ("falcon", 8001, lambda: FalconConfig(
            vocab_size=400, hidden_size=64, num_hidden_layers=2, num_attention_heads=8,
            num_kv_heads=2, ffn_hidden_size=128, new_decoder_architecture=True,
            parallel_attn=True, alibi=False, bias=False, max_position_embeddings=64,
            tie_word_embeddings=True, **_TOK)),
        # 12 heads: the extra slopes 2^-0.5k are not bf16 values (Falcon rounds its ALiBi to bf16).
        "falcon_rw_alibi": ("falcon", 9001, lambda: FalconConfig(
            vocab_size=400, hidden_size=96, num_hidden_layers=2, num_attention_heads=12,
            ffn_hidden_size=128, multi_query=False, parallel_attn=False,
            new_decoder_architecture=False, alibi=True, bias=True,
            max_position_embeddings=64, tie_word_embeddings=True, **_TOK)),
        "falcon_newarch_1ln": ("falcon", 10001, lambda: FalconConfig(
            vocab_size=400, hidden_size=64, num_hidden_layers=2, num_attention_heads=8,
            num_kv_heads=2, num_ln_in_parallel_attn=1, ffn_hidden_size=128,
            new_decoder_architecture=True, parallel_attn=True, alibi=False, bias=False,
            max_position_embeddings=64, tie_word_embeddings=True, **_TOK)),
    }


def _is_norm(mod):
    if isinstance(mod, (torch.nn.LayerNorm, torch.nn.GroupNorm, torch.nn.RMSNorm)):
        return True
    return "norm" in type(mod).__name__.lower()


def reinit(model, gen):
    """Re-initialise every parameter (see module docstring). Returns #params."""
    from transformers.pytorch_utils import Conv1D

    def normal_(t, std, mean=0.0):
        with torch.no_grad():
            t.copy_(torch.randn(t.shape, generator=gen, dtype=torch.float32) * std + mean)

    done = set()
    in_emb = model.get_input_embeddings()
    out_emb = model.get_output_embeddings()
    for name, mod in model.named_modules():
        for pname, p in mod.named_parameters(recurse=False):
            if id(p) in done:
                continue
            full = f"{name}.{pname}" if name else pname
            if pname == "bias":
                normal_(p, 0.1)
            elif isinstance(mod, torch.nn.Embedding):
                if mod is in_emb:
                    normal_(p, EMB_STD)
                elif "pos" in name or name.endswith("wpe"):
                    normal_(p, 0.5)
                else:
                    raise RuntimeError(f"unexpected embedding {full}")
            elif _is_norm(mod) and pname == "weight":
                normal_(p, 0.2, mean=1.0)
            elif isinstance(mod, Conv1D) and pname == "weight":  # [in, out]
                normal_(p, W_GAIN / math.sqrt(p.shape[0]))
            elif isinstance(mod, torch.nn.Linear) and pname == "weight":  # [out, in]
                if p is in_emb.weight:
                    continue  # tied lm_head: owned (and initialised) by the embedding
                # An untied lm_head gets 3x the scale: it feeds nothing but the
                # logits, and larger logits keep greedy decoding well separated.
                gain = 3.0 if mod is out_emb else W_GAIN
                normal_(p, gain / math.sqrt(p.shape[1]))
            else:
                raise RuntimeError(f"don't know how to init {full} ({type(mod).__name__})")
            done.add(id(p))
    missing = [n for n, p in model.named_parameters() if id(p) not in done]
    if missing:
        raise RuntimeError(f"parameters not re-initialised: {missing}")
    return sum(p.numel() for p in model.parameters())


def margins(logits):
    top2 = torch.topk(logits, 2, dim=-1).values
    return top2[..., 0] - top2[..., 1]


def greedy(model, prompt):
    ids = prompt.clone()
    out, mins = [], []
    with torch.no_grad():
        for _ in range(NEW_TOKENS):
            last = model(ids).logits[0, -1]
            mins.append(float(margins(last)))
            nxt = int(torch.argmax(last))
            out.append(nxt)
            ids = torch.cat([ids, torch.tensor([[nxt]], dtype=ids.dtype)], dim=1)
    return out, min(mins)


def build(cfg_fn, seed):
    config = cfg_fn()
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32,
                                             attn_implementation="eager")
    model.eval()
    gen = torch.Generator().manual_seed(seed)
    nparams = reinit(model, gen)
    if getattr(model.config, "tie_word_embeddings", False):
        assert model.get_output_embeddings().weight is model.get_input_embeddings().weight, \
            "config ties embeddings but lm_head is not tied"
    else:
        assert model.get_output_embeddings().weight is not model.get_input_embeddings().weight
    vocab = model.config.vocab_size
    pgen = torch.Generator().manual_seed(seed + 7)
    prompt = torch.randint(0, vocab, (1, PROMPT_LEN), generator=pgen, dtype=torch.long)
    return model, nparams, prompt


def gen_variant(name, family, base_seed, cfg_fn, out_dir):
    for attempt in range(MAX_SEED_TRIES):
        seed = base_seed + attempt
        model, nparams, prompt = build(cfg_fn, seed)
        with torch.no_grad():
            logits = model(prompt).logits[0].float().contiguous()
        greedy_ids, gmin = greedy(model, prompt)
        pmin = float(margins(logits).min())
        # The greedy first step equals argmax of the prompt's last logits row.
        assert greedy_ids[0] == int(torch.argmax(logits[-1]))
        distinct = len(set(greedy_ids))
        if gmin >= MIN_MARGIN and pmin >= MIN_MARGIN and distinct >= MIN_DISTINCT:
            break
        print(f"  {name}: seed {seed} rejected (greedy margin {gmin:.4g}, "
              f"prompt margin {pmin:.4g}, {distinct} distinct greedy tokens)")
    else:
        raise RuntimeError(f"{name}: no seed with margin >= {MIN_MARGIN}")

    d = os.path.join(out_dir, name)
    if os.path.isdir(d):
        shutil.rmtree(d)
    os.makedirs(d)
    model.save_pretrained(d, safe_serialization=True)
    assert os.path.isfile(os.path.join(d, "config.json"))
    assert os.path.isfile(os.path.join(d, "model.safetensors"))
    logits.numpy().astype("<f4").tofile(os.path.join(d, "logits.f32"))

    # Round trip: reload and compare logits bit-for-bit.
    re = AutoModelForCausalLM.from_pretrained(d, dtype=torch.float32,
                                              attn_implementation="eager").eval()
    with torch.no_grad():
        relog = re(prompt).logits[0]
    if not torch.equal(relog, logits):
        raise RuntimeError(f"{name}: reloaded logits differ "
                           f"(max abs {float((relog - logits).abs().max())})")
    regreedy, _ = greedy(re, prompt)
    assert regreedy == greedy_ids, f"{name}: reloaded greedy differs"

    golden = {
        "variant": name,
        "family": family,
        "config_class": type(model.config).__name__,
        "transformers_version": transformers.__version__,
        "torch_version": torch.__version__,
        "seed": seed,
        "num_params": nparams,
        "prompt_ids": [int(x) for x in prompt[0]],
        "greedy_ids": greedy_ids,
        "logits_shape": list(logits.shape),
        # top-1 minus top-2 logit, min over the 24 greedy steps
        "min_top1_margin": gmin,
        # same, min over the 18 rows of logits.f32
        "min_prompt_top1_margin": pmin,
    }
    with open(os.path.join(d, "golden.json"), "w") as f:
        f.write("{\n" + ",\n".join(f" {json.dumps(k)}: {json.dumps(v)}"
                                    for k, v in golden.items()) + "\n}\n")
    size = sum(os.path.getsize(os.path.join(d, x)) for x in os.listdir(d))
    return dict(variant=name, params=nparams, size=size, margin=gmin, pmargin=pmin,
                seed=seed)


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out_dir", nargs="?",
                    default=os.path.join(here, "..", "tests", "goldens", "families"))
    ap.add_argument("--only", default="", help="comma-separated variant names")
    args = ap.parse_args()

    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)
    out_dir = os.path.normpath(args.out_dir)
    os.makedirs(out_dir, exist_ok=True)
    variants = _variants()
    names = [n for n in variants if not args.only or n in args.only.split(",")]
    rows = []
    for name in names:
        family, seed, fn = variants[name]
        print(f"[{name}]")
        rows.append(gen_variant(name, family, seed, fn, out_dir))

    print()
    print(f"transformers {transformers.__version__}, torch {torch.__version__}")
    print(f"{'variant':<20} {'params':>8} {'size(B)':>9} {'min margin':>11} "
          f"{'prompt margin':>14} {'seed':>6}")
    for r in rows:
        print(f"{r['variant']:<20} {r['params']:>8} {r['size']:>9} {r['margin']:>11.4f} "
              f"{r['pmargin']:>14.4f} {r['seed']:>6}")
    total = sum(r["size"] for r in rows)
    print(f"total size: {total} bytes ({total / 1024:.1f} KiB) in {out_dir}")


if __name__ == "__main__":
    main()
