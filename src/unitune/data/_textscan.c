/*
 * unitune.data._textscan: one pass over an example's text for `validate`.
 *
 * Validation needs three things from every example's text besides its token count: its exact and
 * "near" duplicate fingerprints (the near text is lower-cased, every run of non-word characters
 * one space), and whether it may hold personal data or a special token at all (the regexes that
 * decide are slow, and almost no text needs them). In Python those are five passes over the text
 * (encode, translate twice, a regex, a numpy pass) and two hashes; here they are one (`scan`,
 * `keys`). `lane` walks the commonest example's structure for `_validate._shape`.
 *
 * The reference for every result is in `_textscan_py.py` (`scan_py`, `keys_py`) and `_validate.py`
 * (`_shape`): the same definitions in plain Python, used when this module is not built, and
 * compared with it in tests/test_textscan.py (every code point) and tests/test_validate_fast.py.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

/* Flags: what `scan` found. Each is a superset test: unset means the pattern cannot match. */
#define F_AT 1      /* an "@" (the email regex needs one) */
#define F_IBAN 2    /* two ASCII capitals, then two digits (`\b[A-Z]{2}\d{2}...`) */
#define F_PHONE 4   /* 9+ digits, at most 3 separators (" .-()+", bidi marks, ...) between consecutive ones */
#define F_CARD 8    /* 13+ digits, at most 1 of those between consecutive ones */
#define F_SPECIAL 16 /* a character that starts a forbidden special token */

/* ASCII → its near form: lower-case letters and digits stay, A-Z are lowered, anything else is a
 * blank (" "). "_" is a blank too: `[\W_]+`. */
static unsigned char ascii_near[128];
/* ASCII → class bits: */
#define C_DIGIT 1
#define C_AT 2
#define C_START 4 /* set per call, from `starts` */
#define C_SEP 8   /* may sit between a phone or card number's digits */
#define C_CAP 16  /* A-Z */
static unsigned char ascii_class[128];

static inline int is_digit(Py_UCS4 ch) {
    if (ch < 128) return ch >= '0' && ch <= '9';
    /* `\d` is Unicode's decimal digits; numeric "digits" (superscripts) too, to stay a superset. */
    return Py_UNICODE_ISDECIMAL(ch) || Py_UNICODE_ISDIGIT(ch);
}

/* A non-ASCII character that may sit between a number's digits: no-break space and hyphen, en dash,
 * and the bidirectional marks right-to-left text puts around numbers (as `_textscan_py._WIDE_SEP`). */
static inline int is_wide_sep(Py_UCS4 ch) {
    return ch == 0xA0 || ch == 0x2011 || ch == 0x2013 || ch == 0x200E || ch == 0x200F ||
           (ch >= 0x202A && ch <= 0x202E) || (ch >= 0x2066 && ch <= 0x2069);
}

static inline char *put_utf8(char *o, Py_UCS4 ch) {
    if (ch < 0x80) {
        *o++ = (char)ch;
    } else if (ch < 0x800) {
        *o++ = (char)(0xC0 | (ch >> 6));
        *o++ = (char)(0x80 | (ch & 0x3F));
    } else if (ch < 0x10000) {
        *o++ = (char)(0xE0 | (ch >> 12));
        *o++ = (char)(0x80 | ((ch >> 6) & 0x3F));
        *o++ = (char)(0x80 | (ch & 0x3F));
    } else {
        *o++ = (char)(0xF0 | (ch >> 18));
        *o++ = (char)(0x80 | ((ch >> 12) & 0x3F));
        *o++ = (char)(0x80 | ((ch >> 6) & 0x3F));
        *o++ = (char)(0x80 | (ch & 0x3F));
    }
    return o;
}

/* Append one character of near text: a blank is written only after a non-blank (so runs of blanks
 * are one, and none leads); the trailing one is dropped at the end. Branch-free for ASCII, which
 * is most text and where blanks come every few characters (a branch there mispredicts often). */
#define NEAR_ASCII(w)                         \
    do {                                      \
        unsigned char w_ = (w);               \
        int b_ = w_ == ' ';                   \
        *o = (char)w_;                        \
        o += !(b_ & prev_blank);              \
        prev_blank = b_;                      \
    } while (0)

/* A digit at `i`: does it continue the chain of digits before it (only separators since the last
 * one, at most 3 for a phone number, at most 1 for a card), and do two capitals precede it with a
 * digit after it (`[A-Z]{2}\d{2}`: an IBAN's start)? */
#define ON_DIGIT(p, i)                                                                          \
    do {                                                                                        \
        Py_ssize_t gap_ = (i) - last_digit - 1;                                                 \
        int joined_ = last_digit >= 0 && nonsep == 0;                                           \
        phone = joined_ && gap_ <= 3 ? phone + 1 : 1;                                           \
        card = joined_ && gap_ <= 1 ? card + 1 : 1;                                             \
        if (phone >= 9) flags |= F_PHONE;                                                       \
        if (card >= 13) flags |= F_CARD;                                                        \
        if ((i) >= 2 && (i) + 1 < n && IS_CAP((p)[(i) - 1]) && IS_CAP((p)[(i) - 2]) &&          \
            IS_DIGIT((p)[(i) + 1]))                                                             \
            flags |= F_IBAN;                                                                    \
        last_digit = (i);                                                                       \
        nonsep = 0;                                                                             \
    } while (0)
#define IS_CAP(ch) ((ch) >= 'A' && (ch) <= 'Z')
#define IS_DIGIT(ch) ((ch) < 128 ? (ascii_class[(ch)] & C_DIGIT) != 0 : is_digit(ch))

/* The one pass over a string of one storage kind: near text, flags. Digits are rare, so their
 * branch is predictable; everything else per ASCII character is table lookups, no branches. */
#define SCAN_KIND(T)                                                                 \
    do {                                                                             \
        const T *p = (const T *)data;                                                \
        for (Py_ssize_t i = 0; i < n; i++) {                                         \
            Py_UCS4 ch = p[i];                                                       \
            if (ch < 128) {                                                          \
                unsigned char c = cls[ch];                                           \
                seen |= c;                                                           \
                NEAR_ASCII(ascii_near[ch]);                                          \
                if (c & C_DIGIT) ON_DIGIT(p, i);                                     \
                else nonsep += !(c & C_SEP);                                         \
            } else {                                                                 \
                o = near_wide(o, ch, &prev_blank);                                   \
                if (starts_wide && in_starts(starts_kind, starts_data, n_starts, ch)) \
                    seen |= C_START;                                                 \
                if (is_digit(ch)) ON_DIGIT(p, i);                                    \
                else nonsep += !is_wide_sep(ch);                                     \
            }                                                                        \
        }                                                                            \
    } while (0)

static inline char *near_wide(char *o, Py_UCS4 ch, int *prev_blank) {
    Py_UCS4 low[2];
    int n_low = 1;
    if (ch == 0x130) { /* "İ": the one full lower case longer than the simple one */
        low[0] = 'i';
        low[1] = 0x307;
        n_low = 2;
    } else {
        low[0] = Py_UNICODE_TOLOWER(ch);
    }
    for (int k = 0; k < n_low; k++) {
        if (Py_UNICODE_ISALNUM(low[k])) {
            o = put_utf8(o, low[k]);
            *prev_blank = 0;
        } else if (!*prev_blank) {
            *o++ = ' ';
            *prev_blank = 1;
        }
    }
    return o;
}

static inline int in_starts(int kind, const void *data, Py_ssize_t n, Py_UCS4 ch) {
    for (Py_ssize_t j = 0; j < n; j++) {
        if (PyUnicode_READ(kind, data, j) == ch) return 1;
    }
    return 0;
}

/* XXH64 (https://github.com/Cyan4973/xxHash/blob/dev/doc/xxhash_spec.md), for `keys`: a 64-bit
 * fingerprint at memory speed. tests/test_textscan.py checks it against the xxhash package. */
#define P1 0x9E3779B185EBCA87ULL
#define P2 0xC2B2AE3D27D4EB4FULL
#define P3 0x165667B19E3779F9ULL
#define P4 0x85EBCA77C2B2AE63ULL
#define P5 0x27D4EB2F165667C5ULL

static inline uint64_t rotl64(uint64_t x, int r) { return (x << r) | (x >> (64 - r)); }
static inline uint64_t read64(const unsigned char *p) {
    uint64_t v;
    memcpy(&v, p, 8);
    return v; /* little-endian machines; see the byte-order check in PyInit */
}
static inline uint32_t read32(const unsigned char *p) {
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}
static inline uint64_t xxh_round(uint64_t acc, uint64_t input) {
    acc += input * P2;
    acc = rotl64(acc, 31);
    return acc * P1;
}
static inline uint64_t xxh_merge(uint64_t acc, uint64_t val) {
    acc ^= xxh_round(0, val);
    return acc * P1 + P4;
}

static uint64_t xxh64(const void *data, size_t len, uint64_t seed) {
    const unsigned char *p = (const unsigned char *)data, *end = p + len;
    uint64_t h;
    if (len >= 32) {
        uint64_t v1 = seed + P1 + P2, v2 = seed + P2, v3 = seed, v4 = seed - P1;
        const unsigned char *limit = end - 32;
        do {
            v1 = xxh_round(v1, read64(p));
            v2 = xxh_round(v2, read64(p + 8));
            v3 = xxh_round(v3, read64(p + 16));
            v4 = xxh_round(v4, read64(p + 24));
            p += 32;
        } while (p <= limit);
        h = rotl64(v1, 1) + rotl64(v2, 7) + rotl64(v3, 12) + rotl64(v4, 18);
        h = xxh_merge(h, v1);
        h = xxh_merge(h, v2);
        h = xxh_merge(h, v3);
        h = xxh_merge(h, v4);
    } else {
        h = seed + P5;
    }
    h += (uint64_t)len;
    while (p + 8 <= end) {
        h ^= xxh_round(0, read64(p));
        h = rotl64(h, 27) * P1 + P4;
        p += 8;
    }
    if (p + 4 <= end) {
        h ^= (uint64_t)read32(p) * P1;
        h = rotl64(h, 23) * P2 + P3;
        p += 4;
    }
    while (p < end) {
        h ^= (*p) * P5;
        h = rotl64(h, 11) * P1;
        p++;
    }
    h ^= h >> 33;
    h *= P2;
    h ^= h >> 29;
    h *= P3;
    h ^= h >> 32;
    return h;
}

/* The pass itself: near text into `o0` (room for 4 bytes a character, plus one), flags; returns the
 * near text's end. */
static char *scan_into(PyObject *text, PyObject *starts, char *o0, int *flags_out) {
    Py_ssize_t n = PyUnicode_GET_LENGTH(text);
    int kind = PyUnicode_KIND(text);
    const void *data = PyUnicode_DATA(text);
    Py_ssize_t n_starts = PyUnicode_GET_LENGTH(starts);
    int starts_kind = PyUnicode_KIND(starts);
    const void *starts_data = PyUnicode_DATA(starts);
    unsigned char cls[128];
    memcpy(cls, ascii_class, sizeof cls);
    int starts_wide = 0;
    for (Py_ssize_t i = 0; i < n_starts; i++) {
        Py_UCS4 s = PyUnicode_READ(starts_kind, starts_data, i);
        if (s < 128) cls[s] |= C_START;
        else starts_wide = 1;
    }
    char *o = o0;
    int prev_blank = 1; /* no blank before the first word */
    unsigned char seen = 0;
    int flags = 0;
    /* Digit chains: the last digit's index, non-separators since it, the chain's digits so far. */
    Py_ssize_t last_digit = -1, nonsep = 0, phone = 0, card = 0;
    if (kind == PyUnicode_1BYTE_KIND) SCAN_KIND(Py_UCS1);
    else if (kind == PyUnicode_2BYTE_KIND) SCAN_KIND(Py_UCS2);
    else SCAN_KIND(Py_UCS4);
    if (o > o0 && prev_blank) o--; /* the trailing blank */
    if (seen & C_AT) flags |= F_AT;
    if (seen & C_START) flags |= F_SPECIAL;
    *flags_out = flags;
    return o;
}

/* scan(text, starts) -> (near: bytes, flags: int)
 *
 * near: UTF-8 of `text` lower-cased character by character (U+0130 "İ" → "i̇", the one
 * character whose full lower case is longer than its simple one; "Σ" → "σ" everywhere, i.e.
 * without str.lower()'s final-sigma rule), then every character that is not alphanumeric
 * (str.isalnum) made a blank, runs of blanks one space, none at either end.
 * flags: F_* bits; F_SPECIAL when any character of `starts` occurs.
 */
static PyObject *scan(PyObject *self, PyObject *args) {
    PyObject *text, *starts;
    if (!PyArg_ParseTuple(args, "UU:scan", &text, &starts)) return NULL;
    /* A character's near form is at most 2 characters (U+0130), at most 3 UTF-8 bytes then, and
     * at most 4 otherwise; plus one blank. */
    PyObject *out = PyBytes_FromStringAndSize(NULL, PyUnicode_GET_LENGTH(text) * 4 + 1);
    if (out == NULL) return NULL;
    int flags;
    char *o0 = PyBytes_AS_STRING(out);
    char *o = scan_into(text, starts, o0, &flags);
    if (_PyBytes_Resize(&out, o - o0) < 0) return NULL;
    return Py_BuildValue("(Ni)", out, flags);
}

/* keys(text, starts) -> (exact: int, near: int, flags: int)
 *
 * `scan`, with both texts reduced to 64-bit fingerprints (XXH64, seed 0): `exact` of the string's
 * own storage (its characters as 1, 2 or 4 little-endian bytes each, whichever CPython keeps it
 * in: equal strings are stored alike), `near` of the near text's UTF-8.
 */
static PyObject *keys(PyObject *self, PyObject *args) {
    PyObject *text, *starts;
    if (!PyArg_ParseTuple(args, "UU:keys", &text, &starts)) return NULL;
    Py_ssize_t n = PyUnicode_GET_LENGTH(text);
    char stack[4096];
    char *buf = stack;
    if (n * 4 + 1 > (Py_ssize_t)sizeof stack) {
        buf = PyMem_Malloc(n * 4 + 1);
        if (buf == NULL) return PyErr_NoMemory();
    }
    int flags;
    char *o = scan_into(text, starts, buf, &flags);
    uint64_t near = xxh64(buf, (size_t)(o - buf), 0);
    if (buf != stack) PyMem_Free(buf);
    uint64_t exact = xxh64(PyUnicode_DATA(text), (size_t)n * PyUnicode_KIND(text), 0);
    return Py_BuildValue("(KKi)", (unsigned long long)exact, (unsigned long long)near, flags);
}

/* lane(data) -> (shape, turns) | None
 *
 * `_validate._shape` for the most common example, done in C: `data` is a dict whose only key is
 * "messages", a list of dicts with exactly the keys "role" and "content", both strings, no role
 * "tool". Gives the same shape tuple and turns text `_shape` gives for it (tests compare them);
 * None for any other example, which `_shape` then walks in Python.
 */
static PyObject *s_messages, *s_role, *s_content, *s_tool, *s_sep_field, *s_sep_turn, *s_empty;
static PyObject *k_one, *k_two;

static int blank(PyObject *text) {
    Py_ssize_t n = PyUnicode_GET_LENGTH(text);
    int kind = PyUnicode_KIND(text);
    const void *data = PyUnicode_DATA(text);
    for (Py_ssize_t i = 0; i < n; i++) {
        if (!Py_UNICODE_ISSPACE(PyUnicode_READ(kind, data, i))) return 0;
    }
    return 1; /* `not content or content.isspace()` */
}

static PyObject *lane(PyObject *self, PyObject *data) {
    if (!PyDict_CheckExact(data) || PyDict_GET_SIZE(data) != 1) Py_RETURN_NONE;
    PyObject *messages = PyDict_GetItemWithError(data, s_messages); /* borrowed */
    if (messages == NULL) {
        if (PyErr_Occurred()) return NULL;
        Py_RETURN_NONE;
    }
    if (!PyList_CheckExact(messages)) Py_RETURN_NONE;
    Py_ssize_t n = PyList_GET_SIZE(messages);
    /* Check every message first, so that nothing is built for an example that goes to Python. */
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *m = PyList_GET_ITEM(messages, i);
        if (!PyDict_CheckExact(m) || PyDict_GET_SIZE(m) != 2) Py_RETURN_NONE;
        PyObject *role = PyDict_GetItemWithError(m, s_role);
        if (role == NULL) {
            if (PyErr_Occurred()) return NULL;
            Py_RETURN_NONE;
        }
        PyObject *content = PyDict_GetItemWithError(m, s_content);
        if (content == NULL) {
            if (PyErr_Occurred()) return NULL;
            Py_RETURN_NONE;
        }
        if (!PyUnicode_CheckExact(role) || !PyUnicode_CheckExact(content)) Py_RETURN_NONE;
        int is_tool = PyUnicode_Compare(role, s_tool);
        if (is_tool == -1 && PyErr_Occurred()) return NULL;
        if (is_tool == 0) Py_RETURN_NONE;
    }
    /* The shape: [True, False, True] (only "messages": known keys, no "functions", no tools), then
     * (role, 1 if blank else 2) per message; the turns: role, US, content, US, joined by RS. */
    PyObject *shape = PyTuple_New(3 + n);
    PyObject *parts = PyList_New(n ? 5 * n - 1 : 0);
    if (shape == NULL || parts == NULL) goto fail;
    PyTuple_SET_ITEM(shape, 0, Py_NewRef(Py_True));
    PyTuple_SET_ITEM(shape, 1, Py_NewRef(Py_False));
    PyTuple_SET_ITEM(shape, 2, Py_NewRef(Py_True));
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *m = PyList_GET_ITEM(messages, i);
        PyObject *role = PyDict_GetItemWithError(m, s_role);
        PyObject *content = PyDict_GetItemWithError(m, s_content);
        if (role == NULL || content == NULL) goto fail; /* checked above: only an error gets here */
        PyObject *item = PyTuple_Pack(2, role, blank(content) ? k_one : k_two);
        if (item == NULL) goto fail;
        PyTuple_SET_ITEM(shape, 3 + i, item);
        Py_ssize_t at = 5 * i;
        PyList_SET_ITEM(parts, at, Py_NewRef(role));
        PyList_SET_ITEM(parts, at + 1, Py_NewRef(s_sep_field));
        PyList_SET_ITEM(parts, at + 2, Py_NewRef(content));
        PyList_SET_ITEM(parts, at + 3, Py_NewRef(s_sep_field));
        if (i + 1 < n) PyList_SET_ITEM(parts, at + 4, Py_NewRef(s_sep_turn));
    }
    PyObject *turns = PyUnicode_Join(s_empty, parts);
    Py_DECREF(parts);
    if (turns == NULL) {
        Py_DECREF(shape);
        return NULL;
    }
    return Py_BuildValue("(NN)", shape, turns);
fail:
    Py_XDECREF(shape);
    Py_XDECREF(parts);
    if (!PyErr_Occurred()) PyErr_SetString(PyExc_RuntimeError, "lane: a message changed while it was read");
    return NULL;
}

static PyMethodDef methods[] = {
    {"keys", keys, METH_VARARGS,
     "keys(text, starts) -> (exact, near, flags): scan() with both texts as XXH64 fingerprints."},
    {"lane", lane, METH_O,
     "lane(data) -> (shape, turns) | None: _validate._shape for an example of plain {role, content} messages."},
    {"scan", scan, METH_VARARGS,
     "scan(text, starts) -> (near, flags): the near-duplicate text of `text` as UTF-8, and which "
     "personal-data and special-token patterns could match it (see _textscan_py.py)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_textscan", "One pass over an example's text for validate().", -1, methods,
};

PyMODINIT_FUNC PyInit__textscan(void) {
    /* XXH64 reads words as little-endian; on a big-endian machine the fingerprints would differ
     * from the reference, so the module declines to load and the Python scanner is used. */
    const uint16_t one = 1;
    if (*(const unsigned char *)&one != 1) {
        PyErr_SetString(PyExc_ImportError, "unitune.data._textscan assumes a little-endian machine");
        return NULL;
    }
    for (int c = 0; c < 128; c++) {
        int digit = c >= '0' && c <= '9', cap = c >= 'A' && c <= 'Z';
        ascii_near[c] = (unsigned char)(digit || (c >= 'a' && c <= 'z') ? c : cap ? c + 32 : ' ');
        ascii_class[c] = (unsigned char)((digit ? C_DIGIT : 0) | (c == '@' ? C_AT : 0) | (cap ? C_CAP : 0) |
                                         (c == ' ' || c == '.' || c == '-' || c == '(' || c == ')' || c == '+' ? C_SEP : 0));
    }
    s_messages = PyUnicode_InternFromString("messages");
    s_role = PyUnicode_InternFromString("role");
    s_content = PyUnicode_InternFromString("content");
    s_tool = PyUnicode_InternFromString("tool");
    s_sep_field = PyUnicode_InternFromString("\x1f");
    s_sep_turn = PyUnicode_InternFromString("\x1e");
    s_empty = PyUnicode_InternFromString("");
    k_one = PyLong_FromLong(1);
    k_two = PyLong_FromLong(2);
    if (!s_messages || !s_role || !s_content || !s_tool || !s_sep_field || !s_sep_turn || !s_empty || !k_one ||
        !k_two)
        return NULL;
    PyObject *m = PyModule_Create(&module);
    if (m == NULL) return NULL;
    if (PyModule_AddIntConstant(m, "F_AT", F_AT) < 0 || PyModule_AddIntConstant(m, "F_IBAN", F_IBAN) < 0 ||
        PyModule_AddIntConstant(m, "F_PHONE", F_PHONE) < 0 || PyModule_AddIntConstant(m, "F_CARD", F_CARD) < 0 ||
        PyModule_AddIntConstant(m, "F_SPECIAL", F_SPECIAL) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
