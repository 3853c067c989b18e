/*
 * unitune.data._textscan: one pass over an example's text for `validate`.
 *
 * Validation needs three things from every example's text besides its token count: the "near"
 * text its near-duplicate fingerprint hashes (lower-cased, every run of non-word characters one
 * space), and whether it may hold personal data or a special token at all (the regexes that
 * decide are slow, and almost no text needs them). In Python those are five passes over the text
 * (encode, translate twice, a regex, a numpy pass); here they are one.
 *
 * The reference for every result is `_near_text_py` and `_flags_py` in `_textscan_py.py`: the
 * same definitions in plain Python, used when this module is not built, and compared with it in
 * tests/test_textscan.py over every code point.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

/* Flags: what `scan` found. Each is a superset test: unset means the pattern cannot match. */
#define F_AT 1      /* an "@" (the email regex needs one) */
#define F_IBAN 2    /* two ASCII capitals, then two digits (`\b[A-Z]{2}\d{2}...`) */
#define F_PHONE 4   /* 9+ digits, at most 3 of " .-()+" between consecutive ones */
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
                else nonsep++;                                                       \
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

    /* A character's near form is at most 2 characters (U+0130), at most 3 UTF-8 bytes then, and
     * at most 4 otherwise; plus one blank. */
    PyObject *out = PyBytes_FromStringAndSize(NULL, n * 4 + 1);
    if (out == NULL) return NULL;
    char *o0 = PyBytes_AS_STRING(out), *o = o0;
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
    if (_PyBytes_Resize(&out, o - o0) < 0) return NULL;
    return Py_BuildValue("(Ni)", out, flags);
}

static PyMethodDef methods[] = {
    {"scan", scan, METH_VARARGS,
     "scan(text, starts) -> (near, flags): the near-duplicate text of `text` as UTF-8, and which "
     "personal-data and special-token patterns could match it (see _textscan_py.py)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_textscan", "One pass over an example's text for validate().", -1, methods,
};

PyMODINIT_FUNC PyInit__textscan(void) {
    for (int c = 0; c < 128; c++) {
        int digit = c >= '0' && c <= '9', cap = c >= 'A' && c <= 'Z';
        ascii_near[c] = (unsigned char)(digit || (c >= 'a' && c <= 'z') ? c : cap ? c + 32 : ' ');
        ascii_class[c] = (unsigned char)((digit ? C_DIGIT : 0) | (c == '@' ? C_AT : 0) | (cap ? C_CAP : 0) |
                                         (c == ' ' || c == '.' || c == '-' || c == '(' || c == ')' || c == '+' ? C_SEP : 0));
    }
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
