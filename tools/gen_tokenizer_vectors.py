#!/usr/bin/env python3
"""Test vectors for tokenizers shipped without tokenizer.json (vocab.json + merges.txt + configs).

For each folder kind under tests/goldens/tokenizers/<name>/ (small config files only, committed),
a temporary folder is built from those configs plus GPT-2's vocab.json and merges.txt from
../shared/assets/tokenizers/gpt2 (never copied into the repository), loaded with transformers'
AutoTokenizer.from_pretrained, and the ids of a set of awkward texts are written, with and without
special tokens, to tests/goldens/tokenizers/<name>/vectors.json. The C++ test
(tests/converter/test_tokenizer_files.cpp) synthesizes tokenizer.json from the same folder and
compares.

Folders:
  opt      facebook/opt-350m's tokenizer_config.json and special_tokens_map.json (GPT2Tokenizer,
           add_bos_token true, bos/eos/unk </s>, pad <pad>) and a config.json with model_type opt.
  gpt2     gpt2's own tokenizer_config.json and special_tokens_map.json (<|endoftext|>).
  roberta  a RobertaTokenizer config (<s> A </s>, <mask> with lstrip) plus an added_tokens.json.

Run (no network needed):  /tmp/tv/bin/python tools/gen_tokenizer_vectors.py [--check]
--check recomputes and compares with the committed vectors instead of writing them.
"""
import argparse
import json
import os
import shutil
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ASSETS = os.path.join(ROOT, "..", "shared", "assets", "tokenizers", "gpt2")
GOLDENS = os.path.join(ROOT, "tests", "goldens", "tokenizers")

TEXTS = [
    "Hello world",
    " Hello world",
    "Hello</s>world",
    "a </s> b</s>",
    "<s>start and end</s>",
    "<pad><pad> padded",
    "<unk> <mask> <mask>x",
    "fill the <mask> in",
    "<|endoftext|>",
    "text<|endoftext|>more <|endoftext|> ",
    "naïve café — Ünïcödé façade",
    "日本語のテキストと中文",
    "emoji 🤖👍🏽 family 👨‍👩‍👧 flag 🇫🇷",
    "e\u0301 vs \u00e9, Å vs A\u030a",
    "   leading spaces",
    "trailing spaces   ",
    "a     b\t\tc\n\nd \n e",
    "\n\n\n",
    " ",
    "",
    "3.14159 1234567890 -42 1e-9 0x1F",
    "I'm don't they're we've you'll he'd it's",
    "def f(x):\n    return x**2  # square\n",
    "for (int i = 0; i < n; ++i) { sum += a[i]; }",
    "<html><body class=\"x\">&amp;</body></html>",
    "ALL CAPS and MiXeD cAsE",
    "\u00a0non-breaking\u2009thin\u3000ideographic",
    "zero\u200bwidth\u200djoiner",
    "مرحبا بالعالم",
    "Привет, мир!",
    "<s",
    "</s",
    "<|endoftext",
]


def opt_files():
    token = lambda c: {"content": c, "single_word": False, "lstrip": False, "rstrip": False, "normalized": True,
                       "__type": "AddedToken"}
    cfg = {"errors": "replace", "unk_token": token("</s>"), "bos_token": token("</s>"), "eos_token": token("</s>"),
           "pad_token": token("<pad>"), "add_prefix_space": False, "add_bos_token": True,
           "special_tokens_map_file": None, "name_or_path": "patrickvonplaten/opt-30b"}
    plain = lambda c: {k: v for k, v in token(c).items() if k != "__type"}
    stm = {"bos_token": plain("</s>"), "eos_token": plain("</s>"), "unk_token": plain("</s>"), "pad_token": plain("<pad>")}
    return {"tokenizer_config.json": cfg, "special_tokens_map.json": stm, "config.json": {"model_type": "opt"}}


def gpt2_files():
    out = {}
    for name in ("tokenizer_config.json", "special_tokens_map.json"):
        with open(os.path.join(ASSETS, name), encoding="utf-8") as f:
            out[name] = json.load(f)
    return out


def roberta_files():
    cfg = {"tokenizer_class": "RobertaTokenizer", "add_prefix_space": False, "errors": "replace",
           "bos_token": "<s>", "eos_token": "</s>", "sep_token": "</s>", "cls_token": "<s>", "unk_token": "<unk>",
           "pad_token": "<pad>",
           "mask_token": {"content": "<mask>", "lstrip": True, "rstrip": False, "normalized": False,
                          "single_word": False, "__type": "AddedToken"},
           "model_max_length": 512, "trim_offsets": True}
    return {"tokenizer_config.json": cfg, "added_tokens.json": {"<extra_0>": 50257, "<extra_1>": 50258}}


FOLDERS = {"opt": opt_files, "gpt2": gpt2_files, "roberta": roberta_files}
EXTRA_TEXTS = {"roberta": ["<extra_0> and<extra_1>x", "<extra_0><mask></s>"]}


def compute(name, config_dir):
    from transformers import AutoTokenizer
    with tempfile.TemporaryDirectory() as tmp:
        for f in ("vocab.json", "merges.txt"):
            shutil.copy(os.path.join(ASSETS, f), os.path.join(tmp, f))
        for f in os.listdir(config_dir):
            if f.endswith(".json") and f != "vectors.json":
                shutil.copy(os.path.join(config_dir, f), os.path.join(tmp, f))
        tok = AutoTokenizer.from_pretrained(tmp)
        cases = []
        for text in TEXTS + EXTRA_TEXTS.get(name, []):
            cases.append({"text": text, "ids": tok.encode(text), "ids_no_special": tok.encode(text, add_special_tokens=False)})
        import transformers
        return {"folder": name, "vocab_from": "tokenizers/gpt2 (vocab.json, merges.txt)",
                "generator": "tools/gen_tokenizer_vectors.py: AutoTokenizer.from_pretrained, transformers " +
                             transformers.__version__ + " (" + type(tok).__name__ + ")",
                "cases": cases}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--check", action="store_true", help="compare with the committed vectors")
    args = ap.parse_args()
    if not os.path.isdir(ASSETS):
        sys.exit(f"shared assets not found at {ASSETS}")
    bad = 0
    for name, files in FOLDERS.items():
        d = os.path.join(GOLDENS, name)
        if not args.check:
            os.makedirs(d, exist_ok=True)
            for fname, content in files().items():
                with open(os.path.join(d, fname), "w", encoding="utf-8") as f:
                    json.dump(content, f, indent=2, ensure_ascii=False)
                    f.write("\n")
        vectors = compute(name, d)
        path = os.path.join(d, "vectors.json")
        if args.check:
            with open(path, encoding="utf-8") as f:
                if json.load(f)["cases"] != vectors["cases"]:
                    print(f"{path}: differs from AutoTokenizer")
                    bad += 1
            continue
        with open(path, "w", encoding="utf-8") as f:
            json.dump(vectors, f, indent=1, ensure_ascii=False)
            f.write("\n")
        print(f"{path}: {len(vectors['cases'])} cases ({vectors['generator']})")
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
