/* The candidate scan of watcher.rules.match, in C.
 *
 * An ``Index`` holds the rules' words (unstemmed) in a compact open-addressing table and,
 * per anchor word, the entries filed under it with their companion conditions. ``scan``
 * walks an item's text once -- field values in the spaced form of normalize.spaced, where
 * tokens are separated by spaces and nothing else, joined by newlines -- looks every token
 * up, and returns a ``Found``: which rule words the text holds (``in``, ``isdisjoint``) and
 * which entries pass: their anchor is held, their companion is satisfied (a companion word
 * held, or a companion prefix starting some token) and, for an entry filed under a phrase's
 * token pair, the pair occurs side by side within one value.
 *
 * Semantics are those of the pure-Python path in match.py (``candidates`` with
 * ``_passing_anchors``); tests run both and compare. Nothing here allocates Python objects
 * per token: the work per item is one pass over the text's bytes and one table probe per
 * token, against ~40 us of string objects, hashing and set probes in Python at 10,000 rules.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

/* --- hashing ---------------------------------------------------------------------------- */

static inline uint64_t
hash_bytes(const unsigned char *p, Py_ssize_t n)
{
    uint64_t h = 0x9E3779B97F4A7C15ULL ^ (uint64_t)n;
    while (n >= 8) {
        uint64_t v;
        memcpy(&v, p, 8);
        h = (h ^ v) * 0xFF51AFD7ED558CCDULL;
        h ^= h >> 32;
        p += 8;
        n -= 8;
    }
    uint64_t v = 0;
    memcpy(&v, p, (size_t)n);
    h = (h ^ v) * 0xC4CEB9FE1A85EC53ULL;
    h ^= h >> 29;
    h *= 0x94D049BB133111EBULL;
    h ^= h >> 32;
    return h;
}

/* The first four bytes of a token, hashed into a bitmap of token starts: a prefix of four or
 * more bytes whose bit is clear starts no token, so most prefix tests skip the search. */
#define START_BITS 8192

static inline uint32_t
start_bit(const char *bytes)
{
    uint32_t v;
    memcpy(&v, bytes, 4);
    return (v * 0x9E3779B1U) >> 19; /* 13 bits: < START_BITS */
}

/* --- Index ------------------------------------------------------------------------------ */

typedef struct {
    uint32_t tag; /* high 32 bits of the hash */
    uint32_t id;  /* word id + 1; 0: empty */
} Slot;

typedef struct {
    PyObject_HEAD
    Slot *slots;
    uint64_t mask;
    Py_ssize_t n_words;
    char *pool;              /* the words' UTF-8 bytes, one after the other */
    Py_ssize_t *word_start;  /* n_words + 1 offsets into pool */
    Py_ssize_t *anchor_start; /* n_words + 1 offsets into anchor_entries */
    Py_ssize_t *anchor_entries;
    Py_ssize_t n_entries;
    Py_ssize_t *companion_start; /* n_entries + 1 offsets into companions */
    Py_ssize_t *companions;      /* word ids */
    Py_ssize_t *prefix_start;    /* n_entries + 1 offsets into prefix_ids */
    Py_ssize_t *prefix_ids;      /* indexes into prefixes */
    PyObject **prefixes;         /* distinct str objects (" " + prefix), kept alive here */
    Py_ssize_t n_prefixes;
    Py_ssize_t *pair_left;       /* per entry: word ids of the pair, or -1 */
    Py_ssize_t *pair_right;
    unsigned char *pair_starts;  /* per word: 1 if it is the left word of some pair */
} Index;

typedef struct {
    PyObject_HEAD
    Index *index;
    unsigned char *seen; /* one bit per word id */
    PyObject *entries;   /* list of int: the passing entries, ascending */
} Found;

static PyTypeObject IndexType;
static PyTypeObject FoundType;

static void
Index_clear_arrays(Index *self)
{
    PyMem_Free(self->slots);
    PyMem_Free(self->pool);
    PyMem_Free(self->word_start);
    PyMem_Free(self->anchor_start);
    PyMem_Free(self->anchor_entries);
    PyMem_Free(self->companion_start);
    PyMem_Free(self->companions);
    PyMem_Free(self->prefix_start);
    PyMem_Free(self->prefix_ids);
    self->prefix_ids = NULL;
    if (self->prefixes != NULL) {
        for (Py_ssize_t i = 0; i < self->n_prefixes; i++) {
            Py_XDECREF(self->prefixes[i]);
        }
    }
    PyMem_Free(self->prefixes);
    PyMem_Free(self->pair_left);
    PyMem_Free(self->pair_right);
    PyMem_Free(self->pair_starts);
    self->pair_left = self->pair_right = NULL;
    self->pair_starts = NULL;
    self->slots = NULL;
    self->pool = NULL;
    self->word_start = self->anchor_start = self->anchor_entries = NULL;
    self->companion_start = self->companions = self->prefix_start = NULL;
    self->prefixes = NULL;
    self->n_words = self->n_entries = self->n_prefixes = 0;
}

static void
Index_dealloc(Index *self)
{
    Index_clear_arrays(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* The id of the word with these bytes and this hash, or -1. */
static inline Py_ssize_t
Index_probe(const Index *self, const char *bytes, Py_ssize_t len, uint64_t h)
{
    uint32_t tag = (uint32_t)(h >> 32);
    uint64_t j = h & self->mask;
    for (;;) {
        const Slot slot = self->slots[j];
        if (slot.id == 0) {
            return -1;
        }
        if (slot.tag == tag) {
            Py_ssize_t id = (Py_ssize_t)slot.id - 1;
            Py_ssize_t start = self->word_start[id];
            if (self->word_start[id + 1] - start == len &&
                memcmp(self->pool + start, bytes, (size_t)len) == 0) {
                return id;
            }
        }
        j = (j + 1) & self->mask;
    }
}

/* The id of the word with these bytes, or -1. */
static inline Py_ssize_t
Index_lookup(const Index *self, const char *bytes, Py_ssize_t len)
{
    return Index_probe(self, bytes, len, hash_bytes((const unsigned char *)bytes, len));
}

static int
fill_words(Index *self, PyObject *words)
{
    Py_ssize_t n = PyList_GET_SIZE(words);
    Py_ssize_t total = 0;
    self->n_words = n;
    self->word_start = PyMem_Calloc((size_t)n + 1, sizeof(Py_ssize_t));
    if (self->word_start == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        Py_ssize_t len;
        PyObject *word = PyList_GET_ITEM(words, i);
        if (!PyUnicode_Check(word)) {
            PyErr_SetString(PyExc_TypeError, "words must be str");
            return -1;
        }
        if (PyUnicode_AsUTF8AndSize(word, &len) == NULL) {
            return -1;
        }
        self->word_start[i] = total;
        total += len;
    }
    self->word_start[n] = total;
    self->pool = PyMem_Malloc((size_t)total + 1);
    uint64_t size = 64;
    while (size < 2 * (uint64_t)n + 1) { /* at most half full: short probe runs */
        size <<= 1;
    }
    self->slots = PyMem_Calloc((size_t)size, sizeof(Slot));
    if (self->pool == NULL || self->slots == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    self->mask = size - 1;
    for (Py_ssize_t i = 0; i < n; i++) {
        Py_ssize_t len;
        const char *bytes = PyUnicode_AsUTF8AndSize(PyList_GET_ITEM(words, i), &len);
        if (Index_lookup(self, bytes, len) >= 0) {
            PyErr_SetString(PyExc_ValueError, "words must be distinct");
            return -1;
        }
        memcpy(self->pool + self->word_start[i], bytes, (size_t)len);
        uint64_t h = hash_bytes((const unsigned char *)bytes, len);
        uint64_t j = h & self->mask;
        while (self->slots[j].id != 0) {
            j = (j + 1) & self->mask;
        }
        self->slots[j].tag = (uint32_t)(h >> 32);
        self->slots[j].id = (uint32_t)(i + 1);
    }
    return 0;
}

/* A sequence of ints in [0, limit) into a new array; its length goes to *count. */
static Py_ssize_t *
ids_of(PyObject *sequence, Py_ssize_t limit, Py_ssize_t *count)
{
    PyObject *fast = PySequence_Fast(sequence, "expected a sequence of ints");
    if (fast == NULL) {
        return NULL;
    }
    Py_ssize_t n = PySequence_Fast_GET_SIZE(fast);
    Py_ssize_t *ids = PyMem_Malloc(sizeof(Py_ssize_t) * ((size_t)n + 1));
    if (ids == NULL) {
        Py_DECREF(fast);
        PyErr_NoMemory();
        return NULL;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        Py_ssize_t id = PyLong_AsSsize_t(PySequence_Fast_GET_ITEM(fast, i));
        if (id == -1 && PyErr_Occurred()) {
            goto fail;
        }
        if (id < 0 || id >= limit) {
            PyErr_SetString(PyExc_ValueError, "word id out of range");
            goto fail;
        }
        ids[i] = id;
    }
    Py_DECREF(fast);
    *count = n;
    return ids;
fail:
    Py_DECREF(fast);
    PyMem_Free(ids);
    return NULL;
}

/* entries: a sequence of (anchor word id, companion word ids, prefixes with a space before,
 * pair) where pair is () or (left word id, right word id). */
static int
fill_entries(Index *self, PyObject *entries)
{
    PyObject *fast = PySequence_Fast(entries, "entries must be a sequence");
    if (fast == NULL) {
        return -1;
    }
    Py_ssize_t n = PySequence_Fast_GET_SIZE(fast), n_words = self->n_words;
    Py_ssize_t *anchor_of = PyMem_Malloc(sizeof(Py_ssize_t) * ((size_t)n + 1));
    PyObject *distinct = NULL;
    self->n_entries = n;
    self->anchor_start = PyMem_Calloc((size_t)n_words + 2, sizeof(Py_ssize_t));
    self->anchor_entries = PyMem_Malloc(sizeof(Py_ssize_t) * ((size_t)n + 1));
    self->companion_start = PyMem_Calloc((size_t)n + 1, sizeof(Py_ssize_t));
    self->prefix_start = PyMem_Calloc((size_t)n + 1, sizeof(Py_ssize_t));
    self->pair_left = PyMem_Malloc(sizeof(Py_ssize_t) * ((size_t)n + 1));
    self->pair_right = PyMem_Malloc(sizeof(Py_ssize_t) * ((size_t)n + 1));
    self->pair_starts = PyMem_Calloc((size_t)n_words + 1, 1);
    if (anchor_of == NULL || self->anchor_start == NULL || self->anchor_entries == NULL ||
        self->companion_start == NULL || self->prefix_start == NULL ||
        self->pair_left == NULL || self->pair_right == NULL || self->pair_starts == NULL) {
        PyErr_NoMemory();
        goto fail;
    }
    /* First pass: sizes. */
    Py_ssize_t n_companions = 0, n_prefixes = 0;
    for (Py_ssize_t e = 0; e < n; e++) {
        PyObject *entry = PySequence_Fast_GET_ITEM(fast, e);
        PyObject *anchor, *companions, *prefixes, *pair;
        if (!PyTuple_Check(entry) ||
            !PyArg_ParseTuple(entry, "OOOO", &anchor, &companions, &prefixes, &pair)) {
            if (!PyErr_Occurred()) {
                PyErr_SetString(PyExc_TypeError,
                                "an entry is (anchor, companions, prefixes, pair)");
            }
            goto fail;
        }
        Py_ssize_t pair_count;
        Py_ssize_t *pair_ids = ids_of(pair, n_words, &pair_count);
        if (pair_ids == NULL) {
            goto fail;
        }
        if (pair_count != 0 && pair_count != 2) {
            PyMem_Free(pair_ids);
            PyErr_SetString(PyExc_ValueError, "a pair is () or (left, right)");
            goto fail;
        }
        self->pair_left[e] = pair_count ? pair_ids[0] : -1;
        self->pair_right[e] = pair_count ? pair_ids[1] : -1;
        if (pair_count) {
            self->pair_starts[pair_ids[0]] = 1;
        }
        PyMem_Free(pair_ids);
        Py_ssize_t id = PyLong_AsSsize_t(anchor);
        if (id == -1 && PyErr_Occurred()) {
            goto fail;
        }
        if (id < 0 || id >= n_words) {
            PyErr_SetString(PyExc_ValueError, "anchor id out of range");
            goto fail;
        }
        anchor_of[e] = id;
        self->anchor_start[id + 1]++;
        Py_ssize_t c = PySequence_Size(companions), p = PySequence_Size(prefixes);
        if (c < 0 || p < 0) {
            goto fail;
        }
        n_companions += c;
        n_prefixes += p;
    }
    for (Py_ssize_t w = 0; w < n_words; w++) {
        self->anchor_start[w + 1] += self->anchor_start[w];
    }
    self->companions = PyMem_Malloc(sizeof(Py_ssize_t) * ((size_t)n_companions + 1));
    self->prefix_ids = PyMem_Malloc(sizeof(Py_ssize_t) * ((size_t)n_prefixes + 1));
    self->prefixes = PyMem_Calloc((size_t)n_prefixes + 1, sizeof(PyObject *));
    distinct = PyDict_New(); /* prefix -> its index in self->prefixes */
    if (self->companions == NULL || self->prefix_ids == NULL || self->prefixes == NULL ||
        distinct == NULL) {
        if (!PyErr_Occurred()) {
            PyErr_NoMemory();
        }
        goto fail;
    }
    /* Second pass: contents, entries of one anchor in ascending order. */
    Py_ssize_t *next = PyMem_Malloc(sizeof(Py_ssize_t) * ((size_t)n_words + 1));
    if (next == NULL) {
        PyErr_NoMemory();
        goto fail;
    }
    memcpy(next, self->anchor_start, sizeof(Py_ssize_t) * (size_t)n_words);
    Py_ssize_t c_at = 0, p_at = 0;
    for (Py_ssize_t e = 0; e < n; e++) {
        PyObject *entry = PySequence_Fast_GET_ITEM(fast, e);
        self->anchor_entries[next[anchor_of[e]]++] = e;
        Py_ssize_t count;
        Py_ssize_t *ids = ids_of(PyTuple_GET_ITEM(entry, 1), n_words, &count);
        if (ids == NULL) {
            PyMem_Free(next);
            goto fail;
        }
        memcpy(self->companions + c_at, ids, sizeof(Py_ssize_t) * (size_t)count);
        PyMem_Free(ids);
        self->companion_start[e] = c_at;
        c_at += count;
        PyObject *prefixes = PySequence_Fast(PyTuple_GET_ITEM(entry, 2), "prefixes");
        if (prefixes == NULL) {
            PyMem_Free(next);
            goto fail;
        }
        self->prefix_start[e] = p_at;
        for (Py_ssize_t i = 0; i < PySequence_Fast_GET_SIZE(prefixes); i++) {
            PyObject *prefix = PySequence_Fast_GET_ITEM(prefixes, i);
            if (!PyUnicode_Check(prefix) || PyUnicode_AsUTF8(prefix) == NULL) {
                if (!PyErr_Occurred()) {
                    PyErr_SetString(PyExc_TypeError, "prefixes must be str");
                }
                Py_DECREF(prefixes);
                PyMem_Free(next);
                goto fail;
            }
            PyObject *known = PyDict_GetItemWithError(distinct, prefix);
            if (known == NULL && PyErr_Occurred()) {
                Py_DECREF(prefixes);
                PyMem_Free(next);
                goto fail;
            }
            if (known == NULL) {
                PyObject *number = PyLong_FromSsize_t(self->n_prefixes);
                if (number == NULL || PyDict_SetItem(distinct, prefix, number) < 0) {
                    Py_XDECREF(number);
                    Py_DECREF(prefixes);
                    PyMem_Free(next);
                    goto fail;
                }
                Py_DECREF(number);
                Py_INCREF(prefix);
                self->prefix_ids[p_at++] = self->n_prefixes;
                self->prefixes[self->n_prefixes++] = prefix;
            }
            else {
                self->prefix_ids[p_at++] = PyLong_AsSsize_t(known);
            }
        }
        Py_DECREF(prefixes);
    }
    self->companion_start[n] = c_at;
    self->prefix_start[n] = p_at;
    PyMem_Free(next);
    PyMem_Free(anchor_of);
    Py_DECREF(distinct);
    Py_DECREF(fast);
    return 0;
fail:
    PyMem_Free(anchor_of);
    Py_XDECREF(distinct);
    Py_DECREF(fast);
    return -1;
}

static int
Index_init(Index *self, PyObject *args, PyObject *kwds)
{
    static char *keywords[] = {"words", "entries", NULL};
    PyObject *words_arg, *entries;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "OO", keywords, &words_arg, &entries)) {
        return -1;
    }
    if (self->slots != NULL) { /* Found objects rely on the arrays staying as they are */
        PyErr_SetString(PyExc_TypeError, "an Index cannot be initialised twice");
        return -1;
    }
    PyObject *words = PySequence_List(words_arg);
    if (words == NULL) {
        return -1;
    }
    int failed = fill_words(self, words) < 0 || fill_entries(self, entries) < 0;
    Py_DECREF(words);
    if (failed) {
        Index_clear_arrays(self);
        return -1;
    }
    return 0;
}

static inline int
is_seen(const unsigned char *seen, Py_ssize_t id)
{
    return (seen[id >> 3] >> (id & 7)) & 1;
}

/* Adjacent rule-word pairs seen in one scan, as (left << 32 | right) + 1, in an
 * open-addressing set at most half full (0: an empty slot). */
typedef struct {
    uint64_t *keys;
    uint64_t mask;
    Py_ssize_t count;
} Pairs;

static inline uint64_t
pair_slot(uint64_t key, uint64_t mask)
{
    return ((key * 0x9E3779B97F4A7C15ULL) >> 17) & mask;
}

static int
pairs_add(Pairs *pairs, uint64_t key)
{
    key += 1;
    if ((uint64_t)(pairs->count + 1) * 2 > pairs->mask + 1 || pairs->keys == NULL) {
        uint64_t size = pairs->keys == NULL ? 64 : (pairs->mask + 1) * 2;
        uint64_t *keys = PyMem_Calloc((size_t)size, sizeof(uint64_t));
        if (keys == NULL) {
            return -1;
        }
        if (pairs->keys != NULL) {
            for (uint64_t i = 0; i <= pairs->mask; i++) {
                if (pairs->keys[i] != 0) {
                    uint64_t j = pair_slot(pairs->keys[i], size - 1);
                    while (keys[j] != 0) {
                        j = (j + 1) & (size - 1);
                    }
                    keys[j] = pairs->keys[i];
                }
            }
            PyMem_Free(pairs->keys);
        }
        pairs->keys = keys;
        pairs->mask = size - 1;
    }
    uint64_t j = pair_slot(key, pairs->mask);
    while (pairs->keys[j] != 0) {
        if (pairs->keys[j] == key) {
            return 0;
        }
        j = (j + 1) & pairs->mask;
    }
    pairs->keys[j] = key;
    pairs->count++;
    return 0;
}

static int
pairs_have(const Pairs *pairs, uint64_t key)
{
    if (pairs->keys == NULL) {
        return 0;
    }
    key += 1;
    uint64_t j = pair_slot(key, pairs->mask);
    while (pairs->keys[j] != 0) {
        if (pairs->keys[j] == key) {
            return 1;
        }
        j = (j + 1) & pairs->mask;
    }
    return 0;
}

/* Tokens are hashed a batch at a time and their table slots prefetched, so that the
 * probes of one batch wait on memory together rather than one after the other. */
#define BATCH 16

typedef struct {
    const char *start;
    Py_ssize_t len;
    uint64_t hash;
    int after_newline; /* the token starts a new value: no pair with the one before */
} Token;

static PyObject *
Index_scan(Index *self, PyObject *text)
{
    Py_ssize_t n;
    if (!PyUnicode_Check(text)) {
        PyErr_SetString(PyExc_TypeError, "text must be str");
        return NULL;
    }
    if (self->slots == NULL) {
        PyErr_SetString(PyExc_TypeError, "the Index was not initialised");
        return NULL;
    }
    const char *s = PyUnicode_AsUTF8AndSize(text, &n);
    if (s == NULL) {
        return NULL;
    }
    Found *found = PyObject_New(Found, &FoundType);
    if (found == NULL) {
        return NULL;
    }
    Py_INCREF(self);
    found->index = self;
    found->entries = NULL;
    found->seen = PyMem_Calloc((size_t)(self->n_words >> 3) + 1, 1);
    Py_ssize_t held_size = 64, n_held = 0;
    Py_ssize_t *held = PyMem_Malloc(sizeof(Py_ssize_t) * (size_t)held_size);
    Pairs pairs = {NULL, 0, 0};
    unsigned char *prefix_state = NULL; /* per distinct prefix: 0 not looked for, 1 found, 2 not */
    PyObject *passing = NULL;
    uint64_t starts[START_BITS / 64];
    int track_starts = self->n_prefixes > 0;
    if (track_starts) {
        memset(starts, 0, sizeof(starts));
    }
    if (found->seen == NULL || held == NULL) {
        PyErr_NoMemory();
        goto fail;
    }
    const char *end = s + n;
    const char *at = s;
    Py_ssize_t previous = -1;
    Token batch[BATCH];
    while (at < end) {
        int count = 0, newline = 0;
        while (count < BATCH && at < end) {
            while (at < end && (*at == ' ' || *at == '\n')) {
                newline |= *at == '\n';
                at++;
            }
            const char *start = at;
            while (at < end && *at != ' ' && *at != '\n') {
                at++;
            }
            if (at == start) {
                break;
            }
            Token *token = &batch[count++];
            token->start = start;
            token->len = at - start;
            token->hash = hash_bytes((const unsigned char *)start, token->len);
            token->after_newline = newline;
            newline = 0;
            __builtin_prefetch(&self->slots[token->hash & self->mask]);
            if (track_starts && token->len >= 4) {
                uint32_t bit = start_bit(start);
                starts[bit >> 6] |= (uint64_t)1 << (bit & 63);
            }
        }
        for (int t = 0; t < count; t++) {
            Token *token = &batch[t];
            Py_ssize_t id = Index_probe(self, token->start, token->len, token->hash);
            if (token->after_newline) {
                previous = -1;
            }
            if (id >= 0 && previous >= 0 && self->pair_starts[previous] &&
                pairs_add(&pairs, ((uint64_t)previous << 32) | (uint64_t)id) < 0) {
                PyErr_NoMemory();
                goto fail;
            }
            previous = id;
            if (id < 0 || is_seen(found->seen, id)) {
                continue;
            }
            found->seen[id >> 3] |= (unsigned char)(1 << (id & 7));
            if (self->anchor_start[id] == self->anchor_start[id + 1]) {
                continue;
            }
            if (n_held == held_size) {
                held_size *= 2;
                Py_ssize_t *bigger =
                    PyMem_Realloc(held, sizeof(Py_ssize_t) * (size_t)held_size);
                if (bigger == NULL) {
                    PyErr_NoMemory();
                    goto fail;
                }
                held = bigger;
            }
            held[n_held++] = id;
        }
    }
    /* Entries of the held anchors whose companion is satisfied and whose pair occurs. */
    passing = PyList_New(0);
    if (passing == NULL) {
        goto fail;
    }
    for (Py_ssize_t h = 0; h < n_held; h++) {
        Py_ssize_t anchor = held[h];
        for (Py_ssize_t k = self->anchor_start[anchor]; k < self->anchor_start[anchor + 1]; k++) {
            Py_ssize_t e = self->anchor_entries[k];
            if (self->pair_left[e] >= 0 &&
                !pairs_have(&pairs, ((uint64_t)self->pair_left[e] << 32) |
                                        (uint64_t)self->pair_right[e])) {
                continue;
            }
            int pass = 0;
            for (Py_ssize_t c = self->companion_start[e]; c < self->companion_start[e + 1]; c++) {
                if (is_seen(found->seen, self->companions[c])) {
                    pass = 1;
                    break;
                }
            }
            for (Py_ssize_t p = self->prefix_start[e]; !pass && p < self->prefix_start[e + 1]; p++) {
                Py_ssize_t id = self->prefix_ids[p];
                if (prefix_state == NULL) {
                    prefix_state = PyMem_Calloc((size_t)self->n_prefixes, 1);
                    if (prefix_state == NULL) {
                        PyErr_NoMemory();
                        goto fail;
                    }
                }
                if (prefix_state[id] == 0) {
                    Py_ssize_t len;
                    const char *needle = PyUnicode_AsUTF8AndSize(self->prefixes[id], &len);
                    if (needle == NULL) {
                        goto fail;
                    }
                    int found_it = 1;
                    if (len >= 5) { /* a space and four bytes or more: the bitmap may tell */
                        uint32_t bit = start_bit(needle + 1);
                        found_it = (starts[bit >> 6] >> (bit & 63)) & 1;
                    }
                    if (found_it) {
                        found_it = memmem(s, (size_t)n, needle, (size_t)len) != NULL;
                    }
                    prefix_state[id] = found_it ? 1 : 2;
                }
                pass = prefix_state[id] == 1;
            }
            if (pass) {
                PyObject *number = PyLong_FromSsize_t(e);
                if (number == NULL || PyList_Append(passing, number) < 0) {
                    Py_XDECREF(number);
                    goto fail;
                }
                Py_DECREF(number);
            }
        }
    }
    PyMem_Free(held);
    PyMem_Free(pairs.keys);
    PyMem_Free(prefix_state);
    if (PyList_Sort(passing) < 0) {
        Py_DECREF(passing);
        Py_DECREF(found);
        return NULL;
    }
    found->entries = passing;
    return (PyObject *)found;
fail:
    PyMem_Free(held);
    PyMem_Free(pairs.keys);
    PyMem_Free(prefix_state);
    Py_XDECREF(passing);
    Py_DECREF(found);
    return NULL;
}

static PyObject *
Index_get_words(Index *self, void *closure)
{
    return PyLong_FromSsize_t(self->n_words);
}

static PyMethodDef Index_methods[] = {
    {"scan", (PyCFunction)Index_scan, METH_O,
     "scan(text) -> Found: the rule words a text holds and the entries that pass."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef Index_getset[] = {
    {"words", (getter)Index_get_words, NULL, "the number of words", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject IndexType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "watcher.rules._scan.Index",
    .tp_doc = "Index(words, entries): rule words and the entries filed under anchor words.",
    .tp_basicsize = sizeof(Index),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Index_init,
    .tp_dealloc = (destructor)Index_dealloc,
    .tp_methods = Index_methods,
    .tp_getset = Index_getset,
};

/* --- Found ------------------------------------------------------------------------------ */

static void
Found_dealloc(Found *self)
{
    PyMem_Free(self->seen);
    Py_XDECREF(self->entries);
    Py_XDECREF(self->index);
    PyObject_Free(self);
}

/* 1 if ``word`` is a rule word the text holds, 0 if not, -1 on error. */
static int
Found_holds(Found *self, PyObject *word)
{
    if (!PyUnicode_Check(word)) {
        return 0;
    }
    Py_ssize_t len;
    const char *bytes = PyUnicode_AsUTF8AndSize(word, &len);
    if (bytes == NULL) {
        return -1;
    }
    Py_ssize_t id = Index_lookup(self->index, bytes, len);
    return id >= 0 && is_seen(self->seen, id);
}

static PyObject *
Found_isdisjoint(Found *self, PyObject *words)
{
    PyObject *iterator = PyObject_GetIter(words);
    if (iterator == NULL) {
        return NULL;
    }
    PyObject *word;
    while ((word = PyIter_Next(iterator)) != NULL) {
        int held = Found_holds(self, word);
        Py_DECREF(word);
        if (held != 0) {
            Py_DECREF(iterator);
            return held < 0 ? NULL : Py_NewRef(Py_False);
        }
    }
    Py_DECREF(iterator);
    if (PyErr_Occurred()) {
        return NULL;
    }
    Py_RETURN_TRUE;
}

static PyObject *
Found_get_entries(Found *self, void *closure)
{
    return Py_NewRef(self->entries);
}

static PyMethodDef Found_methods[] = {
    {"isdisjoint", (PyCFunction)Found_isdisjoint, METH_O,
     "isdisjoint(words) -> True when the text holds none of these rule words."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef Found_getset[] = {
    {"entries", (getter)Found_get_entries, NULL, "the passing entries, ascending", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PySequenceMethods Found_as_sequence = {
    .sq_contains = (objobjproc)Found_holds,
};

static PyTypeObject FoundType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "watcher.rules._scan.Found",
    .tp_doc = "What Index.scan found in one text.",
    .tp_basicsize = sizeof(Found),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_dealloc = (destructor)Found_dealloc,
    .tp_methods = Found_methods,
    .tp_getset = Found_getset,
    .tp_as_sequence = &Found_as_sequence,
};

/* --- starts ------------------------------------------------------------------------------ */

/* starts(value, tokens) -> list of the token positions where ``tokens`` occur one after the
 * other in a spaced value (tokens separated by runs of spaces): what match.py's ``_starts``
 * finds in the value's single-spaced form, without building that form. */
static PyObject *
starts(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2 || !PyUnicode_Check(args[0])) {
        PyErr_SetString(PyExc_TypeError, "starts(value: str, tokens: sequence of str)");
        return NULL;
    }
    Py_ssize_t n;
    const char *s = PyUnicode_AsUTF8AndSize(args[0], &n);
    if (s == NULL) {
        return NULL;
    }
    PyObject *fast = PySequence_Fast(args[1], "tokens must be a sequence");
    if (fast == NULL) {
        return NULL;
    }
    Py_ssize_t m = PySequence_Fast_GET_SIZE(fast);
    const char **want = PyMem_Malloc(sizeof(char *) * ((size_t)m + 1));
    Py_ssize_t *want_len = PyMem_Malloc(sizeof(Py_ssize_t) * ((size_t)m + 1));
    PyObject *found = PyList_New(0);
    if (want == NULL || want_len == NULL || found == NULL) {
        if (!PyErr_Occurred()) {
            PyErr_NoMemory();
        }
        goto fail;
    }
    for (Py_ssize_t i = 0; i < m; i++) {
        PyObject *token = PySequence_Fast_GET_ITEM(fast, i);
        if (!PyUnicode_Check(token)) {
            PyErr_SetString(PyExc_TypeError, "tokens must be str");
            goto fail;
        }
        want[i] = PyUnicode_AsUTF8AndSize(token, &want_len[i]);
        if (want[i] == NULL) {
            goto fail;
        }
    }
    if (m == 0) {
        goto done;
    }
    /* Walk the value's tokens; at each, compare the following ones with ``tokens``. */
    const char *end = s + n;
    const char *at = s;
    Py_ssize_t position = 0;
    while (at < end) {
        while (at < end && *at == ' ') {
            at++;
        }
        if (at == end) {
            break;
        }
        const char *token = at;
        while (at < end && *at != ' ') {
            at++;
        }
        if (at - token == want_len[0] && memcmp(token, want[0], (size_t)want_len[0]) == 0) {
            const char *next = at;
            Py_ssize_t k = 1;
            for (; k < m; k++) {
                while (next < end && *next == ' ') {
                    next++;
                }
                const char *other = next;
                while (next < end && *next != ' ') {
                    next++;
                }
                if (next - other != want_len[k] ||
                    memcmp(other, want[k], (size_t)want_len[k]) != 0) {
                    break;
                }
            }
            if (k == m) {
                PyObject *number = PyLong_FromSsize_t(position);
                if (number == NULL || PyList_Append(found, number) < 0) {
                    Py_XDECREF(number);
                    goto fail;
                }
                Py_DECREF(number);
            }
        }
        position++;
    }
done:
    PyMem_Free(want);
    PyMem_Free(want_len);
    Py_DECREF(fast);
    return found;
fail:
    PyMem_Free(want);
    PyMem_Free(want_len);
    Py_DECREF(fast);
    Py_XDECREF(found);
    return NULL;
}

/* --- module ----------------------------------------------------------------------------- */

static PyMethodDef module_functions[] = {
    {"starts", (PyCFunction)(void (*)(void))starts, METH_FASTCALL,
     "starts(value, tokens) -> the token positions where tokens occur in a row."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef scan_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "watcher.rules._scan",
    .m_doc = "Candidate scan for watcher's rule matcher.",
    .m_size = -1,
    .m_methods = module_functions,
};

PyMODINIT_FUNC
PyInit__scan(void)
{
    if (PyType_Ready(&IndexType) < 0 || PyType_Ready(&FoundType) < 0) {
        return NULL;
    }
    PyObject *module = PyModule_Create(&scan_module);
    if (module == NULL) {
        return NULL;
    }
    if (PyModule_AddObjectRef(module, "Index", (PyObject *)&IndexType) < 0 ||
        PyModule_AddObjectRef(module, "Found", (PyObject *)&FoundType) < 0) {
        Py_DECREF(module);
        return NULL;
    }
    return module;
}
