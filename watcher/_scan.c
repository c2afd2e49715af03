/* The candidate scan of watcher.rules.match and the spacing of watcher.text, in C.
 *
 * An ``Index`` holds the rules' words (unstemmed) in a compact open-addressing table and,
 * per anchor word, the entries filed under it with their companion conditions. ``scan``
 * walks an item's text once -- field values in the spaced form of text.spaced, where
 * tokens are separated by spaces and nothing else, joined by newlines -- looks every token
 * up, and returns a ``Found``: which rule words the text holds (``in``, ``isdisjoint``) and
 * which entries pass: their anchor is held, their companion is satisfied (a companion word
 * held, or a companion prefix starting some token) and, for an entry filed under a phrase's
 * token pair, the pair occurs side by side within one value; for one filed under a longer
 * run of tokens (a phrase in a script written without spaces, whose values are spaced with
 * exactly one space between tokens), the whole run occurs too.
 *
 * Semantics are those of the pure-Python path in match.py (``candidates`` with
 * ``_passing_anchors``); tests run both and compare. Nothing here allocates Python objects
 * per token: the work per item is one pass over the text's bytes and one table probe per
 * token, against ~40 us of string objects, hashing and set probes in Python at 10,000 rules.
 *
 * ``spaced`` makes that spaced form from normalised text, as text.py's regexes do, from
 * a table of character classes that text.py builds from its Unicode database and hands
 * over with ``set_classes``: the one table both paths read.
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

/* Pairs of word ids hashed into a bitmap that stays in the L1 cache: a pair whose bit is
 * clear is no chain's, so most side-by-side words skip the pair table. */
#define PAIR_BITS 65536
/* The same for words: a token whose bit is clear is no rule word (most tokens of an item),
 * and its slot in the much larger word table is never read. */
#define WORD_BITS (1 << 18)

static inline uint32_t
word_bit(uint64_t hash)
{
    return (uint32_t)(hash >> 46); /* 18 bits: < WORD_BITS; the slot index uses the low bits */
}

typedef struct {
    PyObject_HEAD
    Slot *slots;
    uint64_t mask;
    uint32_t *direct;        /* per code point U+0800..U+FFFF (3 UTF-8 bytes): word id + 1,
                                0 when no word is that one character (CJK tokens) */
    uint64_t *pair_bits;     /* PAIR_BITS bits: see pair_bit */
    uint64_t *word_bits;     /* WORD_BITS bits: see word_bit */
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
    Py_ssize_t *chain_start;     /* n_entries + 1 offsets into chain_pairs */
    Py_ssize_t *chain_pairs;     /* per entry: numbers of the pairs that must occur */
    unsigned char *pair_starts;  /* per word: 1 if it is the left word of some pair */
    uint64_t *pair_keys;         /* the pairs: (left << 32 | right) + 1, 0 an empty slot */
    Py_ssize_t *pair_numbers;    /* per slot of pair_keys: the pair's number */
    uint64_t pair_mask;
    Py_ssize_t n_pairs;
    Py_ssize_t *entry_anchor;     /* per entry: its anchor word id */
    Py_ssize_t *pair_entry_start; /* n_pairs + 1 offsets into pair_entries */
    Py_ssize_t *pair_entries;     /* entries with a chain, filed under its first pair */
    PyObject **runs;             /* per entry: " a b c " (str) to find in the text, or NULL */
    PyObject **groups;           /* per entry: tuple of tuples of runs, or NULL: each tuple
                                    must have one run in the text */
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
    PyMem_Free(self->direct);
    PyMem_Free(self->pair_bits);
    PyMem_Free(self->word_bits);
    self->direct = NULL;
    self->pair_bits = NULL;
    self->word_bits = NULL;
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
    PyMem_Free(self->chain_start);
    PyMem_Free(self->chain_pairs);
    PyMem_Free(self->pair_starts);
    PyMem_Free(self->pair_keys);
    PyMem_Free(self->pair_numbers);
    PyMem_Free(self->entry_anchor);
    PyMem_Free(self->pair_entry_start);
    PyMem_Free(self->pair_entries);
    self->pair_keys = NULL;
    self->pair_numbers = NULL;
    self->entry_anchor = self->pair_entry_start = self->pair_entries = NULL;
    self->n_pairs = 0;
    if (self->runs != NULL) {
        for (Py_ssize_t i = 0; i < self->n_entries; i++) {
            Py_XDECREF(self->runs[i]);
        }
    }
    PyMem_Free(self->runs);
    self->runs = NULL;
    if (self->groups != NULL) {
        for (Py_ssize_t i = 0; i < self->n_entries; i++) {
            Py_XDECREF(self->groups[i]);
        }
    }
    PyMem_Free(self->groups);
    self->groups = NULL;
    self->chain_start = self->chain_pairs = NULL;
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

/* Whether a token is one character of three UTF-8 bytes (U+0800..U+FFFF: CJK, kana,
 * Hangul, Thai); the text is valid UTF-8, so the lead byte says it. */
static inline int
is_three_byte(const char *bytes, Py_ssize_t len)
{
    return len == 3 && ((unsigned char)bytes[0] & 0xF0) == 0xE0;
}

static inline uint32_t
code_point_of(const char *bytes)
{
    const unsigned char *b = (const unsigned char *)bytes;
    return ((uint32_t)(b[0] & 0x0F) << 12) | ((uint32_t)(b[1] & 0x3F) << 6) | (b[2] & 0x3F);
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
    self->direct = PyMem_Calloc(0x10000, sizeof(uint32_t));
    self->word_bits = PyMem_Calloc(WORD_BITS / 64, sizeof(uint64_t));
    if (self->pool == NULL || self->slots == NULL || self->direct == NULL ||
        self->word_bits == NULL) {
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
        uint32_t bit = word_bit(h);
        self->word_bits[bit >> 6] |= (uint64_t)1 << (bit & 63);
        if (is_three_byte(bytes, len)) {
            self->direct[code_point_of(bytes)] = (uint32_t)(i + 1);
        }
    }
    return 0;
}

/* A sequence of ints in [0, limit) into a new array; its length goes to *count. */
static Py_ssize_t *
ids_of(PyObject *sequence, Py_ssize_t limit, Py_ssize_t *count)
{
    /* A tuple of its own: an item's __index__ cannot change what is read here. */
    PyObject *fast = PySequence_Tuple(sequence);
    if (fast == NULL) {
        return NULL;
    }
    Py_ssize_t n = PyTuple_GET_SIZE(fast);
    Py_ssize_t *ids = PyMem_Malloc(sizeof(Py_ssize_t) * ((size_t)n + 1));
    if (ids == NULL) {
        Py_DECREF(fast);
        PyErr_NoMemory();
        return NULL;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        Py_ssize_t id = PyLong_AsSsize_t(PyTuple_GET_ITEM(fast, i));
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

static inline uint64_t
pair_slot(uint64_t key, uint64_t mask)
{
    return ((key * 0x9E3779B97F4A7C15ULL) >> 17) & mask;
}

static inline uint32_t
pair_bit(uint64_t key)
{
    return (uint32_t)((key * 0xD6E8FEB86659FD93ULL) >> 48); /* 16 bits: < PAIR_BITS */
}

/* The number of the pair (left, right), or -1 when no entry needs it. */
static inline Py_ssize_t
pair_number(const Index *self, Py_ssize_t left, Py_ssize_t right)
{
    uint64_t key = (((uint64_t)left << 32) | (uint64_t)right) + 1;
    uint32_t bit = pair_bit(key);
    if (!((self->pair_bits[bit >> 6] >> (bit & 63)) & 1)) {
        return -1;
    }
    uint64_t j = pair_slot(key, self->pair_mask);
    while (self->pair_keys[j] != 0) {
        if (self->pair_keys[j] == key) {
            return self->pair_numbers[j];
        }
        j = (j + 1) & self->pair_mask;
    }
    return -1;
}

/* Number every distinct adjacent pair of the entries' chains (word ids, in ``ids`` from
 * ``self->chain_start``) into a table at most half full, and turn the chains into the
 * numbers of their pairs. */
static int
fill_pairs(Index *self, const Py_ssize_t *ids)
{
    Py_ssize_t n = self->n_entries, total = 0;
    for (Py_ssize_t e = 0; e < n; e++) {
        Py_ssize_t length = self->chain_start[e + 1] - self->chain_start[e];
        total += length > 1 ? length - 1 : 0;
    }
    uint64_t size = 64;
    while (size < 2 * (uint64_t)total + 1) {
        size <<= 1;
    }
    self->pair_keys = PyMem_Calloc((size_t)size, sizeof(uint64_t));
    self->pair_numbers = PyMem_Malloc(sizeof(Py_ssize_t) * (size_t)size);
    self->pair_bits = PyMem_Calloc(PAIR_BITS / 64, sizeof(uint64_t));
    Py_ssize_t *pairs = PyMem_Malloc(sizeof(Py_ssize_t) * ((size_t)total + 1));
    Py_ssize_t *starts = PyMem_Malloc(sizeof(Py_ssize_t) * ((size_t)n + 1));
    if (self->pair_keys == NULL || self->pair_numbers == NULL || pairs == NULL ||
        starts == NULL || self->pair_bits == NULL) {
        PyMem_Free(pairs);
        PyMem_Free(starts);
        PyErr_NoMemory();
        return -1;
    }
    self->pair_mask = size - 1;
    Py_ssize_t at = 0;
    for (Py_ssize_t e = 0; e < n; e++) {
        starts[e] = at;
        for (Py_ssize_t c = self->chain_start[e]; c + 1 < self->chain_start[e + 1]; c++) {
            uint64_t key = (((uint64_t)ids[c] << 32) | (uint64_t)ids[c + 1]) + 1;
            uint64_t j = pair_slot(key, self->pair_mask);
            while (self->pair_keys[j] != 0 && self->pair_keys[j] != key) {
                j = (j + 1) & self->pair_mask;
            }
            if (self->pair_keys[j] == 0) {
                self->pair_keys[j] = key;
                self->pair_numbers[j] = self->n_pairs++;
                uint32_t bit = pair_bit(key);
                self->pair_bits[bit >> 6] |= (uint64_t)1 << (bit & 63);
            }
            pairs[at++] = self->pair_numbers[j];
        }
    }
    starts[n] = at;
    PyMem_Free(self->chain_start);
    self->chain_start = starts;
    self->chain_pairs = pairs;
    /* Entries with a chain, by their first pair, in ascending order. */
    self->pair_entry_start = PyMem_Calloc((size_t)self->n_pairs + 2, sizeof(Py_ssize_t));
    self->pair_entries = PyMem_Malloc(sizeof(Py_ssize_t) * ((size_t)n + 1));
    if (self->pair_entry_start == NULL || self->pair_entries == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    for (Py_ssize_t e = 0; e < n; e++) {
        if (starts[e] < starts[e + 1]) {
            self->pair_entry_start[pairs[starts[e]] + 1]++;
        }
    }
    for (Py_ssize_t p = 0; p < self->n_pairs; p++) {
        self->pair_entry_start[p + 1] += self->pair_entry_start[p];
    }
    Py_ssize_t *next = PyMem_Malloc(sizeof(Py_ssize_t) * ((size_t)self->n_pairs + 1));
    if (next == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    memcpy(next, self->pair_entry_start, sizeof(Py_ssize_t) * (size_t)self->n_pairs);
    for (Py_ssize_t e = 0; e < n; e++) {
        if (starts[e] < starts[e + 1]) {
            self->pair_entries[next[pairs[starts[e]]]++] = e;
        }
    }
    PyMem_Free(next);
    return 0;
}

static void
release_kept(PyObject **kept, Py_ssize_t n)
{
    if (kept != NULL) {
        for (Py_ssize_t i = 0; i < 2 * n; i++) {
            Py_XDECREF(kept[i]);
        }
        PyMem_Free(kept);
    }
}

/* entries: a sequence of (anchor word id, companion word ids, prefixes with a space before,
 * chain[, run[, groups]]) where chain is () or the word ids of two or more tokens that must
 * occur side by side (each adjacent pair within one value), run is "" or the chain's tokens
 * with a space around each, which must then occur in the text as they are, and groups is a
 * tuple of tuples of such runs: each tuple must have one run in the text.
 *
 * The entries and each entry's companions and prefixes are copied into tuples once, in the
 * first pass: the arrays are sized from those copies and the second pass fills them from
 * the same copies, so a __len__ that lies or a sequence that changes cannot overrun them. */
/* 0 if ``groups`` is a tuple of non-empty tuples of str, else -1 with an exception set. */
static int
check_groups(PyObject *groups)
{
    if (!PyTuple_Check(groups)) {
        PyErr_SetString(PyExc_TypeError, "groups must be a tuple of tuples of str");
        return -1;
    }
    for (Py_ssize_t g = 0; g < PyTuple_GET_SIZE(groups); g++) {
        PyObject *group = PyTuple_GET_ITEM(groups, g);
        if (!PyTuple_Check(group) || PyTuple_GET_SIZE(group) == 0) {
            PyErr_SetString(PyExc_TypeError, "a group must be a non-empty tuple of str");
            return -1;
        }
        for (Py_ssize_t r = 0; r < PyTuple_GET_SIZE(group); r++) {
            PyObject *run = PyTuple_GET_ITEM(group, r);
            if (!PyUnicode_Check(run) || PyUnicode_AsUTF8(run) == NULL) {
                if (!PyErr_Occurred()) {
                    PyErr_SetString(PyExc_TypeError, "a run must be str");
                }
                return -1;
            }
        }
    }
    return 0;
}

static int
fill_entries(Index *self, PyObject *entries)
{
    PyObject *fast = PySequence_Tuple(entries);
    if (fast == NULL) {
        return -1;
    }
    Py_ssize_t n = PyTuple_GET_SIZE(fast), n_words = self->n_words;
    /* per entry: its companions and its prefixes, as tuples */
    PyObject **kept = PyMem_Calloc(2 * (size_t)n + 1, sizeof(PyObject *));
    Py_ssize_t *anchor_of = PyMem_Malloc(sizeof(Py_ssize_t) * ((size_t)n + 1));
    Py_ssize_t *chain_ids = NULL; /* the chains' word ids, until fill_pairs numbers them */
    PyObject *distinct = NULL;
    self->n_entries = n;
    self->anchor_start = PyMem_Calloc((size_t)n_words + 2, sizeof(Py_ssize_t));
    self->anchor_entries = PyMem_Malloc(sizeof(Py_ssize_t) * ((size_t)n + 1));
    self->companion_start = PyMem_Calloc((size_t)n + 1, sizeof(Py_ssize_t));
    self->prefix_start = PyMem_Calloc((size_t)n + 1, sizeof(Py_ssize_t));
    self->chain_start = PyMem_Calloc((size_t)n + 1, sizeof(Py_ssize_t));
    self->pair_starts = PyMem_Calloc((size_t)n_words + 1, 1);
    self->runs = PyMem_Calloc((size_t)n + 1, sizeof(PyObject *));
    self->groups = PyMem_Calloc((size_t)n + 1, sizeof(PyObject *));
    if (kept == NULL || self->groups == NULL || anchor_of == NULL ||
        self->anchor_start == NULL ||
        self->anchor_entries == NULL ||
        self->companion_start == NULL || self->prefix_start == NULL ||
        self->chain_start == NULL || self->pair_starts == NULL ||
        self->runs == NULL) {
        PyErr_NoMemory();
        goto fail;
    }
    /* First pass: sizes. */
    Py_ssize_t n_companions = 0, n_prefixes = 0;
    for (Py_ssize_t e = 0; e < n; e++) {
        PyObject *entry = PyTuple_GET_ITEM(fast, e);
        PyObject *anchor, *companions, *prefixes, *pair, *run = NULL, *groups = NULL;
        if (!PyTuple_Check(entry) ||
            !PyArg_ParseTuple(
                entry, "OOOO|OO", &anchor, &companions, &prefixes, &pair, &run, &groups)) {
            if (!PyErr_Occurred()) {
                PyErr_SetString(
                    PyExc_TypeError,
                    "an entry is (anchor, companions, prefixes, pair[, run[, groups]])");
            }
            goto fail;
        }
        if (groups != NULL) {
            if (check_groups(groups) < 0) {
                goto fail;
            }
            if (PyTuple_GET_SIZE(groups) > 0) {
                self->groups[e] = Py_NewRef(groups);
            }
        }
        if (run != NULL) {
            if (!PyUnicode_Check(run) || PyUnicode_AsUTF8(run) == NULL) {
                if (!PyErr_Occurred()) {
                    PyErr_SetString(PyExc_TypeError, "a run must be str");
                }
                goto fail;
            }
            if (PyUnicode_GET_LENGTH(run) > 0) {
                self->runs[e] = Py_NewRef(run);
            }
        }
        Py_ssize_t pair_count;
        Py_ssize_t *pair_ids = ids_of(pair, n_words, &pair_count);
        Py_ssize_t chain_at = self->chain_start[e];
        if (pair_ids == NULL) {
            goto fail;
        }
        if (pair_count == 1) {
            PyMem_Free(pair_ids);
            PyErr_SetString(PyExc_ValueError, "a pair is () or (left, right, ...)");
            goto fail;
        }
        Py_ssize_t *longer =
            PyMem_Realloc(chain_ids, sizeof(Py_ssize_t) * ((size_t)(chain_at + pair_count) + 1));
        if (longer == NULL) {
            PyMem_Free(pair_ids);
            PyErr_NoMemory();
            goto fail;
        }
        chain_ids = longer;
        for (Py_ssize_t i = 0; i < pair_count; i++) {
            chain_ids[chain_at + i] = pair_ids[i];
            if (i + 1 < pair_count) {
                self->pair_starts[pair_ids[i]] = 1;
            }
        }
        self->chain_start[e + 1] = chain_at + pair_count;
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
        if (pair_count == 0) { /* an entry with a chain is filed under its first pair */
            self->anchor_start[id + 1]++;
        }
        kept[2 * e] = PySequence_Tuple(companions);
        kept[2 * e + 1] = PySequence_Tuple(prefixes);
        if (kept[2 * e] == NULL || kept[2 * e + 1] == NULL) {
            goto fail;
        }
        n_companions += PyTuple_GET_SIZE(kept[2 * e]);
        n_prefixes += PyTuple_GET_SIZE(kept[2 * e + 1]);
    }
    for (Py_ssize_t w = 0; w < n_words; w++) {
        self->anchor_start[w + 1] += self->anchor_start[w];
    }
    if (fill_pairs(self, chain_ids) < 0) {
        goto fail;
    }
    PyMem_Free(chain_ids);
    chain_ids = NULL;
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
        if (self->chain_start[e] == self->chain_start[e + 1]) {
            self->anchor_entries[next[anchor_of[e]]++] = e;
        }
        Py_ssize_t count;
        Py_ssize_t *ids = ids_of(kept[2 * e], n_words, &count);
        if (ids == NULL) {
            PyMem_Free(next);
            goto fail;
        }
        memcpy(self->companions + c_at, ids, sizeof(Py_ssize_t) * (size_t)count);
        PyMem_Free(ids);
        self->companion_start[e] = c_at;
        c_at += count;
        PyObject *prefixes = kept[2 * e + 1];
        self->prefix_start[e] = p_at;
        for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(prefixes); i++) {
            PyObject *prefix = PyTuple_GET_ITEM(prefixes, i);
            if (!PyUnicode_Check(prefix) || PyUnicode_AsUTF8(prefix) == NULL) {
                if (!PyErr_Occurred()) {
                    PyErr_SetString(PyExc_TypeError, "prefixes must be str");
                }
                PyMem_Free(next);
                goto fail;
            }
            PyObject *known = PyDict_GetItemWithError(distinct, prefix);
            if (known == NULL && PyErr_Occurred()) {
                PyMem_Free(next);
                goto fail;
            }
            if (known == NULL) {
                PyObject *number = PyLong_FromSsize_t(self->n_prefixes);
                if (number == NULL || PyDict_SetItem(distinct, prefix, number) < 0) {
                    Py_XDECREF(number);
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
    }
    self->companion_start[n] = c_at;
    self->prefix_start[n] = p_at;
    PyMem_Free(next);
    self->entry_anchor = anchor_of;
    Py_DECREF(distinct);
    release_kept(kept, n);
    Py_DECREF(fast);
    return 0;
fail:
    PyMem_Free(anchor_of);
    PyMem_Free(chain_ids);
    Py_XDECREF(distinct);
    release_kept(kept, n);
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

/* Tokens are hashed a batch at a time and their table slots prefetched, so that the
 * probes of one batch wait on memory together rather than one after the other. */
#define BATCH 16

typedef struct {
    const char *start;
    Py_ssize_t len;
    uint64_t hash;     /* of its bytes; for a three-byte character, its code point */
    int direct; /* 1: a three-byte character, looked up in Index.direct; -1: its bit in
                   Index.word_bits is clear (no rule word); 0: probe the word table */
    int after_newline; /* the token starts a new value: no pair with the one before */
} Token;

/* What the test of one entry reads: the text and what its scan found so far. */
typedef struct {
    const Index *index;
    const char *text;
    Py_ssize_t n;
    const unsigned char *seen;      /* words held */
    const unsigned char *pair_seen; /* pairs side by side */
    unsigned char *prefix_state;    /* per distinct prefix: 0 not looked for, 1 found, 2 not */
    const uint64_t *starts;         /* bitmap of tokens' first four bytes */
} Check;

static int companion_passes(Check *check, Py_ssize_t e);

/* Whether each group of ``groups`` (see fill_entries) has a run in the text: 1 or 0. */
static int
groups_hold(const Check *check, PyObject *groups)
{
    for (Py_ssize_t g = 0; g < PyTuple_GET_SIZE(groups); g++) {
        PyObject *group = PyTuple_GET_ITEM(groups, g);
        int held = 0;
        for (Py_ssize_t r = 0; r < PyTuple_GET_SIZE(group) && !held; r++) {
            Py_ssize_t len;
            /* checked when the Index was made: str, with its UTF-8 form cached */
            const char *needle = PyUnicode_AsUTF8AndSize(PyTuple_GET_ITEM(group, r), &len);
            held = memmem(check->text, (size_t)check->n, needle, (size_t)len) != NULL;
        }
        if (!held) {
            return 0;
        }
    }
    return 1;
}

/* Whether a text passes entry ``e``: its anchor is held, each pair of its chain is side by
 * side, its run occurs, a companion word is held or a companion prefix starts a token, and
 * each of its groups has a run in the text. 1 or 0; -1 on an error. */
static int
entry_passes(Check *check, Py_ssize_t e)
{
    int pass = companion_passes(check, e);
    if (pass == 1 && check->index->groups[e] != NULL) {
        return groups_hold(check, check->index->groups[e]);
    }
    return pass;
}

/* entry_passes without the groups. */
static int
companion_passes(Check *check, Py_ssize_t e)
{
    const Index *self = check->index;
    if (!is_seen(check->seen, self->entry_anchor[e])) {
        return 0;
    }
    for (Py_ssize_t c = self->chain_start[e]; c < self->chain_start[e + 1]; c++) {
        if (!is_seen(check->pair_seen, self->chain_pairs[c])) {
            return 0;
        }
    }
    if (self->runs[e] != NULL) {
        Py_ssize_t len;
        const char *needle = PyUnicode_AsUTF8AndSize(self->runs[e], &len);
        if (needle == NULL) {
            return -1;
        }
        if (memmem(check->text, (size_t)check->n, needle, (size_t)len) == NULL) {
            return 0;
        }
    }
    for (Py_ssize_t c = self->companion_start[e]; c < self->companion_start[e + 1]; c++) {
        if (is_seen(check->seen, self->companions[c])) {
            return 1;
        }
    }
    for (Py_ssize_t p = self->prefix_start[e]; p < self->prefix_start[e + 1]; p++) {
        Py_ssize_t id = self->prefix_ids[p];
        if (check->prefix_state == NULL) {
            check->prefix_state = PyMem_Calloc((size_t)self->n_prefixes, 1);
            if (check->prefix_state == NULL) {
                PyErr_NoMemory();
                return -1;
            }
        }
        if (check->prefix_state[id] == 0) {
            Py_ssize_t len;
            const char *needle = PyUnicode_AsUTF8AndSize(self->prefixes[id], &len);
            if (needle == NULL) {
                return -1;
            }
            int found_it = 1;
            if (len >= 5) { /* a space and four bytes or more: the bitmap may tell */
                uint32_t bit = start_bit(needle + 1);
                found_it = (check->starts[bit >> 6] >> (bit & 63)) & 1;
            }
            if (found_it) {
                found_it = memmem(check->text, (size_t)check->n, needle, (size_t)len) != NULL;
            }
            check->prefix_state[id] = found_it ? 1 : 2;
        }
        if (check->prefix_state[id] == 1) {
            return 1;
        }
    }
    return 0;
}

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
    unsigned char *pair_seen = PyMem_Calloc((size_t)(self->n_pairs >> 3) + 1, 1);
    Py_ssize_t pairs_held_size = 64, n_pairs_held = 0; /* pairs seen that entries are under */
    Py_ssize_t *pairs_held = PyMem_Malloc(sizeof(Py_ssize_t) * (size_t)pairs_held_size);
    unsigned char *prefix_state = NULL; /* per distinct prefix: 0 not looked for, 1 found, 2 not */
    PyObject *passing = NULL;
    uint64_t starts[START_BITS / 64];
    int track_starts = self->n_prefixes > 0;
    if (track_starts) {
        memset(starts, 0, sizeof(starts));
    }
    if (found->seen == NULL || held == NULL || pair_seen == NULL || pairs_held == NULL) {
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
            token->after_newline = newline;
            newline = 0;
            if (is_three_byte(start, token->len)) { /* one character: its own table */
                token->hash = code_point_of(start);
                token->direct = 1;
                __builtin_prefetch(&self->direct[token->hash]);
            }
            else {
                token->hash = hash_bytes((const unsigned char *)start, token->len);
                uint32_t bit = word_bit(token->hash);
                token->direct = (self->word_bits[bit >> 6] >> (bit & 63)) & 1 ? 0 : -1;
                if (token->direct == 0) {
                    __builtin_prefetch(&self->slots[token->hash & self->mask]);
                }
            }
            if (track_starts && token->len >= 4) {
                uint32_t bit = start_bit(start);
                starts[bit >> 6] |= (uint64_t)1 << (bit & 63);
            }
        }
        for (int t = 0; t < count; t++) {
            Token *token = &batch[t];
            Py_ssize_t id = token->direct > 0   ? (Py_ssize_t)self->direct[token->hash] - 1
                            : token->direct < 0 ? -1 /* its bit is clear: no rule word */
                                                : Index_probe(
                                                      self, token->start, token->len, token->hash);
            if (token->after_newline) {
                previous = -1;
            }
            if (id >= 0 && previous >= 0 && self->pair_starts[previous]) {
                Py_ssize_t pair = pair_number(self, previous, id);
                if (pair >= 0 && !is_seen(pair_seen, pair)) {
                    pair_seen[pair >> 3] |= (unsigned char)(1 << (pair & 7));
                    if (self->pair_entry_start[pair] < self->pair_entry_start[pair + 1]) {
                        if (n_pairs_held == pairs_held_size) {
                            pairs_held_size *= 2;
                            Py_ssize_t *bigger = PyMem_Realloc(
                                pairs_held, sizeof(Py_ssize_t) * (size_t)pairs_held_size);
                            if (bigger == NULL) {
                                PyErr_NoMemory();
                                goto fail;
                            }
                            pairs_held = bigger;
                        }
                        pairs_held[n_pairs_held++] = pair;
                    }
                }
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
    /* Entries of the held anchors, then of the pairs seen, that pass. */
    passing = PyList_New(0);
    if (passing == NULL) {
        goto fail;
    }
    Check check = {self, s, n, found->seen, pair_seen, NULL, starts};
    for (Py_ssize_t h = 0; h < n_held + n_pairs_held; h++) {
        const Py_ssize_t *first, *last;
        if (h < n_held) {
            first = self->anchor_entries + self->anchor_start[held[h]];
            last = self->anchor_entries + self->anchor_start[held[h] + 1];
        }
        else {
            Py_ssize_t pair = pairs_held[h - n_held];
            first = self->pair_entries + self->pair_entry_start[pair];
            last = self->pair_entries + self->pair_entry_start[pair + 1];
        }
        for (const Py_ssize_t *k = first; k < last; k++) {
            int pass = entry_passes(&check, *k);
            if (pass < 0) {
                prefix_state = check.prefix_state;
                goto fail;
            }
            if (pass) {
                PyObject *number = PyLong_FromSsize_t(*k);
                if (number == NULL || PyList_Append(passing, number) < 0) {
                    Py_XDECREF(number);
                    prefix_state = check.prefix_state;
                    goto fail;
                }
                Py_DECREF(number);
            }
        }
    }
    prefix_state = check.prefix_state;
    PyMem_Free(held);
    PyMem_Free(pairs_held);
    PyMem_Free(pair_seen);
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
    PyMem_Free(pairs_held);
    PyMem_Free(pair_seen);
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
    .tp_name = "watcher._scan.Index",
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
    .tp_name = "watcher._scan.Found",
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

/* --- spaced ----------------------------------------------------------------------------- */

/* Character classes, one byte per code point (text.py: ``_Classes.table``). */
enum { SEPARATOR = 0, TOKEN = 1, SINGLE = 2, MARK = 3 };

static PyObject *class_table = NULL; /* bytes of sys.maxunicode + 1 classes, or NULL */

static PyObject *
set_classes(PyObject *module, PyObject *table)
{
    if (!PyBytes_Check(table) || PyBytes_GET_SIZE(table) != 0x110000) {
        PyErr_SetString(PyExc_ValueError, "classes must be bytes, one per code point");
        return NULL;
    }
    Py_XSETREF(class_table, Py_NewRef(table));
    Py_RETURN_NONE;
}

/* spaced(text) -> " t1 t2 ... " for normalised text: a token is a run of TOKEN and MARK
 * characters, or one SINGLE character with the MARKs after it; SEPARATORs part tokens. */
static PyObject *
spaced(PyObject *module, PyObject *text)
{
    if (!PyUnicode_Check(text)) {
        PyErr_SetString(PyExc_TypeError, "text must be str");
        return NULL;
    }
    if (class_table == NULL) {
        PyErr_SetString(PyExc_TypeError, "set_classes() was not called");
        return NULL;
    }
    const unsigned char *classes = (const unsigned char *)PyBytes_AS_STRING(class_table);
    Py_ssize_t n = PyUnicode_GET_LENGTH(text);
    int kind = PyUnicode_KIND(text);
    const void *data = PyUnicode_DATA(text);
    /* At most a space before and after every character. */
    Py_UCS4 *out = PyMem_Malloc(sizeof(Py_UCS4) * (2 * (size_t)n + 2));
    if (out == NULL) {
        return PyErr_NoMemory();
    }
    Py_ssize_t k = 0;
    int previous = SEPARATOR; /* the class of the token being written: TOKEN or SINGLE */
    out[k++] = ' ';
    for (Py_ssize_t i = 0; i < n; i++) {
        Py_UCS4 c = PyUnicode_READ(kind, data, i);
        int cls = classes[c];
        if (cls == SEPARATOR) {
            if (previous != SEPARATOR) {
                out[k++] = ' ';
                previous = SEPARATOR;
            }
            continue;
        }
        if (cls == MARK) {
            if (previous == SEPARATOR) {
                previous = TOKEN; /* marks after a separator start a run of their own */
            }
        }
        else if (cls == SINGLE || previous == SINGLE) {
            if (previous != SEPARATOR) {
                out[k++] = ' ';
            }
            previous = cls;
        }
        else {
            previous = TOKEN;
        }
        out[k++] = c;
    }
    if (previous != SEPARATOR) {
        out[k++] = ' ';
    }
    PyObject *result = PyUnicode_FromKindAndData(PyUnicode_4BYTE_KIND, out, k);
    PyMem_Free(out);
    return result;
}

/* --- fold -------------------------------------------------------------------------------- */

/* text.normalize, character by character, for text whose every character is "simple": one
 * whose normalised form does not depend on its neighbours (text.py: ``_fold_char`` says
 * which are, and gives their forms). Each BMP character is asked about once per process,
 * through the callback, and remembered here. */
#define FOLD_UNKNOWN 0
#define FOLD_COMPLEX 1 /* otherwise: 2 + the form's offset in fold_pool */

static PyObject *fold_callback = NULL; /* code point -> str (its form) or None */
static uint32_t *fold_at = NULL;       /* per BMP code point: FOLD_UNKNOWN, FOLD_COMPLEX, ... */
static unsigned char *fold_len = NULL; /* per BMP code point: its form's length */
static Py_UCS4 *fold_pool = NULL;
static size_t fold_used = 0, fold_size = 0;

static PyObject *
set_fold(PyObject *module, PyObject *callback)
{
    if (!PyCallable_Check(callback)) {
        PyErr_SetString(PyExc_TypeError, "the fold callback must be callable");
        return NULL;
    }
    if (fold_at == NULL) {
        fold_at = PyMem_Calloc(0x10000, sizeof(uint32_t));
        fold_len = PyMem_Calloc(0x10000, 1);
        if (fold_at == NULL || fold_len == NULL) {
            PyMem_Free(fold_at);
            PyMem_Free(fold_len);
            fold_at = NULL;
            fold_len = NULL;
            return PyErr_NoMemory();
        }
    }
    else { /* a new callback: forget what the old one said */
        memset(fold_at, 0, 0x10000 * sizeof(uint32_t));
        fold_used = 0;
    }
    Py_XSETREF(fold_callback, Py_NewRef(callback));
    Py_RETURN_NONE;
}

/* Ask the callback about ``c`` and remember the answer; -1 on an error. */
static int
fold_learn(Py_UCS4 c)
{
    PyObject *callback = Py_NewRef(fold_callback); /* set_fold may run meanwhile */
    PyObject *form = PyObject_CallFunction(callback, "I", (unsigned int)c);
    Py_DECREF(callback);
    if (form == NULL) {
        return -1;
    }
    if (form == Py_None) {
        fold_at[c] = FOLD_COMPLEX;
        Py_DECREF(form);
        return 0;
    }
    if (!PyUnicode_Check(form) || PyUnicode_GET_LENGTH(form) > 255) {
        Py_DECREF(form);
        PyErr_SetString(PyExc_TypeError, "the fold callback gives str (at most 255) or None");
        return -1;
    }
    Py_ssize_t len = PyUnicode_GET_LENGTH(form);
    if (fold_used + (size_t)len > fold_size) {
        size_t size = fold_size ? 2 * fold_size : 4096;
        while (size < fold_used + (size_t)len) {
            size *= 2;
        }
        Py_UCS4 *bigger = PyMem_Realloc(fold_pool, size * sizeof(Py_UCS4));
        if (bigger == NULL) {
            Py_DECREF(form);
            PyErr_NoMemory();
            return -1;
        }
        fold_pool = bigger;
        fold_size = size;
    }
    for (Py_ssize_t i = 0; i < len; i++) {
        fold_pool[fold_used + (size_t)i] = PyUnicode_READ_CHAR(form, i);
    }
    fold_at[c] = (uint32_t)(2 + fold_used);
    fold_len[c] = (unsigned char)len;
    fold_used += (size_t)len;
    Py_DECREF(form);
    return 0;
}

/* fold(text) -> text.normalize(text), or None when some character is not simple (or is
 * beyond the BMP): the caller then normalises the whole text in Python. */
static PyObject *
fold(PyObject *module, PyObject *text)
{
    if (!PyUnicode_Check(text)) {
        PyErr_SetString(PyExc_TypeError, "text must be str");
        return NULL;
    }
    if (fold_callback == NULL) {
        Py_RETURN_NONE;
    }
    Py_ssize_t n = PyUnicode_GET_LENGTH(text);
    int kind = PyUnicode_KIND(text);
    const void *data = PyUnicode_DATA(text);
    size_t size = (size_t)n + 16, k = 0;
    Py_UCS4 *out = PyMem_Malloc(size * sizeof(Py_UCS4));
    if (out == NULL) {
        return PyErr_NoMemory();
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        if (k + 256 > size) { /* room for the longest form (255) whatever comes next */
            size = 2 * size + 256;
            Py_UCS4 *bigger = PyMem_Realloc(out, size * sizeof(Py_UCS4));
            if (bigger == NULL) {
                PyMem_Free(out);
                return PyErr_NoMemory();
            }
            out = bigger;
        }
        Py_UCS4 c = PyUnicode_READ(kind, data, i);
        if (c < 0x80) {
            out[k++] = (c >= 'A' && c <= 'Z') ? c + 32 : c;
        }
        else if (c > 0xFFFF) {
            goto complex;
        }
        else {
            if (fold_at[c] == FOLD_UNKNOWN && fold_learn(c) < 0) {
                PyMem_Free(out);
                return NULL;
            }
            if (fold_at[c] == FOLD_COMPLEX) {
                goto complex;
            }
            memcpy(out + k, fold_pool + (fold_at[c] - 2), fold_len[c] * sizeof(Py_UCS4));
            k += fold_len[c];
        }
    }
    PyObject *result = PyUnicode_FromKindAndData(PyUnicode_4BYTE_KIND, out, (Py_ssize_t)k);
    PyMem_Free(out);
    return result;
complex:
    PyMem_Free(out);
    Py_RETURN_NONE;
}

/* --- module ----------------------------------------------------------------------------- */

static PyMethodDef module_functions[] = {
    {"starts", (PyCFunction)(void (*)(void))starts, METH_FASTCALL,
     "starts(value, tokens) -> the token positions where tokens occur in a row."},
    {"set_classes", (PyCFunction)set_classes, METH_O,
     "set_classes(table) -> None: the character classes spaced() reads, a byte each."},
    {"spaced", (PyCFunction)spaced, METH_O,
     "spaced(text) -> normalised text's tokens with a space around each."},
    {"set_fold", (PyCFunction)set_fold, METH_O,
     "set_fold(callback) -> None: callback(code point) gives its normal form or None."},
    {"fold", (PyCFunction)fold, METH_O,
     "fold(text) -> the normal form of text, or None if some character needs context."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef scan_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "watcher._scan",
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
