#!/usr/bin/env python3
"""Small SentencePiece-BPE-style tokenizer (training + llama.cpp-compatible SPM encoder).

Vocabulary layout (the way the upstream llama.cpp converter stores a Llama SPM vocab):
    0 <unk> (type 2), 1 <s> (type 3), 2 </s> (type 3),
    3..258  <0x00>..<0xFF> byte-fallback tokens (type 6),
    then single characters of the training text (type 1), then BPE merges (type 1).
Scores: specials and bytes 0.0; base characters -(n_merges+1); the merge of rank r
(0 = first merge learned) has score -(r+1), so "merge the adjacent pair with the
highest score" replays the BPE merge order.

Encoder (exactly what the upstream SPM tokenizer does for tokenizer.ggml.model=llama):
    text -> replace " " by "\u2581", prepend "\u2581" -> split into UTF-8 characters ->
    repeatedly merge the adjacent symbol pair whose concatenation is a vocab token with the
    highest score (ties: leftmost pair) -> every final symbol that is not a vocab token is
    emitted as its UTF-8 bytes (<0xXX> tokens).
"""
import collections
import heapq

SPACE = "\u2581"
UNK, BOS, EOS = 0, 1, 2
TT_NORMAL, TT_UNKNOWN, TT_CONTROL, TT_BYTE = 1, 2, 3, 6


class SPMVocab:
    def __init__(self, tokens, scores, types):
        self.tokens, self.scores, self.types = list(tokens), list(scores), list(types)
        self.tok2id = {}
        for i, (t, ty) in enumerate(zip(self.tokens, self.types)):
            if ty in (TT_NORMAL,) and t not in self.tok2id:
                self.tok2id[t] = i
        self.byte_id = [self.tokens.index(f"<0x{b:02X}>") for b in range(256)]
        # fast-path precondition: no normal token contains SPACE except at position 0,
        # and none contains "\n"; then encoding can be done per space-started chunk.
        self.chunkable = all((SPACE not in t[1:]) and ("\n" not in t)
                             for t in self.tok2id)
        self._cache = {}

    # -- exact upstream algorithm ------------------------------------------------
    def _encode_symbols(self, text):
        """text already has the space replacement / prefix applied."""
        if not text:
            return []
        sym = list(text)                 # UTF-8 characters
        n = len(sym)
        prev = list(range(-1, n - 1))
        nxt = list(range(1, n + 1)); nxt[-1] = -1
        alive = [True] * n
        heap = []

        def try_add(l, r):
            if l < 0 or r < 0:
                return
            s = sym[l] + sym[r]
            tid = self.tok2id.get(s)
            if tid is None:
                return
            # max score first, then leftmost (smallest left index)
            heapq.heappush(heap, (-self.scores[tid], l, r, s))

        for i in range(n - 1):
            try_add(i, i + 1)
        while heap:
            _, l, r, s = heapq.heappop(heap)
            # stale entry if either side changed since it was pushed
            if not alive[l] or not alive[r] or nxt[l] != r or sym[l] + sym[r] != s:
                continue
            sym[l] = s
            alive[r] = False
            nxt[l] = nxt[r]
            if nxt[r] >= 0:
                prev[nxt[r]] = l
            try_add(prev[l], l)
            try_add(l, nxt[l])
        out = []
        i = 0
        while i >= 0:
            tid = self.tok2id.get(sym[i])
            if tid is not None:
                out.append(tid)
            else:
                out.extend(self.byte_id[b] for b in sym[i].encode("utf-8"))
            i = nxt[i]
        return out

    def encode_exact(self, text):
        return self._encode_symbols(SPACE + text.replace(" ", SPACE))

    def encode(self, text):
        """Same result as encode_exact, chunked + cached (valid when self.chunkable)."""
        if not self.chunkable:
            return self.encode_exact(text)
        t = SPACE + text.replace(" ", SPACE)
        out = []
        cache = self._cache
        # chunks: split before every SPACE and around every "\n"
        start = 0
        n = len(t)
        i = 1
        while True:
            if i >= n or t[i] == SPACE or t[i] == "\n" or t[i - 1] == "\n":
                piece = t[start:i]
                ids = cache.get(piece)
                if ids is None:
                    ids = self._encode_symbols(piece)
                    cache[piece] = ids
                out.extend(ids)
                start = i
                if i >= n:
                    break
            i += 1
        return out

    def decode(self, ids):
        bs = bytearray()
        for i in ids:
            ty = self.types[i]
            if ty == TT_BYTE:
                bs.append(int(self.tokens[i][3:5], 16))
            elif ty == TT_NORMAL:
                bs.extend(self.tokens[i].replace(SPACE, " ").encode("utf-8"))
        return bs.decode("utf-8", errors="replace")


def train_bpe(text, vocab_size, min_char_count=1):
    """Learn a BPE vocabulary on `text` (words = space-separated, each prefixed by SPACE
    as the encoder sees them; "\n" never merged).  Returns an SPMVocab."""
    t = SPACE + text.replace(" ", SPACE)
    # word counts over the same chunking the encoder uses
    words = collections.Counter()
    for line in t.split("\n"):
        parts = line.split(SPACE)
        if parts[0]:
            words[parts[0]] += 1
        for p in parts[1:]:
            words[SPACE + p] += 1
    char_counts = collections.Counter()
    for w, c in words.items():
        for ch in w:
            char_counts[ch] += c
    chars = sorted(ch for ch, c in char_counts.items() if c >= min_char_count)
    charset = set(chars)
    n_fixed = 3 + 256 + len(chars)
    n_merges = vocab_size - n_fixed
    assert n_merges > 0

    # word -> list of symbols (chars outside charset stay as their own unmergeable symbol)
    wlist = [(list(w), c) for w, c in words.items()]
    pair_counts = collections.Counter()
    pair_where = collections.defaultdict(set)
    for wi, (syms, c) in enumerate(wlist):
        for a, b in zip(syms, syms[1:]):
            if a in charset and b in charset:
                pair_counts[a, b] += c
                pair_where[a, b].add(wi)

    merges = []
    vocab_set = set(chars)
    while len(merges) < n_merges and pair_counts:
        # most frequent pair; ties broken deterministically by the strings
        best = max(pair_counts.items(), key=lambda kv: (kv[1], kv[0]))[0]
        if pair_counts[best] < 2:
            break
        a, b = best
        new = a + b
        if new not in vocab_set:      # same string reachable by another split: one token
            merges.append(new)
            vocab_set.add(new)
        for wi in list(pair_where.get(best, ())):
            syms, c = wlist[wi]
            # remove old pair counts of this word
            for p in zip(syms, syms[1:]):
                if p in pair_counts:
                    pair_counts[p] -= c
                    if pair_counts[p] <= 0:
                        del pair_counts[p]
                    pair_where[p].discard(wi)
            j = 0
            ns = []
            while j < len(syms):
                if j + 1 < len(syms) and syms[j] == a and syms[j + 1] == b:
                    ns.append(new); j += 2
                else:
                    ns.append(syms[j]); j += 1
            wlist[wi] = (ns, c)
            for p in zip(ns, ns[1:]):
                if p[0] in vocab_set and p[1] in vocab_set:
                    pair_counts[p] += c
                    pair_where[p].add(wi)
        pair_counts.pop(best, None)
        pair_where.pop(best, None)

    tokens = ["<unk>", "<s>", "</s>"] + [f"<0x{b:02X}>" for b in range(256)]
    scores = [0.0] * len(tokens)
    types = [TT_UNKNOWN, TT_CONTROL, TT_CONTROL] + [TT_BYTE] * 256
    nm = len(merges)
    for ch in chars:
        tokens.append(ch); scores.append(float(-(nm + 1))); types.append(TT_NORMAL)
    for r, m in enumerate(merges):
        tokens.append(m); scores.append(float(-(r + 1))); types.append(TT_NORMAL)
    return SPMVocab(tokens, scores, types)
